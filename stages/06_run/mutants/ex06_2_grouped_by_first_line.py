"""Groups by the first frame only: ranks that wait in the same function but were called from
different places (one stuck elsewhere below) are reported as one."""


def group_stacks(stacks_by_rank: Mapping[int, str]) -> list[tuple[list[int], str]]:
    groups: dict[str, list[int]] = {}
    firsts: dict[str, str] = {}
    for rank in sorted(stacks_by_rank):
        stack = normalize_stack(stacks_by_rank[rank])
        key = "\n".join(stack.splitlines()[:2])
        firsts.setdefault(key, stack)
        groups.setdefault(key, []).append(rank)
    return sorted(((ranks, firsts[k]) for k, ranks in groups.items()), key=lambda g: g[0][0])
