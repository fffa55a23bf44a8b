"""Takes the node's worker count as WORLD_SIZE: every node thinks it is the whole world."""


def assign_ranks(nodes: Sequence[tuple[str, int]]) -> list[list[RankInfo]]:
    ranks: list[list[RankInfo]] = []
    first = 0
    for group_rank, (host, count) in enumerate(nodes):
        ranks.append(
            [
                RankInfo(first + local, local, count, count, group_rank, host)
                for local in range(count)
            ]
        )
        first += count
    return ranks
