"""The ``connect`` fixture: one worker factory per transport the stage has.

A contract test asks for ``connect`` and calls ``connect("echo")`` to get a worker
running ``workfns.echo``; it runs once per transport (``local``: a forked Worker;
``tcp``: a RemoteWorker to a WorkerServer) that the stage under test supports.
Every worker made here is closed when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import workfns

Connect = Callable[..., Any]


@pytest.fixture(
    params=[
        pytest.param("local", marks=pytest.mark.needs("local")),
        pytest.param("tcp", marks=pytest.mark.needs("tcp")),
    ]
)
def connect(request: pytest.FixtureRequest) -> Iterator[Connect]:
    """Return ``connect(work_fn_name, **options) -> worker`` for this transport."""
    made: list[Any] = []

    import miniray  # not at module level: pytest loads this file before --stage is applied

    def local(name: str, **options: Any) -> Any:
        made.append(miniray.Worker(getattr(workfns, name), **options))
        return made[-1]

    def tcp(name: str, **options: Any) -> Any:
        servers = request.getfixturevalue("worker_servers")
        made.append(servers.connect(name, **options))
        return made[-1]

    yield local if request.param == "local" else tcp
    for worker in made:
        worker.close(timeout=2.0)


@pytest.fixture
def transport(connect: Connect, request: pytest.FixtureRequest) -> str:
    """The transport name (``local`` or ``tcp``) of this run of the test."""
    name: str = request.node.callspec.params["connect"]
    return name
