"""MiniRay 0.1, the library as the tutorial's stage 1 leaves it: run a function in a
forked worker and talk to it in JSON messages.

A first taste::

    from miniray import Worker

    def work_fn(handle):
        while True:
            msg = handle.recv()
            handle.send(msg["x"] ** 2)

    with Worker(work_fn) as worker:
        worker.send({"x": 3})
        print(worker.recv(timeout=5))  # 9
"""

from .channel import Channel
from .errors import ChannelClosed, MiniRayError, ProtocolError, RemoteError, WorkerDied
from .worker import Worker, spawn_workers, wait_any

__version__ = "0.1.0"  # the library after stage N is 0.N; pyproject.toml reads it from here

__all__ = [
    "Channel",
    "ChannelClosed",
    "MiniRayError",
    "ProtocolError",
    "RemoteError",
    "Worker",
    "WorkerDied",
    "spawn_workers",
    "wait_any",
]
