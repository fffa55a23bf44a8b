"""MiniRay: run Python functions in worker processes and talk to them in messages.

    from miniray import Worker

    def work_fn(handle):
        while True:
            msg = handle.recv()
            handle.send(msg["x"] ** 2)

    with Worker(work_fn) as worker:
        worker.send({"x": 3})
        print(worker.recv(timeout=5))  # 9

Every kind of worker has the same API: ``send``, ``recv(timeout)``, ``wait(timeout)``,
``is_alive``, ``close``, and a context manager. ``import miniray`` imports the standard
library only: torch is imported by ``miniray.fsdp`` and by a rank joining its process
group; a peer's array never imports numpy or torch (a process receives those arrays only
once it has imported the module itself).
"""

from .channel import Channel
from .cluster import Cluster, ClusterWorker, LogLine, NodeConfig  # @3+
from .cluster_stacks import RankStack, format_rank_stacks  # @6+
from .distributed import gather  # @4+
from .errors import (
    AuthenticationError,  # @2+
    BacklogFull,  # @2+
    CallsActive,  # @5+
    ChannelClosed,
    ClusterError,  # @3+
    CodecRefused,  # @5+
    ConfigError,  # @3+
    DistributedConfigError,  # @4+
    MiniRayError,
    PreflightError,  # @4+
    ProtocolError,
    RemoteError,
    ServerFull,  # @2+
    ServerUnreachable,  # @2+
    UnknownFunction,  # @5+
    Unsendable,
    WorkerDied,
    WorkFnNotFound,  # @2+
)
from .hosts import hosts_from_file, hosts_from_slurm  # @6+
from .preflight import join_process_group, preflight  # @4+
from .registry import Registry, serve  # @5+
from .remote_worker import RemoteWorker  # @2+
from .rendezvous import NCCLConfig, create_nccl_configs, setup_nccl_env  # @4+
from .tcp_server import WorkerServer  # @2+
from .training import serve_training, train_step  # @4+
from .worker import Worker, spawn_workers, wait_any

# @1: __version__ = "0.1.0"  # the library after stage N is 0.N; pyproject.toml reads it from here
# @2: __version__ = "0.2.0"  # the library after stage N is 0.N; pyproject.toml reads it from here
# @3: __version__ = "0.3.0"  # the library after stage N is 0.N; pyproject.toml reads it from here
# @4: __version__ = "0.4.0"  # the library after stage N is 0.N; pyproject.toml reads it from here
# @5: __version__ = "0.5.0"  # the library after stage N is 0.N; pyproject.toml reads it from here
__version__ = "0.6.0"  # the library after stage N is 0.N; pyproject.toml reads it from here  # @6+

__all__ = [
    # @2+ {
    "AuthenticationError",
    "BacklogFull",
    # @}
    "CallsActive",  # @5+
    "Channel",
    "ChannelClosed",
    # @3+ {
    "Cluster",
    "ClusterError",
    "ClusterWorker",
    # @}
    "CodecRefused",  # @5+
    "ConfigError",  # @3+
    "DistributedConfigError",  # @4+
    "LogLine",  # @3+
    "MiniRayError",
    "NCCLConfig",  # @4+
    "NodeConfig",  # @3+
    "PreflightError",  # @4+
    "ProtocolError",
    "RankStack",  # @6+
    "Registry",  # @5+
    "RemoteError",
    # @2+ {
    "RemoteWorker",
    "ServerFull",
    "ServerUnreachable",
    # @}
    "UnknownFunction",  # @5+
    "Unsendable",
    "WorkFnNotFound",  # @2+
    "Worker",
    "WorkerDied",
    "WorkerServer",  # @2+
    "create_nccl_configs",  # @4+
    "format_rank_stacks",  # @6+
    "gather",  # @4+
    # @6+ {
    "hosts_from_file",
    "hosts_from_slurm",
    # @}
    # @4+ {
    "join_process_group",
    "preflight",
    # @}
    "serve",  # @5+
    # @4+ {
    "serve_training",
    "setup_nccl_env",
    # @}
    "spawn_workers",
    "train_step",  # @4+
    "wait_any",
]
