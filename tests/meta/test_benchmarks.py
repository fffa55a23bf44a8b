"""The benchmarks still run (a smoke test: it checks the table, never the numbers), and
``--json PATH`` writes the rows of the printed table (``benchmarks/json_rows.py``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def json_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The rows a script wrote with ``--json``, by name; each has the fields of a row."""
    document = json.loads(path.read_text(encoding="utf-8"))
    rows = {row["name"]: row for row in document["rows"]}
    fields = {"table", "name", "median", "low", "high", "samples", "unit", "better", "ratios"}
    for row in rows.values():
        assert set(row) == fields, row
        assert row["low"] <= row["median"] <= row["high"], row
        assert row["better"] in ("higher", "lower"), row
    return rows


def ratios(row: dict[str, Any]) -> dict[str, float]:
    return {ratio["baseline"]: ratio["ratio"] for ratio in row["ratios"]}


def test_the_round_trip_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    command = [sys.executable, "benchmarks/roundtrip.py", "--seconds", "0.05", "--repeats", "1"]
    result = subprocess.run(
        [*command, "--json", str(out)],
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
    written = json_rows(out)
    assert list(written) == list(rows)  # the printed rows, in the printed order
    assert set(ratios(written["miniray.Worker"])) == {
        "raw socketpair, length-prefixed bytes",
        "multiprocessing.Pipe (fork, pickle)",
    }
    assert written["miniray.Worker"]["unit"] == "round trips/s"


def test_the_cold_start_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    command = [sys.executable, "benchmarks/cold_start.py", "--repeats", "1", "--no-ray"]
    result = subprocess.run(
        [*command, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    rows = {line[:46].strip(): line for line in result.stdout.splitlines()[1:-1]}
    assert set(rows) == {
        "multiprocessing.Process + Pipe (fork)",
        "miniray.Worker",
        "miniray.RemoteWorker, server already running",
        'python -c "import miniray"',
        "miniray.RemoteWorker, server started too",
    }
    assert "x multiprocessing.Process + Pipe (fork)" in rows["miniray.Worker"]
    written = json_rows(out)
    assert list(written) == list(rows)
    assert set(ratios(written["miniray.RemoteWorker, server started too"])) == {
        'python -c "import miniray"'  # and Ray with ray.init, where Ray is measured
    }
    assert all(row["unit"] == "ms" and row["better"] == "lower" for row in written.values())


def test_the_mac_cost_benchmark_compares_the_same_channel_with_and_without_tags(
    tmp_path: Path,
) -> None:
    out = tmp_path / "rows.json"
    command = [sys.executable, "benchmarks/mac_cost.py", "--rounds", "1", "--seconds", "0.02"]
    result = subprocess.run(
        [*command, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line[:34].strip() for line in lines[1:]] == [
        "small round trips/s",
        "1 MiB both ways, MB/s",
    ]
    assert all(re.search(r"\d\.\d\dx \(\d\.\d\d-\d\.\d\d\)$", line) for line in lines[1:])
    rows = json.loads(out.read_text())["rows"]
    tagged = [row for row in rows if row["name"] == "with tags"]
    assert [row["ratios"][0]["baseline"] for row in tagged] == ["without tags"] * 2


def test_the_amplification_benchmark_prints_a_factor_per_shape(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/amplification.py", "--mib", "0.25", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert {"string", "empty-dicts", "empty-lists", "deep-lists"} <= set(rows)
    assert all("x string" in row and "MiB" in row for row in rows.values())
    document = json.loads(out.read_text(encoding="utf-8"))
    tables = {(row["table"], row["name"]) for row in document["rows"]}
    assert tables == {(table, shape) for table in ("peak memory", "decode CPU") for shape in rows}


def test_the_cluster_start_benchmark_prints_its_table(tmp_path: Path) -> None:
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("no /usr/sbin/sshd: the benchmark starts its own ssh hosts")
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/cluster_start.py", "--repeats", "1", "--json", str(out)],
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
    written = json_rows(out)
    assert list(written) == list(rows)
    (ratio,) = written["Cluster 2 hosts x 4 workers over SSH"]["ratios"]
    assert ratio["baseline"] == "ssh host true, 2 hosts in parallel"
    assert ratio["difference"] == pytest.approx(
        written["Cluster 2 hosts x 4 workers over SSH"]["median"]
        - written["ssh host true, 2 hosts in parallel"]["median"]
    )


def test_the_extensions_benchmark_prints_its_tables(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    command = [sys.executable, "benchmarks/extensions.py", "--repeats", "1", "--size-mib", "2"]
    command += ["--calls", "50", "--seconds", "0.02", "--no-ray", "--json", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if "|" in line}
    assert "x Worker call_remote, one at a time" in rows["Worker submit, pipelined"]
    assert "x multiprocessing.Pipe round trip" in rows["Worker round trip, marshal"]
    assert "x stage 4 Worker round trip" in rows["this Worker round trip (subprocess)"]
    assert "x memcpy into warm memory" in rows["Worker hand-off, received as a view"]
    assert "x raw TCP loopback bulk" in rows["RemoteWorker hand-off, received as a copy"]
    written = json_rows(out)
    assert list(written) == [name for name in rows if name != "row" and "---" not in name]
    assert {row["table"] for row in written.values()} == {"calls", "codec", "buffers"}
    assert set(ratios(written["Worker submit, pipelined"])) == {
        "Worker call_remote, one at a time"  # no Ray rows: no ratio to them
    }


def test_the_sealed_region_benchmark_times_each_way_at_each_size() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/sealed_region.py", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = [(line[:7].strip(), line[9:43].strip()) for line in result.stdout.splitlines()[1:]]
    ways = [
        "reuse the region (today)",
        "fresh memfd, F_SEAL_WRITE",
        "receiver's copy (recv() default)",
    ]
    assert rows == [(f"{mib} MiB", way) for mib in (1, 4, 64) for way in ways]


def test_the_cluster_data_benchmark_prints_its_table(tmp_path: Path) -> None:
    pytest.importorskip("numpy", reason="the benchmark sends a numpy array")
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/cluster_data.py", "--mib", "4", "--repeats", "1",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("4 MiB per worker")
    cluster_row = [line for line in lines if line.startswith("Cluster localhost")]
    assert cluster_row and cluster_row[0].endswith("x")
    written = json_rows(out)
    (ratio,) = written["Cluster localhost 2 nodes x 2 workers, there and back"]["ratios"]
    assert ratio["baseline"] == "raw TCP + MAC, one way" and ratio["ratio"] > 0
