"""Real-sized data through a Cluster with default settings, next to raw TCP (same run).

    python benchmarks/cluster_data.py [--mib 256] [--repeats 3] [--ssh] [--json PATH]

Rows (MB/s of array data, medians over the repeats, each repeat every row once):

* ``raw TCP + MAC, one way``: the ceiling: ``--mib`` MiB over loopback TCP, both ends
  hashing every byte (HMAC-SHA256, a chunk at a time as it goes) as MiniRay's frames do;
* ``Cluster localhost 2 nodes x 2 workers, there and back``: a float64 array of ``--mib``
  MiB sent to each of the 4 workers and echoed back (4 x 2 x ``--mib`` MiB moved), the
  workers on two local node servers; as a ratio to the ceiling;
* with ``--ssh``, the same over SSH to two network-namespace hosts (needs root, sshd).

The same transfer is a test (tests/cluster/test_big_data.py, bit-exact); this script only
times it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from extension_peers import raw_tcp_handoff  # noqa: E402
from json_rows import results_from_samples, write_json  # noqa: E402
from sshhosts import SshHosts, netns_missing_reason  # noqa: E402

from miniray import Cluster, NodeConfig  # noqa: E402

WORK_FN = "cluster_workfns.echo_numpy"
CEILING = "raw TCP + MAC, one way"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ssh", action="store_true", help="also over SSH to netns hosts")
    parser.add_argument("--json", metavar="PATH", help="also write the rows to PATH as JSON")
    args = parser.parse_args()
    import numpy  # the array sent (numpy is in the bench extra)

    data = numpy.arange(args.mib * (1 << 20) // 8, dtype=numpy.float64)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    rows: dict[str, Callable[[], float]] = {CEILING: _raw_tcp(data.nbytes)}
    local = [NodeConfig("localhost", 2), NodeConfig("127.0.0.1", 2)]
    rows["Cluster localhost 2 nodes x 2 workers, there and back"] = lambda: _echo(local, data)
    with tempfile.TemporaryDirectory(prefix="miniray-bench-") as workdir:
        hosts = None
        if args.ssh and netns_missing_reason() is None:
            hosts = SshHosts(Path(workdir), os.environ["PYTHONPATH"])
            for i, (_, address) in enumerate(hosts.make_namespace_hosts(2), start=1):
                hosts.add_alias(f"bench{i}", address, 22)
            hosts.wait_until_reachable(["bench1", "bench2"])
            os.environ["MINIRAY_SSH_COMMAND"] = f"ssh -F {hosts.ssh_config}"
            ssh_nodes = [NodeConfig("bench1", 2), NodeConfig("bench2", 2)]
            name = "Cluster 2 SSH netns hosts x 2 workers, there and back"
            rows[name] = lambda: _echo(ssh_nodes, data)
        elif args.ssh:
            print(f"no SSH rows: {netns_missing_reason()}", file=sys.stderr)
        try:
            samples: dict[str, list[float]] = {row: [] for row in rows}
            for _ in range(args.repeats):  # interleaved: a slow moment hits every row alike
                for row, run in rows.items():
                    samples[row].append(run())
        finally:
            if hosts is not None:
                hosts.close()
    _print_table(samples, args.mib, args.repeats)
    if args.json:
        compared = {row: [CEILING] for row in samples if row != CEILING}
        results = results_from_samples(
            "cluster data", samples, unit="MB/s", better="higher", baselines=compared,
            paired=samples,
        )  # fmt: skip
        write_json(args.json, results, {"MiB per worker": args.mib, "repeats": args.repeats})
    return 0


def _raw_tcp(size: int) -> Callable[[], float]:
    measure = raw_tcp_handoff(size, mac=True)
    return measure.run


def _echo(nodes: list[NodeConfig], data: Any) -> float:
    """Start the cluster, send ``data`` to every worker and take each answer back; MB/s of
    array data moved (both ways), counted from the first send, the start left out."""
    with Cluster(nodes, log=lambda line: None) as cluster:
        workers = cluster.start(work_fn=WORK_FN)
        started = time.perf_counter()
        for worker in workers:
            worker.send({"data": data})
        for worker in workers:
            if worker.recv(timeout=300)["data"].nbytes != data.nbytes:
                raise RuntimeError(f"rank {worker.rank} sent back something else")
        seconds = time.perf_counter() - started
    return 2 * len(workers) * data.nbytes / seconds / 1e6


def _print_table(samples: dict[str, list[float]], mib: int, repeats: int) -> None:
    ceiling = statistics.median(samples[CEILING])
    print(f"{mib} MiB per worker, {repeats} repeats (MB/s of array data)")
    print(f"{'what':58} {'median':>8} {'min':>8} {'max':>8}  vs ceiling")
    for row, values in samples.items():
        median = statistics.median(values)
        ratio = "" if row == CEILING else f"  {median / ceiling:.2f}x"
        print(f"{row:58} {median:8.0f} {min(values):8.0f} {max(values):8.0f}{ratio}")


if __name__ == "__main__":
    sys.exit(main())
