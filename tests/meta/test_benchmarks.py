"""The benchmarks still run (a smoke test: it checks the table, never the numbers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_round_trip_benchmark_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/roundtrip.py", "--seconds", "0.05", "--repeats", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = {line[:42].strip(): line for line in result.stdout.splitlines()[1:]}
    assert set(rows) == {
        "raw socketpair, length-prefixed bytes",
        "multiprocessing.Pipe (fork, pickle)",
        "miniray.Worker",
        "raw TCP loopback, length-prefixed bytes",
        "miniray.RemoteWorker",
    }
    assert "x raw socketpair" in rows["miniray.Worker"] and "x Pipe" in rows["miniray.Worker"]
    assert "x raw TCP" in rows["miniray.RemoteWorker"]


def test_the_amplification_benchmark_prints_a_factor_per_shape() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/amplification.py", "--mib", "0.25"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert {"string", "empty-dicts", "empty-lists", "deep-lists"} <= set(rows)
    assert all("x string" in row and "MiB" in row for row in rows.values())


def test_the_cluster_start_benchmark_prints_its_table() -> None:
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("no /usr/sbin/sshd: the benchmark starts its own ssh hosts")
    result = subprocess.run(
        [sys.executable, "benchmarks/cluster_start.py", "--repeats", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = {line[:42].strip(): line for line in result.stdout.splitlines()[1:-1]}
    assert set(rows) == {
        "ssh host true, 2 hosts in parallel",
        "Cluster 2 hosts x 4 workers over SSH",
        'python -c "import miniray"',
        "Cluster localhost x 8 workers",
    }
    assert "x, +" in rows["Cluster 2 hosts x 4 workers over SSH"]
