"""Cluster start time on each launcher this machine has, next to the SSH launcher's (same run).

    python benchmarks/engine_start.py [--repeats 5] [--json PATH]

Each row: from ``Cluster(...)`` (or ``Cluster.on_ray``) until every worker of 2 nodes x 2
workers has answered one message (``cluster_start.start_and_ask``), medians over the
repeats, each a fresh cluster, the rows interleaved. The engines are made here as the tests
make them (``tests/sshhosts.py``, ``tests/slurmhosts.py``, Ray's test cluster): two
network-namespace hosts with an sshd each (SSH and ``ip netns exec {host}``), a SLURM of
two nodes on this host with one job holding both (srun), and a Ray cluster of two nodes
(Ray's own start, and ``ray.init``, are not counted; its placement group and actors are).
An engine this machine lacks is left out, with the reason. Compare the ratios to SSH.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from cluster_start import start_and_ask, timed  # noqa: E402
from json_rows import results_from_samples, write_json  # noqa: E402
from slurmhosts import SlurmHosts, SlurmUnavailable  # noqa: E402
from sshhosts import SshHosts, netns_missing_reason, sshd_missing_reason  # noqa: E402

from miniray import Cluster, NodeConfig  # noqa: E402

SSH_ROW = "ssh (2 namespace hosts)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="also write the rows to PATH as JSON")
    args = parser.parse_args()
    reason = sshd_missing_reason() or netns_missing_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    pythonpath = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    os.environ["PYTHONPATH"] = pythonpath
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray on loopback only
    cwd = str(ROOT / "tests")
    rows: dict[str, Callable[[], float]] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="miniray-bench-") as workdir:
        (Path(workdir) / "ssh").mkdir()
        (Path(workdir) / "slurm").mkdir()
        hosts = SshHosts(Path(workdir) / "ssh", pythonpath)
        slurm = SlurmHosts(Path(workdir) / "slurm")
        ray_cluster = None
        try:
            made = hosts.make_namespace_hosts(2)
            for i, (_, address) in enumerate(made, start=1):
                hosts.add_alias(f"bench{i}", address, 22)
            hosts.wait_until_reachable(["bench1", "bench2"])
            os.environ["MINIRAY_SSH_COMMAND"] = f"ssh -F {hosts.ssh_config}"
            ssh = [NodeConfig(f"bench{i}", 2, cwd=cwd) for i in (1, 2)]
            rows[SSH_ROW] = lambda: start_and_ask(ssh)
            local = [NodeConfig(h, 2, cwd=cwd) for h in ("localhost", "127.0.0.1")]
            rows["local (2 nodes here)"] = lambda: start_and_ask(local)
            template = ["ip", "netns", "exec", "{host}"]
            netns = [NodeConfig(n, 2, cwd=cwd, launcher=template, address=a) for n, a in made]
            rows["ip netns exec {host} (the same hosts)"] = lambda: start_and_ask(netns)
            try:
                slurm.start()
                os.environ.update(SLURM_CONF=str(slurm.conf), SLURM_JOB_ID=allocate(slurm))
                srun = [NodeConfig(n, 2, cwd=cwd, launcher="srun") for n in ("n1", "n2")]
                rows["srun (SLURM, 2 nodes on this host)"] = lambda: start_and_ask(srun)
            except SlurmUnavailable as e:
                skipped["srun"] = str(e)
            ray_cluster = start_ray(skipped)
            if ray_cluster is not None:
                rows["Cluster.on_ray (2 Ray nodes)"] = ray_start_and_ask
            times: dict[str, list[float]] = {row: [] for row in rows}
            for _ in range(args.repeats):  # interleaved: a slow moment hits every row alike
                for row, run in rows.items():
                    times[row].append(timed(run))
        finally:
            if ray_cluster is not None:
                import ray

                ray.shutdown()
                ray_cluster.shutdown()
            slurm.close()
            hosts.close()
    print_table(times, args.repeats, skipped)
    if args.json:
        compared = {row: [SSH_ROW] for row in times if row != SSH_ROW}
        results = results_from_samples(
            "engine start", times, unit="s", better="lower", baselines=compared,
            differences=True, paired=times,
        )  # fmt: skip
        write_json(args.json, results, {"repeats": args.repeats, "skipped": skipped})
    return 0


def allocate(slurm: SlurmHosts) -> str:
    """A job holding both nodes (``salloc --no-shell``): its id."""
    done = subprocess.run(
        ["salloc", "-N2", "--no-shell", "--time=30"],
        capture_output=True, text=True, timeout=30, env=slurm.client_env(),
    )  # fmt: skip
    granted = re.search(r"Granted job allocation (\d+)", done.stderr)
    if not granted:
        raise SlurmUnavailable(f"salloc: {done.stderr.strip()}")
    return granted.group(1)


def start_ray(skipped: dict[str, str]) -> object | None:
    """Ray's test cluster of two nodes, this process connected to it; None if no Ray."""
    try:
        import ray
        from ray.cluster_utils import Cluster as RayCluster
    except ImportError:
        skipped["ray"] = "Ray is not installed (pip install miniray[ray])"
        return None
    cluster = RayCluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes(timeout=60)
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster


def ray_start_and_ask() -> float:
    """As ``start_and_ask``, with ``Cluster.on_ray`` (its placement group and actors too)."""
    started = time.perf_counter()
    env = {"PYTHONPATH": os.environ["PYTHONPATH"]}
    with Cluster.on_ray(2, 2, env=env, cwd=str(ROOT / "tests"), log=lambda line: None) as c:
        workers = c.start(work_fn="cluster_workfns.whoami")
        for worker in workers:
            worker.send("hi")
        for worker in workers:
            worker.recv(timeout=30)
        return time.perf_counter() - started


def print_table(times: dict[str, list[float]], repeats: int, skipped: dict[str, str]) -> None:
    base = statistics.median(times[SSH_ROW])
    print(f"{'Cluster 2 nodes x 2 workers, launcher':42} {'median s':>9} {'min s':>7} "
          f"{'max s':>7}  vs ssh")  # fmt: skip
    for row, values in times.items():
        median = statistics.median(values)
        line = f"{row:42} {median:9.3f} {min(values):7.3f} {max(values):7.3f}"
        if row != SSH_ROW:
            line += f"  {median / base:.2f}x"
        print(line)
    print(f"({repeats} repeats)")
    for name, reason in skipped.items():
        print(f"left out: {name}: {reason}")


if __name__ == "__main__":
    sys.exit(main())
