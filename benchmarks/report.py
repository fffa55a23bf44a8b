"""Run every benchmark and make the page "MiniRay next to Ray, measured" from the results.

    python benchmarks/report.py                      # everything: 10-15 minutes on 2 cores
    python benchmarks/report.py --only cold-start,fsdp-step   # rerun parts, keep the rest
    python benchmarks/report.py --quick              # a smoke run: tiny repeats and sizes
    python benchmarks/report.py --render             # tables and chart from results.json

Each part is one script of ``benchmarks/`` run with ``--json`` (a few run twice: as they
are, and with everything on one CPU). The results, with the date, the command, the
versions, the CPU and the load average before each part, go to
``docs/measured/results.json``; from it come ``docs/measured/tables.md`` (included by
``docs/measured.md``) and the chart ``docs/measured/ratios.svg``. Run it on a quiet machine:
the load average before each part is recorded, and shown on the page.

Needs the ``bench`` extra (``pip install -e '.[bench]'``: matplotlib, numpy, and Ray for the
peer rows), torch for the FSDP part, and ``sshd`` for the cluster part.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report_chart import draw_chart
from report_render import chart_fingerprint, render_tables

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "docs" / "measured"
RESULTS, TABLES, CHART = "results.json", "tables.md", "ratios.svg"


@dataclass(frozen=True)
class Part:
    """A script and its arguments: as given, and for ``--quick``."""

    script: str
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    one_core: bool = False  # under ``taskset -c 0``: everything on the first CPU
    timeout: float = 1800.0


EXTENSIONS_QUICK = ("--repeats", "1", "--size-mib", "2", "--calls", "50", "--seconds", "0.02")
PARTS = {
    "roundtrip": Part("roundtrip.py", ("--unpinned",), ("--seconds", "0.05", "--repeats", "1")),
    "roundtrip-one-core": Part(
        "roundtrip.py", ("--one-core",), ("--seconds", "0.05", "--repeats", "1")
    ),
    "extensions": Part("extensions.py", (), EXTENSIONS_QUICK),
    "extensions-one-core": Part("extensions.py", (), EXTENSIONS_QUICK, one_core=True),
    "cold-start": Part("cold_start.py", (), ("--repeats", "2")),
    "cluster-start": Part("cluster_start.py", (), ("--repeats", "1")),
    "cluster-data": Part("cluster_data.py", ("--ssh",), ("--mib", "4", "--repeats", "1")),
    "fsdp-step": Part("fsdp_step.py", (), ("--steps", "4", "--warmup", "1", "--ranks", "2")),
    "amplification": Part("amplification.py", (), ("--mib", "0.25")),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny repeats and sizes: a smoke run")
    parser.add_argument(
        "--only", metavar="NAMES", help=f"parts to run, comma-separated: {', '.join(PARTS)}"
    )
    parser.add_argument("--render", action="store_true", help="only redraw from results.json")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args()
    results_path = args.out / RESULTS
    if args.render:
        render(json.loads(results_path.read_text(encoding="utf-8")), args.out)
        return 0
    names = args.only.split(",") if args.only else list(PARTS)
    unknown = [name for name in names if name not in PARTS]
    if unknown:
        parser.error(f"unknown parts {unknown}; the parts are: {', '.join(PARTS)}")
    previous: dict[str, Any] = {}
    if args.only and results_path.is_file():
        previous = json.loads(results_path.read_text(encoding="utf-8"))["parts"]
    parts = {name: run_part(name, PARTS[name], args.quick) for name in names}
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": shlex.join(["python", "benchmarks/report.py", *sys.argv[1:]]),
        "machine": machine(),
        "parts": merge(previous, parts),
    }
    results["quick"] = any(part.get("quick") for part in results["parts"].values())
    args.out.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    render(results, args.out)
    failed = [name for name, part in parts.items() if part.get("error")]
    print(f"wrote {results_path}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def run_part(name: str, part: Part, quick: bool) -> dict[str, Any]:
    """Run one script with ``--json``; its rows, and how, when and on what load it ran."""
    command = [sys.executable, str(Path("benchmarks") / part.script), *part.args]
    command += part.quick if quick else ()
    if part.one_core:
        command = ["taskset", "-c", str(min(os.sched_getaffinity(0))), *command]
    shown = shlex.join(["python" if c == sys.executable else c for c in command])
    load = os.getloadavg()[0]
    print(f"\n==> {name}: {shown}  (1-minute load {load:.2f})", flush=True)
    record: dict[str, Any] = {
        "command": shown,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_before": load,
        "quick": quick,
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="miniray-report-") as tmp:
        out = Path(tmp) / "rows.json"
        try:
            done = subprocess.run([*command, "--json", str(out)], cwd=ROOT, timeout=part.timeout)
            if done.returncode != 0:
                record["error"] = f"exit code {done.returncode}"
        except subprocess.TimeoutExpired:
            record["error"] = f"timed out after {part.timeout:.0f} s"
        except OSError as error:  # e.g. no taskset on this machine
            record["error"] = f"could not start: {error}"
        if not record.get("error") and not out.is_file():
            record["error"] = "wrote no JSON"
        document = json.loads(out.read_text()) if not record.get("error") else {}
    record["seconds"] = time.monotonic() - started
    record["notes"] = document.get("notes", {})
    record["rows"] = document.get("rows", [])
    return record


def merge(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The parts just run replace their earlier results; the others are kept, in the
    order of `PARTS` (a part no longer known is dropped)."""
    both = previous | new
    return {name: both[name] for name in PARTS if name in both}


def machine() -> dict[str, Any]:
    """What ran the benchmarks: CPU, OS, and the versions that matter."""
    cpu_model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    cpu_model = value.strip()
                    break
    except OSError:
        pass
    versions = {name: _version(name) for name in ("torch", "ray", "numpy")}
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **versions,
    }


def render(results: dict[str, Any], out: Path) -> None:
    """Write the tables and the chart from ``results``."""
    (out / TABLES).write_text(render_tables(results), encoding="utf-8")
    draw_chart(results, out / CHART, chart_fingerprint(results))
    print(f"wrote {out / TABLES} and {out / CHART}")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
