"""MiniRay 0.3, the library as the tutorial's stage 3 leaves it: workers on this machine
(``Worker``), on a server (``RemoteWorker``), or on many machines started over SSH
(``Cluster``, whose workers are ``ClusterWorker``s).

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
"""

from .channel import Channel
from .cluster import Cluster, ClusterError, ClusterWorker, LogLine, NodeConfig
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
from .remote_worker import RemoteWorker
from .server import WorkerServer
from .worker import Worker, spawn_workers, wait_any

__version__ = "0.3.0"  # the library after stage N is 0.N; pyproject.toml reads it from here

__all__ = [
    "AuthenticationError",
    "BacklogFull",
    "Channel",
    "ChannelClosed",
    "Cluster",
    "ClusterError",
    "ClusterWorker",
    "LogLine",
    "MiniRayError",
    "NodeConfig",
    "ProtocolError",
    "RemoteError",
    "RemoteWorker",
    "ServerFull",
    "ServerUnreachable",
    "WorkFnNotFound",
    "Worker",
    "WorkerDied",
    "WorkerServer",
    "spawn_workers",
    "wait_any",
]
