# @4+
"""What a rank needs to join a torch.distributed process group, and how it gets it.

``torch.distributed.init_process_group(init_method="env://")`` reads its rendezvous from
environment variables: ``MASTER_ADDR`` and ``MASTER_PORT`` (where rank 0 serves the
key-value store everyone meets at), ``WORLD_SIZE`` and ``RANK``. Launchers (torchrun) and
training code read ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` (which GPU is mine). The
transports read ``NCCL_SOCKET_IFNAME`` / ``GLOO_SOCKET_IFNAME``: the network interface for
their own connections, which is *not* chosen by ``MASTER_ADDR``.

The coordinator builds one `NCCLConfig` per rank, sends it as a plain dict, and each
worker turns it back into its environment:

    # coordinator                                  # worker (in work_fn)
    configs = cluster.distributed_configs()        config = NCCLConfig(**handle.recv())
    for worker, config in zip(workers, configs):   setup_nccl_env(config)
        worker.send(config.__dict__)               dist.init_process_group("nccl")

No torch here: this module is part of the core package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import DistributedConfigError
from .ranks import RankInfo, assign_ranks
from .settings import check_count


# --8<-- [start:config]
@dataclass
class NCCLConfig:
    """One rank's place in a torch.distributed process group.

    Only JSON-friendly fields, so ``NCCLConfig(**json.loads(json.dumps(c.__dict__)))``
    equals ``c``: the round trip ``worker.send(config.__dict__)`` makes.

    Attributes:
        master_addr: Address of rank 0's node, as the other nodes reach it.
        master_port: Port of rank 0's rendezvous store (free on rank 0's node).
        world_size: Ranks in the whole group.
        rank: This rank, 0 .. world_size - 1.
        local_rank: This rank's index on its node (its GPU, with NCCL).
        local_world_size: Ranks on this rank's node.
        group_rank: The node's index (torchrun's ``GROUP_RANK``).
        host: The node's name, for messages.
        socket_ifname: The interface that routes to ``master_addr`` on this rank's node;
            None leaves NCCL and gloo to guess.
    """

    master_addr: str
    master_port: int
    world_size: int
    rank: int
    local_rank: int
    local_world_size: int
    group_rank: int = 0
    host: str = ""
    socket_ifname: str | None = None

    def __post_init__(self) -> None:
        _check_types(self)  # a config may arrive as a message: NCCLConfig(**handle.recv())
        if not self.master_addr:
            raise DistributedConfigError("master_addr is empty")
        if not 0 < self.master_port < 65536:
            raise DistributedConfigError(f"master_port {self.master_port} is not a TCP port")
        if not 0 <= self.rank < self.world_size:
            raise DistributedConfigError(f"rank {self.rank} is not in 0..{self.world_size - 1}")
        if not 0 <= self.local_rank < self.local_world_size <= self.world_size:
            raise DistributedConfigError(
                f"rank {self.rank}: local_rank {self.local_rank} does not fit "
                f"local_world_size {self.local_world_size} (world size {self.world_size})"
            )

    @property
    def rank_info(self) -> RankInfo:
        """This rank's place in the cluster, as ``ranks`` numbers it."""
        return RankInfo(
            self.rank,
            self.local_rank,
            self.world_size,
            self.local_world_size,
            self.group_rank,
            self.host,
        )

    def environment(self) -> dict[str, str]:
        """The environment variables this config stands for (see `setup_nccl_env`): the
        rank's own (`RankInfo.environment`), the rendezvous, and the interface if known."""
        env = {
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
            **self.rank_info.environment(),
        }
        if self.socket_ifname:
            env["NCCL_SOCKET_IFNAME"] = self.socket_ifname
            env["GLOO_SOCKET_IFNAME"] = self.socket_ifname
        return env

    def describe(self) -> str:
        """``rank 2 on node2: MASTER_ADDR=10.0.0.1 MASTER_PORT=41234 via eth0``."""
        via = f"via {self.socket_ifname}" if self.socket_ifname else "interface not set"
        return (
            f"rank {self.rank} on {self.host or '?'}: "
            f"MASTER_ADDR={self.master_addr} MASTER_PORT={self.master_port} {via}"
        )


# --8<-- [end:config]


def _check_types(config: NCCLConfig) -> None:
    for name in _INT_FIELDS:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise DistributedConfigError(f"{name} must be an int, not {value!r:.40}")
    for name in ("master_addr", "host"):
        value = getattr(config, name)
        if not isinstance(value, str):
            raise DistributedConfigError(f"{name} must be a str, not {value!r:.40}")
    if config.socket_ifname is not None and not isinstance(config.socket_ifname, str):
        raise DistributedConfigError(
            f"socket_ifname must be a str or None, not {config.socket_ifname!r:.40}"
        )


_INT_FIELDS = ("master_port", "world_size", "rank", "local_rank", "local_world_size", "group_rank")


# --8<-- [start:setup_nccl_env]
def setup_nccl_env(config: NCCLConfig) -> None:
    """Set this process's environment for ``init_process_group(init_method="env://")``.

    Sets ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
    ``LOCAL_WORLD_SIZE`` and ``GROUP_RANK``; and ``NCCL_SOCKET_IFNAME`` and
    ``GLOO_SOCKET_IFNAME`` when the config knows the interface. Interface variables
    already set by the user are kept: an explicit choice beats our guess.
    """
    for name, value in config.environment().items():
        if name.endswith("_SOCKET_IFNAME") and os.environ.get(name):
            continue
        os.environ[name] = value


# --8<-- [end:setup_nccl_env]


# --8<-- [start:create_nccl_configs]
def create_nccl_configs(
    master_addr: str,
    nodes: Sequence[tuple[str, int]],
    master_port: int = 29500,
    socket_ifnames: Sequence[str | None] | None = None,
) -> list[NCCLConfig]:
    """One config per rank, in rank order: node order, then the index on the node.

    Args:
        master_addr: Address of the first node, as the other nodes reach it.
        nodes: ``(host, num_workers)`` per node, in the cluster's order.
        master_port: The rendezvous port on the first node. 29500 is torch's habit; with
            a started cluster, `Cluster.distributed_configs` asks the node for a free one.
        socket_ifnames: The interface routing to ``master_addr``, one per node (or None).

    Returns:
        ``sum(n for _, n in nodes)`` configs; ``configs[r].rank == r``.

    Raises:
        DistributedConfigError: No nodes, a node's count that is not an int of 1 or more,
            or not as many interface names as nodes.
    """
    if not nodes:
        raise DistributedConfigError("a process group needs at least one node")
    for host, count in nodes:
        try:
            check_count("num_workers", count)
        except (TypeError, ValueError) as e:
            raise DistributedConfigError(f"node {host}: {e}") from None
    if socket_ifnames is not None and len(socket_ifnames) != len(nodes):
        raise DistributedConfigError(
            f"{len(socket_ifnames)} interface names for {len(nodes)} nodes"
        )
    configs = []
    for node_ranks in assign_ranks(nodes):  # the cluster's own numbering, not a second one
        for info in node_ranks:
            ifname = socket_ifnames[info.group_rank] if socket_ifnames is not None else None
            configs.append(
                NCCLConfig(
                    master_addr=master_addr,
                    master_port=master_port,
                    world_size=info.world_size,
                    rank=info.rank,
                    local_rank=info.local_rank,
                    local_world_size=info.local_world_size,
                    group_rank=info.group_rank,
                    host=info.host,
                    socket_ifname=ifname,
                )
            )
    return configs


# --8<-- [end:create_nccl_configs]
