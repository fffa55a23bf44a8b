"""Deals the ranks out round-robin (rank 1 on the second node) instead of node by node: a
node's ranks are not consecutive, so local ranks do not map to ranks as torchrun's do."""


def assign_ranks(nodes: Sequence[tuple[str, int]]) -> list[list[RankInfo]]:
    world_size = sum(count for _, count in nodes)
    ranks: list[list[RankInfo]] = [[] for _ in nodes]
    rank = 0
    for local in range(max((count for _, count in nodes), default=0)):
        for group_rank, (host, count) in enumerate(nodes):
            if local < count:
                ranks[group_rank].append(RankInfo(rank, local, world_size, count, group_rank, host))
                rank += 1
    return ranks
