"""MiniRay's main demo: the original design's quick start, in one runnable script.

    make demo-echo       # or: python examples/demo.py (with miniray installed)

MiniRay began as a ~600-line design sketch (the original design); its quick start has
two terminals. This script does both: it starts a WorkerServer serving
``my_module.work_fn`` (terminal 1), then connects a RemoteWorker and talks to it
(terminal 2). Then it shows what MiniRay does when things go wrong: a remote exception
arrives with its traceback, and a killed worker is reported, not waited on forever.
"""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from miniray import RemoteError, RemoteWorker, WorkerDied

HERE = Path(__file__).resolve().parent


def start_server(
    port: int = 0, work_fn: str = "my_module.work_fn"
) -> tuple[subprocess.Popen[str], int]:
    """Terminal 1: ``python -m miniray.worker_server --port 0 --work-fn my_module.work_fn``.

    Returns the server and its port, read from its ready line. The server's stdout is
    also its workers' stdout: after the ready line, a thread keeps copying it to ours,
    so a worker that prints never fills the pipe and blocks.
    """
    command = [sys.executable, "-m", "miniray.worker_server", "--port", str(port)]
    command += ["--workers", "4", "--work-fn", work_fn]
    server = subprocess.Popen(
        command, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert server.stdout is not None
    line = server.stdout.readline()  # the server is listening once this line arrives
    if not line.startswith("MINIRAY_READY "):
        server.wait()
        raise RuntimeError(f"the server did not start (exit code {server.returncode})")
    threading.Thread(target=forward, args=(server.stdout,), daemon=True).start()
    return server, json.loads(line.removeprefix("MINIRAY_READY "))["port"]


def forward(stream: IO[str]) -> None:
    """Copy what the server's workers print to our stdout, until the server exits."""
    for line in stream:
        sys.stdout.write(line)


def main() -> None:
    server, port = start_server()
    try:
        # Terminal 2, as in the original design:
        worker = RemoteWorker("localhost", port)
        worker.send({"cmd": "echo", "data": "hello"})
        print(worker.recv(timeout=10))

        worker.send({"cmd": "explode", "data": None})
        try:
            worker.recv(timeout=10)
        except RemoteError as e:
            print(f"remote {e.remote_type} from pid {e.pid}: {e.remote_message}")
        worker.close()

        victim = RemoteWorker("localhost", port)
        os.kill(victim.pid, signal.SIGKILL)
        try:
            victim.recv(timeout=10)
        except WorkerDied as e:
            print("detected:", e)
        victim.close()
    finally:
        server.terminate()
        print("server stopped, exit code", server.wait(timeout=10))


if __name__ == "__main__":
    main()
