"""Stage 5 demo: functions called by name with futures, the marshal codec, and buffers.

python stages/05_extensions/demo.py
"""

from __future__ import annotations

import concurrent.futures
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # this stage's miniray

from miniray import Channel, Registry, RemoteError, UnknownFunction, Worker

registry = Registry()


@registry.register
def train_step(batch: list[float]) -> dict[str, float]:
    return {"loss": sum(x * x for x in batch) / len(batch), "pid": os.getpid()}


@registry.register
def fails() -> None:
    raise ValueError("a bad batch")


def echo(handle: Channel) -> None:
    while True:
        handle.send(handle.recv())


def main() -> None:
    print("C. a registry in the worker, called by name")
    workers = [Worker(registry) for _ in range(2)]
    print("  call_remote:", workers[0].call_remote("train_step", [1.0, 2.0, 3.0]))
    futures = [w.submit("train_step", [float(i)] * 4) for i in range(8) for w in workers]
    done = concurrent.futures.as_completed(futures, timeout=10)
    print("  16 pipelined calls on 2 workers:", sorted(f.result()["loss"] for f in done)[:4], "...")
    try:
        workers[1].call_remote("fails")
    except RemoteError as e:
        print(f"  a remote error: {e.remote_type}: {e.remote_message}")
    try:
        workers[1].call_remote("train")
    except UnknownFunction as e:
        print(f"  an unknown name: {e.remote_message}")
    for worker in workers:
        worker.close()
        print(f"  worker pid {worker.pid}: exit code {worker.returncode}")

    print("B. marshal keeps the types JSON loses")
    for codec in ("json", "marshal"):
        with Worker(echo, codec=codec) as worker:
            worker.send({"shape": (2, 3), 7: "int key", "nan": float("nan")})
            print(f"  {codec:7}", worker.recv(timeout=5))

    print("A. buffers beside the message, through shared memory")
    with Worker(echo, max_frame=64 << 20) as worker:
        data = os.urandom(8 << 20)
        worker.send({"name": "weights", "data": data})
        back = worker.recv(timeout=10)
        print("  8 MiB of bytes back as", type(back["data"]).__name__, back["data"] == data)
        worker.send({"data": data})
        view = worker.recv(timeout=10, copy=False)["data"]
        print("  as a zero-copy view:", type(view).__name__, "read-only:", view.readonly)


if __name__ == "__main__":
    main()
