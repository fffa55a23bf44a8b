"""Stage 2 demo: a WorkerServer, RemoteWorkers beside a local Worker, same code for both.

Run it from anywhere: ``python stages/02_tcp/demo.py``. It starts a server on a free
loopback port (``python -m miniray.worker_server``, serving this file's ``work_fn``),
talks to it, shows what a wrong secret gets, and stops the server with SIGTERM.
(The server's log is silenced here; run the server by hand to see it.)
The secret is the per-user one (created on first use, mode 0600).
"""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from miniray import AuthenticationError, Channel, RemoteWorker, Worker, wait_any

HERE = Path(__file__).resolve().parent


def work_fn(handle: Channel) -> None:
    """Answer each request with who we are and the square of x."""
    while True:
        msg = handle.recv()
        handle.send({"pid": os.getpid(), "result": msg["x"] ** 2})


def start_server() -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-m", "miniray.worker_server", "--port", "0", "--workers", "4"]
    command += ["--work-fn", f"{__file__}:work_fn"]
    env = {**os.environ, "PYTHONPATH": str(HERE)}  # the server imports this stage's miniray
    server = subprocess.Popen(
        command, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert server.stdout is not None
    ready = json.loads(server.stdout.readline().removeprefix("MINIRAY_READY "))
    # Workers print into the same pipe: keep it drained, or a full pipe blocks their print.
    threading.Thread(target=forward, args=(server.stdout,), daemon=True).start()
    return server, ready["port"]


def forward(stream: IO[str]) -> None:
    """Copy what the server's workers print to our stdout, until the server exits."""
    for line in stream:
        sys.stdout.write(line)


def main() -> None:
    server, port = start_server()
    try:
        workers = [RemoteWorker("127.0.0.1", port) for _ in range(2)] + [Worker(work_fn)]
        for x, worker in enumerate(workers):  # the same calls, whatever the kind of worker
            worker.send({"x": x + 2})
        pending = set(workers)
        while pending:
            for worker in wait_any(pending, timeout=10):
                print(f"{type(worker).__name__:12} ->", worker.recv(timeout=0))
                pending.discard(worker)
        for worker in workers:
            worker.close()

        try:
            RemoteWorker("127.0.0.1", port, secret="not-the-right-secret-at-all-0123456789")
        except AuthenticationError as e:
            print("wrong secret:", e)
    finally:
        server.terminate()
        print("server exit code", server.wait(timeout=10))


if __name__ == "__main__":
    main()
