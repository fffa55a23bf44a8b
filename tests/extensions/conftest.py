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

sys.path.insert(0, os.path.dirname(__file__))  # for ext_workfns and ext_servers

from ext_servers import Servers


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
