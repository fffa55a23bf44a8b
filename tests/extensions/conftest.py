"""Fixtures for the extension tests: a worker of either transport, and WorkerServers.

``ext_connect(work_fn, **options)`` gives a local ``Worker`` or a ``RemoteWorker`` (by the
``transport`` parameter) running ``work_fn``. The WorkerServer is a real one, forked from
the test process (faster than a new interpreter: the tests only need its protocol), on a
loopback port, and stopped with SIGTERM at the end.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # for ext_workfns

SECRET = "extension-tests-secret-0123456789"


class Servers:
    """WorkerServers forked from this process, one per (work function, codecs)."""

    def __init__(self) -> None:
        self._servers: dict[tuple[Any, tuple[str, ...]], tuple[Any, int]] = {}

    def port(self, work_fn: Callable[..., Any], codecs: tuple[str, ...] = ()) -> int:
        import miniray

        key = (work_fn, codecs)
        if key not in self._servers:

            def run(handle: Any) -> None:
                options = {"codecs": codecs} if codecs else {}
                server = miniray.WorkerServer(
                    work_fn, secret=SECRET, max_workers=16, exit_grace=0.5, **options
                )
                handle.send(server.port)
                server.serve_forever()

            holder = miniray.Worker(run)
            self._servers[key] = (holder, holder.recv(timeout=10))
        return int(self._servers[key][1])

    def connect(self, work_fn: Callable[..., Any], **options: Any) -> Any:
        import miniray

        codecs = tuple(options.pop("server_codecs", ()))
        port = self.port(work_fn, codecs)
        return miniray.RemoteWorker("127.0.0.1", port, secret=SECRET, **options)

    def stop(self) -> None:
        for holder, _ in self._servers.values():
            holder.close(timeout=0)  # SIGTERM at once: the server stops its workers and exits


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    made = Servers()
    yield made
    made.stop()


@pytest.fixture(
    params=[
        pytest.param("local", marks=pytest.mark.needs("local")),
        pytest.param("tcp", marks=pytest.mark.needs("tcp")),
    ]
)
def ext_connect(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``ext_connect(work_fn, **options)``: a worker of this run's transport, closed at the end."""
    import miniray

    made: list[Any] = []

    def connect(work_fn: Callable[..., Any], **options: Any) -> Any:
        if request.param == "local":
            options.pop("server_codecs", None)
            made.append(miniray.Worker(work_fn, **options))
        else:
            made.append(request.getfixturevalue("servers").connect(work_fn, **options))
        return made[-1]

    yield connect
    for worker in made:
        worker.close(timeout=2.0)
