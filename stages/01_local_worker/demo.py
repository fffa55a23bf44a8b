"""Stage 1 demo: four forked workers, per-rank environment, errors that travel.

Run it from anywhere: ``python stages/01_local_worker/demo.py``. Python puts this
file's folder first on ``sys.path``, so ``import miniray`` finds this stage's package.
"""

import os

from miniray import Channel, RemoteError, spawn_workers, wait_any


def work_fn(handle: Channel) -> None:
    """Square numbers until told to stop; fail loudly on a bad request."""
    rank = int(os.environ["RANK"])
    while True:
        msg = handle.recv()
        if msg["cmd"] == "stop":
            return
        if msg["cmd"] == "square":
            handle.send({"rank": rank, "pid": os.getpid(), "result": msg["x"] ** 2})
        else:
            raise ValueError(f"unknown command {msg['cmd']!r}")


def main() -> None:
    workers = spawn_workers(work_fn, 4, env_for_rank=lambda rank: {"RANK": str(rank)})
    try:
        for x, worker in enumerate(workers):
            worker.send({"cmd": "square", "x": x + 1})
        pending = set(workers)
        while pending:
            for worker in wait_any(pending, timeout=10):
                print("got", worker.recv(timeout=0))
                pending.discard(worker)

        workers[0].send({"cmd": "divide"})
        try:
            workers[0].recv(timeout=10)
        except RemoteError as e:
            print(f"worker {e.pid} raised {e.remote_type}: {e.remote_message}")
        for worker in workers[1:]:
            worker.send({"cmd": "stop"})
            print(f"worker {worker.pid} exit code {worker.wait(timeout=10)}")
    finally:
        for worker in workers:
            worker.close()


if __name__ == "__main__":
    main()
