"""MiniRay 0.4, the library as the tutorial's stage 4 leaves it: workers on this machine
(``Worker``), on a server (``RemoteWorker``), or on many machines started over SSH
(``Cluster``, whose workers are ``ClusterWorker``s); and torch.distributed training across
a cluster's workers (``NCCLConfig``, ``preflight``, ``train_step``; the FSDP backend is
``miniray.fsdp``, which needs ``miniray[torch]``).

All have the same API: ``send``, ``recv(timeout)``, ``wait(timeout)``, ``is_alive``,
``close``, and a context manager.

    # terminal 1
    python -m miniray.worker_server --port 10000 --workers 4 --work-fn my_module.work_fn

    # terminal 2
    from miniray import RemoteWorker
    worker = RemoteWorker("localhost", 10000)
    worker.send({"cmd": "echo", "data": "hello"})
    print(worker.recv())

    # many machines, one WorkerServer each, started over SSH
    from miniray import Cluster, NodeConfig
    with Cluster([NodeConfig("node1", num_workers=4)]) as cluster:
        workers = cluster.start(work_fn="my_module.work_fn")
        configs = cluster.distributed_configs()     # one NCCLConfig per rank
        backend = preflight(cluster, configs)       # every rank joined, or PreflightError

``import miniray`` does not import torch: only ``miniray.fsdp`` and the rank's half of
the preflight (``join_process_group``) do.
"""

from .channel import Channel
from .cluster import Cluster, ClusterError, ClusterWorker, LogLine, NodeConfig
from .distributed import gather
from .errors import (
    AuthenticationError,
    BacklogFull,
    ChannelClosed,
    MiniRayError,
    ProtocolError,
    RemoteError,
    ServerFull,
    ServerUnreachable,
    WorkerDied,
    WorkFnNotFound,
)
from .nccl import DistributedConfigError, NCCLConfig, create_nccl_configs, setup_nccl_env
from .preflight import PreflightError, join_process_group, preflight
from .remote_worker import RemoteWorker
from .server import WorkerServer
from .training import serve_training, train_step
from .worker import Worker, spawn_workers, wait_any

__version__ = "0.4.0"  # the library after stage N is 0.N; pyproject.toml reads it from here

__all__ = [
    "AuthenticationError",
    "BacklogFull",
    "Channel",
    "ChannelClosed",
    "Cluster",
    "ClusterError",
    "ClusterWorker",
    "DistributedConfigError",
    "LogLine",
    "MiniRayError",
    "NCCLConfig",
    "NodeConfig",
    "PreflightError",
    "ProtocolError",
    "RemoteError",
    "RemoteWorker",
    "ServerFull",
    "ServerUnreachable",
    "WorkFnNotFound",
    "Worker",
    "WorkerDied",
    "WorkerServer",
    "create_nccl_configs",
    "gather",
    "join_process_group",
    "preflight",
    "serve_training",
    "setup_nccl_env",
    "spawn_workers",
    "train_step",
    "wait_any",
]
