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
from testutil import ServerProcess, secret_env

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


class WorkerServers:
    """One WorkerServer per work function, started on first use, stopped at the end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.servers: dict[str, ServerProcess] = {}

    def connect(self, name: str, **options: Any) -> Any:
        import miniray

        if name not in self.servers:
            self.servers[name] = ServerProcess(
                name, "--workers", "16", "--exit-grace", "0.5", env=self.env
            )
        secret_file = self.env["MINIRAY_SECRET_FILE"]
        with open(secret_file) as f:
            secret = f.read()
        return miniray.RemoteWorker("127.0.0.1", self.servers[name].port, secret=secret, **options)


@pytest.fixture(scope="session")
def worker_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerServers]:
    """The session's WorkerServers; each must stop cleanly (exit 0) on SIGTERM."""
    servers = WorkerServers(secret_env(str(tmp_path_factory.mktemp("secret"))))
    yield servers
    codes = {name: server.stop() for name, server in servers.servers.items()}
    assert all(code == 0 for code in codes.values()), codes


@pytest.fixture
def transport(connect: Connect, request: pytest.FixtureRequest) -> str:
    """The transport name (``local`` or ``tcp``) of this run of the test."""
    name: str = request.node.callspec.params["connect"]
    return name
