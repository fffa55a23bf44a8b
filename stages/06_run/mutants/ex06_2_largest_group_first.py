"""Orders the groups by size, largest first: the report no longer reads in rank order."""


def group_stacks(stacks_by_rank: Mapping[int, str]) -> list[tuple[list[int], str]]:
    groups: dict[str, list[int]] = {}
    for rank in sorted(stacks_by_rank):
        groups.setdefault(normalize_stack(stacks_by_rank[rank]), []).append(rank)
    return sorted(((ranks, stack) for stack, ranks in groups.items()), key=lambda g: -len(g[0]))
