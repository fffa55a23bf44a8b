"""MiniRay, stage 4: workers on this machine (``Worker``), on a server (``RemoteWorker``),
or on many machines started over SSH (``Cluster``, whose workers are ``ClusterWorker``s);
with functions registered where they run (``Registry``, ``submit``, ``call_remote``),
a marshal codec (``codec="marshal"``), and buffers beside the message (bytes, arrays).

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

from .calls import CallsActive, UnknownFunction
from .channel import Channel
from .cluster import Cluster, ClusterError, ClusterWorker, LogLine, NodeConfig
from .codec import CodecRefused
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
from .registry import Registry, serve
from .remote_worker import RemoteWorker
from .server import WorkerServer
from .worker import Worker, spawn_workers, wait_any

__all__ = [
    "AuthenticationError",
    "CallsActive",
    "Channel",
    "ChannelClosed",
    "Cluster",
    "ClusterError",
    "ClusterWorker",
    "CodecRefused",
    "LogLine",
    "MiniRayError",
    "NodeConfig",
    "ProtocolError",
    "Registry",
    "RemoteError",
    "RemoteWorker",
    "ServerFull",
    "ServerUnreachable",
    "UnknownFunction",
    "WorkFnNotFound",
    "Worker",
    "WorkerDied",
    "WorkerServer",
    "serve",
    "spawn_workers",
    "wait_any",
]
