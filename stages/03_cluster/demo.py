"""Stage 3 demo: a Cluster of two nodes, with ranks, streamed logs and a clean stop.

Run it from anywhere: ``python stages/03_cluster/demo.py``. Both nodes are this machine
(``localhost`` and ``127.0.0.1`` run their server as a local subprocess, no SSH needed);
name a host from your ``~/.ssh/config`` instead and the same code runs there over SSH.
Each worker's prints come back prefixed with ``[host rN]``.
"""

import os
import socket
import sys

from miniray import Channel, Cluster, ClusterError, NodeConfig

HERE = os.path.dirname(os.path.abspath(__file__))


def say(line: object) -> None:
    """Print one line in one write: the cluster's log thread prints at the same time."""
    sys.stdout.write(f"{line}\n")


def work_fn(handle: Channel) -> None:
    """Say hello (a log line), then answer each request with our rank and x squared."""
    print(f"hello from rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}")
    while True:
        msg = handle.recv()
        handle.send({"rank": int(os.environ["RANK"]), "result": msg["x"] ** 2})


def main() -> None:
    # The nodes run in this folder: `python -m miniray.cluster_server` then imports this
    # stage's miniray, whatever folder the demo was started from (a module run with -m
    # finds the folder it runs in first, before PYTHONPATH).
    nodes = [
        NodeConfig("localhost", num_workers=2, cwd=HERE),
        NodeConfig("127.0.0.1", num_workers=2, cwd=HERE),
    ]
    with Cluster(nodes, log=say) as cluster:
        workers = cluster.start(work_fn=f"{__file__}:work_fn")
        for worker in workers:
            worker.send({"x": worker.rank + 2})
        for worker in workers:
            where = f"rank {worker.rank} on {worker.host} (local rank {worker.local_rank})"
            say(f"{where}: {worker.recv(timeout=10)}")
    for worker in workers:
        print(f"rank {worker.rank}: exit code {worker.returncode}")

    with socket.create_server(("127.0.0.1", 0)) as taken:  # a node whose port is busy
        busy = NodeConfig("localhost", num_workers=1, base_port=taken.getsockname()[1], cwd=HERE)
        try:
            Cluster([busy]).start(work_fn=f"{__file__}:work_fn")
        except ClusterError as e:
            print("ClusterError:", e)


if __name__ == "__main__":
    main()
