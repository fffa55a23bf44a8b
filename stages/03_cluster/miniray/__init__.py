"""MiniRay, stage 3: workers on this machine (``Worker``), on a server (``RemoteWorker``),
or on many machines started over SSH (``Cluster``, whose workers are ``ClusterWorker``s).

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

__all__ = [
    "AuthenticationError",
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
