"""MiniRay's main demo: the seed's quick start, in one runnable script.

    make demo            # or: python examples/demo.py (with miniray installed)

It does what the seed's two terminals do: starts a WorkerServer serving
``my_module.work_fn`` (terminal 1), then connects a RemoteWorker and talks to it
(terminal 2). Then it shows what MiniRay does when things go wrong: a remote exception
arrives with its traceback, and a killed worker is reported, not waited on forever.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from miniray import RemoteError, RemoteWorker, WorkerDied

HERE = Path(__file__).resolve().parent


def start_server(port: int = 0) -> tuple[subprocess.Popen[str], int]:
    """Terminal 1: ``python -m miniray.worker_server --port 0 --work-fn my_module.work_fn``."""
    command = [sys.executable, "-m", "miniray.worker_server", "--port", str(port)]
    command += ["--workers", "4", "--work-fn", "my_module.work_fn"]
    server = subprocess.Popen(
        command, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert server.stdout is not None
    ready = json.loads(server.stdout.readline().removeprefix("MINIRAY_READY "))
    return server, ready["port"]


def main() -> None:
    server, port = start_server()
    try:
        # Terminal 2, as in the seed:
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
