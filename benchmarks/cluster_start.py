"""How long a Cluster takes to start, next to plain ssh to the same hosts (same run).

    python benchmarks/cluster_start.py [--repeats 5] [--json PATH]

Rows (medians over the repeats, each a fresh cluster):

* ``ssh host true, 2 hosts in parallel``: the baseline, the least any SSH launcher pays;
* ``Cluster 2 hosts x 4 workers over SSH``: from ``Cluster(...).start()`` until every worker
  has answered one message, as a ratio to the baseline and as the difference;
* ``python -c "import miniray"``: the floor for a local server (one interpreter start);
* ``Cluster localhost x 8 workers``: the same measurement, no SSH.

The SSH hosts are made here, as in the tests: two network namespaces with an sshd each
when the machine allows (root, ``unshare --net``), else a private sshd on 127.0.0.2 and
127.0.0.3. Needs ``sshd`` (openssh-server). Absolute numbers depend on the machine (and
on the login shell's start-up files on the hosts); compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from json_rows import results_from_samples, write_json  # noqa: E402
from sshhosts import SshHosts, netns_missing_reason, sshd_missing_reason  # noqa: E402

from miniray import Cluster, NodeConfig  # noqa: E402

WORK_FN = "cluster_workfns.whoami"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="also write the rows to PATH as JSON")
    args = parser.parse_args()
    reason = sshd_missing_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    pythonpath = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    os.environ["PYTHONPATH"] = pythonpath  # the localhost nodes import the same modules
    with tempfile.TemporaryDirectory(prefix="miniray-bench-") as workdir:
        hosts = SshHosts(Path(workdir), pythonpath)
        try:
            names, where = make_hosts(hosts)
            os.environ["MINIRAY_SSH_COMMAND"] = f"ssh -F {hosts.ssh_config}"
            times = measure(names, hosts.ssh_config, args.repeats)
            print_table(times, where, args.repeats)
            if args.json:
                write_rows(args.json, times, {"SSH hosts": where, "repeats": args.repeats})
        finally:
            hosts.close()
    return 0


def make_hosts(hosts: SshHosts) -> tuple[list[str], str]:
    """Two ssh aliases, and a phrase saying what they are."""
    if netns_missing_reason() is None:
        for i, (_, address) in enumerate(hosts.make_namespace_hosts(2), start=1):
            hosts.add_alias(f"bench{i}", address, 22)
        where = "2 network-namespace hosts"
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        hosts.start_sshd("loopback", ["127.0.0.2", "127.0.0.3"], port)
        hosts.add_alias("bench1", "127.0.0.2", port)
        hosts.add_alias("bench2", "127.0.0.3", port)
        where = "a loopback sshd (no network namespaces here)"
    names = ["bench1", "bench2"]
    hosts.wait_until_reachable(names)
    return names, where


def measure(names: list[str], ssh_config: Path, repeats: int) -> dict[str, list[float]]:
    ssh = ["ssh", "-F", str(ssh_config), "-T", "-o", "BatchMode=yes"]

    def ssh_true() -> None:
        with ThreadPoolExecutor(len(names)) as pool:
            codes = list(pool.map(lambda n: subprocess.call([*ssh, n, "true"]), names))
        assert codes == [0] * len(names), codes

    def python_import() -> None:
        subprocess.check_call([sys.executable, "-c", "import miniray"])

    ssh_nodes = [NodeConfig(n, num_workers=4) for n in names]
    local_nodes = [NodeConfig("localhost", num_workers=8)]
    rows = {
        "ssh host true, 2 hosts in parallel": ssh_true,
        "Cluster 2 hosts x 4 workers over SSH": lambda: start_and_ask(ssh_nodes),
        'python -c "import miniray"': python_import,
        "Cluster localhost x 8 workers": lambda: start_and_ask(local_nodes),
    }
    times: dict[str, list[float]] = {row: [] for row in rows}
    for _ in range(repeats):  # interleaved, so that a slow moment hits every row alike
        for row, run in rows.items():
            times[row].append(timed(run))
    return times


def start_and_ask(nodes: list[NodeConfig]) -> float:
    """Start the cluster, have every worker answer once; the time until then."""
    started = time.perf_counter()
    cluster = Cluster(nodes, log=lambda line: None)
    try:
        workers = cluster.start(work_fn=WORK_FN)
        for worker in workers:
            worker.send("hi")
        for worker in workers:
            worker.recv(timeout=30)
        return time.perf_counter() - started
    finally:
        cluster.stop()


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    result = run()
    return result if isinstance(result, float) else time.perf_counter() - started


def print_table(times: dict[str, list[float]], where: str, repeats: int) -> None:
    median = {row: statistics.median(values) for row, values in times.items()}
    rows = list(median)
    print(f"{'what':42} {'median s':>9} {'min s':>7} {'max s':>7}  vs baseline")
    for row in rows:
        values = times[row]
        line = f"{row:42} {median[row]:9.3f} {min(values):7.3f} {max(values):7.3f}"
        if row in baselines(rows):
            base = median[baselines(rows)[row]]
            line += f"  {median[row] / base:.2f}x, +{median[row] - base:.3f} s"
        print(line)
    print(f"({repeats} repeats; SSH hosts: {where})")


def write_rows(path: str, times: dict[str, list[float]], notes: dict[str, object]) -> None:
    """The table's rows as JSON (``--json``), with each ratio's difference."""
    compared = {row: [base] for row, base in baselines(list(times)).items()}
    rows = results_from_samples(
        "cluster start",
        times,
        unit="s",
        better="lower",
        baselines=compared,
        differences=True,
        paired=times,  # each repeat starts every row once
    )
    write_json(path, rows, notes)


def baselines(rows: list[str]) -> dict[str, str]:
    """Each cluster row's baseline: the row above it."""
    return {rows[1]: rows[0], rows[3]: rows[2]}


if __name__ == "__main__":
    sys.exit(main())
