# @3+
"""Ranks: which worker of a cluster is which, and the environment each one starts with.

Workers are numbered node by node, then by their index on the node, so the order is
stable and the same on every run:

    NodeConfig("node1", num_workers=2), NodeConfig("node2", num_workers=3)
    -> node1: ranks 0, 1 (local ranks 0, 1)   node2: ranks 2, 3, 4 (local ranks 0, 1, 2)

Each worker process gets torchrun's environment contract before its work function
runs: ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK`` (the
node's index), plus ``MINIRAY_HOST`` (the node's name as the coordinator wrote it).
`RankInfo.environment` is the one place those variables are built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ProtocolError

RANK_MESSAGE_KEY = "miniray_rank"  # the coordinator's first message to each cluster worker


@dataclass(frozen=True)
class RankInfo:
    """Where one worker sits in the cluster."""

    rank: int  # 0 .. world_size - 1, over all nodes
    local_rank: int  # 0 .. local_world_size - 1, on its node
    world_size: int  # workers in the whole cluster
    local_world_size: int  # workers on its node
    group_rank: int  # the node's index in the cluster
    host: str  # the node's name, as given to NodeConfig

    def environment(self) -> dict[str, str]:
        """The environment variables a worker with this rank starts with."""
        return {
            "RANK": str(self.rank),
            "LOCAL_RANK": str(self.local_rank),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_WORLD_SIZE": str(self.local_world_size),
            "GROUP_RANK": str(self.group_rank),
            "MINIRAY_HOST": self.host,
        }

    def message(self) -> dict[str, Any]:
        """The message that tells a cluster worker its rank (see ``from_message``)."""
        return {RANK_MESSAGE_KEY: asdict(self)}

    @classmethod
    def from_message(cls, msg: object) -> RankInfo:
        """Read a rank message; `ProtocolError` if it is anything else."""
        # A message from the wire: checked by hand, not with assert (gone under -O).
        fields = msg.get(RANK_MESSAGE_KEY) if isinstance(msg, dict) else None
        try:
            info = cls(**fields) if isinstance(fields, dict) else None
        except TypeError:  # a field missing or one too many
            info = None
        if info is None or not info.is_consistent():
            raise ProtocolError(f"expected a rank assignment, got {msg!r:.200}")
        return info

    def is_consistent(self) -> bool:
        """Whether the fields are what `assign_ranks` could have made: counts in range."""
        numbers = [self.rank, self.local_rank, self.world_size]
        numbers += [self.local_world_size, self.group_rank]
        return (
            all(type(n) is int and n >= 0 for n in numbers)
            and isinstance(self.host, str)
            and self.rank < self.world_size
            and self.local_rank < self.local_world_size <= self.world_size
        )


# --8<-- [start:assign_ranks]
def assign_ranks(nodes: Sequence[tuple[str, int]]) -> list[list[RankInfo]]:
    """Number the workers of a cluster: node order first, then the index on the node.

    Args:
        nodes: ``(host, num_workers)`` for each node, in the cluster's order.

    Returns:
        One list per node, holding its workers' `RankInfo` in local-rank order.
    """
    world_size = sum(count for _, count in nodes)
    ranks: list[list[RankInfo]] = []
    first = 0
    for group_rank, (host, count) in enumerate(nodes):
        ranks.append(
            [
                RankInfo(first + local, local, world_size, count, group_rank, host)
                for local in range(count)
            ]
        )
        first += count
    return ranks


# --8<-- [end:assign_ranks]
