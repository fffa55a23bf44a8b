"""WorkerServers forked from the test process, for the extension tests (see conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
                    work_fn,
                    secret=SECRET,
                    max_workers=16,
                    exit_grace=0.5,
                    max_frame=64 << 20,
                    **options,
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
