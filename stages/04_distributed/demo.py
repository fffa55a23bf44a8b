"""Stage 4 demo: what a Cluster tells each rank so that torch.distributed can start.

Run it from anywhere: ``python stages/04_distributed/demo.py`` (no torch needed). Two
localhost "nodes" of two workers each; the coordinator asks the nodes for a free
rendezvous port and the interface that reaches node 0, builds every rank's
``NCCLConfig``, and each rank turns its config into the environment that
``torch.distributed.init_process_group(init_method="env://")`` reads.

To train for real (torch needed): ``python examples/train_distributed_miniray.py``.
"""

import os
import sys

from miniray import Channel, Cluster, NCCLConfig, NodeConfig, gather, setup_nccl_env

HERE = os.path.dirname(os.path.abspath(__file__))
SHOWN = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GLOO_SOCKET_IFNAME"]


def work_fn(handle: Channel) -> None:
    """Take the config (as the original design's workers do), report the environment."""
    config = NCCLConfig(**handle.recv())
    setup_nccl_env(config)
    handle.send({name: os.environ.get(name) for name in SHOWN})


def say(line: object) -> None:
    """Print one line in one write: the cluster's log thread prints at the same time."""
    sys.stdout.write(f"{line}\n")


def main() -> None:
    # The nodes run in this folder, so that they import this stage's miniray (see stage 3's demo).
    nodes = [NodeConfig("localhost", num_workers=2, cwd=HERE), NodeConfig("127.0.0.1", 2, cwd=HERE)]
    with Cluster(nodes, log=say) as cluster:
        workers = cluster.start(work_fn=f"{__file__}:work_fn")
        configs = cluster.distributed_configs()  # asks each node: port, interface
        for worker, config in zip(workers, configs, strict=True):
            worker.send(config.__dict__)
        for worker, seen in zip(workers, gather(workers, timeout=10), strict=True):
            shown = " ".join(f"{name}={value}" for name, value in seen.items())
            say(f"rank {worker.rank} on {worker.host}: {shown}")
    for worker in workers:
        print(f"rank {worker.rank}: exit code {worker.returncode}")


if __name__ == "__main__":
    main()
