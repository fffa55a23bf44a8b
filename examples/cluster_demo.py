"""MiniRay's cluster demo: the original design's Cluster snippet, runnable on one machine.

    python examples/cluster_demo.py                 # two nodes, both localhost (no SSH)
    python examples/cluster_demo.py node1 node2     # two hosts from your ~/.ssh/config

Each node gets a WorkerServer (started over SSH unless it is localhost) serving
``my_module.work_fn``, 4 workers each, in rank order. Over SSH the nodes need this
Python at the same path, MiniRay installed, and this folder (the default ``cwd``).
"""

import sys
from pathlib import Path

from miniray import Cluster, NodeConfig

HERE = Path(__file__).resolve().parent


def main(hosts: list[str]) -> None:
    nodes = [NodeConfig(host, num_workers=4, cwd=str(HERE)) for host in hosts]
    with Cluster(nodes=nodes) as cluster:
        workers = cluster.start(work_fn="my_module.work_fn")
        for worker in workers:
            worker.send({"cmd": "echo", "data": f"hello rank {worker.rank}"})
        results = [w.recv(timeout=30) for w in workers]
        for worker, result in zip(workers, results, strict=True):
            print(f"rank {worker.rank} on {worker.host}: {result}")
    print(
        f"cluster stopped: {len(workers)} workers, exit codes",
        sorted({w.returncode for w in workers}),
    )


if __name__ == "__main__":
    main(sys.argv[1:] or ["localhost", "localhost"])
