"""The extensions measured: calls with futures, the marshal codec, and buffers out of band.

    python benchmarks/extensions.py [--repeats 15] [--size-mib 64] [--only calls,codec,buffers]
                                    [--no-ray] [--json PATH]
    taskset -c 0 python benchmarks/extensions.py      # everything on one core

Every row is measured in this run, next to its baseline, and reported as the median of
``--repeats`` runs with the spread (lowest-highest) beside it; the ratio column compares
rows of the same run (MiniRay's rows take turns, and a ratio between two of them is the
median of the per-round ratios). Ray rows appear when ``ray`` (and numpy) can be imported
(``pip install ray==2.60.0 numpy``); they are peers, never a dependency. Ray runs only
while its own rows are measured, after the MiniRay rows of the table: its daemons use
CPU even when idle, which on a small machine would slow every other row.

* calls: ``call_remote`` one at a time vs ``submit`` pipelined, for a local Worker and a
  RemoteWorker, and a Ray actor's calls, one ``ray.get`` each (sync) or all at once (async);
* codec: encode+decode of a small dict and of 1 MB of floats, JSON vs marshal; small
  round trips of a Worker with each codec vs ``multiprocessing.Pipe`` as it is used
  (``send``/``recv``: pickle, through multiprocessing's ForkingPickler) and vs ``Pipe``
  carrying bytes made by ``pickle``, ``json`` or ``marshal`` at both ends; this stage's
  Worker vs stage 4's (the same message, no buffers: "no slower than before");
* buffers: a ``--size-mib`` byte buffer handed to a local Worker (received as a copy, or as
  a view) vs ``memcpy`` of the same bytes; the old way (base64 inside JSON); a numpy
  array echoed there and back vs a Ray actor's numpy echo; a RemoteWorker vs raw TCP, and
  vs raw TCP with both ends hashing every byte with HMAC-SHA256 (what its per-frame MAC costs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
if "--package" in sys.argv:  # internal: measure another stage's package, in a fresh process
    sys.path.insert(0, sys.argv[sys.argv.index("--package") + 1])
else:
    sys.path.insert(0, str(ROOT))  # the top-level miniray package (= the final stage)

from extension_peers import (  # noqa: E402
    RUN_SECONDS,
    Row,
    base64_handoff,
    codec_timers,
    fresh_copy_rate,
    memcpy_rate,
    miniray_echo,
    miniray_handoff,
    numpy_copyto_rate,
    pipe_roundtrip,
    raw_tcp_handoff,
    ray_peers,
    remote_handoff,
    worker_call_messages,
    worker_calls,
    worker_roundtrip,
)
from json_rows import Result, results_from_samples, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="runs per row (median)")
    parser.add_argument("--size-mib", type=int, default=64, help="bulk size, in MiB")
    parser.add_argument("--calls", type=int, default=2000, help="calls per run")
    parser.add_argument("--seconds", type=float, default=0.1, help="length of a rate run")
    parser.add_argument("--only", default="calls,codec,buffers", help="sections to run")
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray rows")
    parser.add_argument("--json", metavar="PATH", help="also write the rows to PATH as JSON")
    parser.add_argument("--package", help=argparse.SUPPRESS)  # internal: one round-trip rate
    args = parser.parse_args()
    RUN_SECONDS[0] = args.seconds
    if args.package:
        print(worker_roundtrip("json")())
        return
    ray = None if args.no_ray else ray_peers
    cpus = sorted(os.sched_getaffinity(0))
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, CPUs allowed: {cpus}, repeats: {args.repeats}")
    sections = args.only.split(",")
    results: list[Result] = []
    if "calls" in sections:
        ray_rows = ray and ray_calls(args.calls)
        results += table("calls", calls_rows(args.calls), args.repeats, "calls/s", ray_rows)
    if "codec" in sections:
        results += table("codec", codec_rows(), args.repeats, "per second")
    if "buffers" in sections:
        size = args.size_mib << 20
        results += table("buffers", buffer_rows(size), args.repeats, "MB/s", ray and ray_echo(size))
    if args.json:
        notes = {
            "CPUs allowed": cpus,
            "repeats": args.repeats,
            "bulk size MiB": args.size_mib,
            "calls per run": args.calls,
            "seconds per rate run": args.seconds,
        }
        write_json(args.json, results, notes)


def calls_rows(count: int) -> list[Row]:
    return [
        Row("Worker send+recv of the call messages", worker_call_messages("local", count)),
        Row(
            "Worker call_remote, one at a time",
            worker_calls("local", count, pipelined=False),
            ["Worker send+recv of the call messages"],
        ),
        Row(
            "Worker submit, pipelined",
            worker_calls("local", count, pipelined=True),
            ["Worker call_remote, one at a time", "Ray actor, sync", "Ray actor, async"],
        ),
        Row("RemoteWorker send+recv of the call messages", worker_call_messages("tcp", count)),
        Row(
            "RemoteWorker call_remote, one at a time",
            worker_calls("tcp", count, False),
            ["RemoteWorker send+recv of the call messages"],
        ),
        Row(
            "RemoteWorker submit, pipelined",
            worker_calls("tcp", count, pipelined=True),
            ["RemoteWorker call_remote, one at a time", "Ray actor, sync", "Ray actor, async"],
        ),
    ]


def ray_calls(count: int) -> Callable[[Any], list[Row]]:
    return lambda ray: [
        Row("Ray actor, sync", ray.calls(count, pipelined=False)),
        Row("Ray actor, async", ray.calls(count, pipelined=True)),
    ]


def ray_echo(size: int) -> Callable[[Any], list[Row]]:
    return lambda ray: [Row("Ray actor numpy echo", ray.echo(size))]


def codec_rows() -> list[Row]:
    rows = []
    for what in ("small dict", "1 MB of floats"):
        for codec in ("json", "marshal"):
            base = [f"json encode+decode, {what}"] if codec == "marshal" else []
            rows.append(Row(f"{codec} encode+decode, {what}", codec_timers(codec, what), base))
    previous = str(ROOT / "stages" / "04_distributed")
    rows += [
        Row("multiprocessing.Pipe round trip", pipe_roundtrip()),
        Row("multiprocessing.Pipe round trip, pickle", pipe_roundtrip("pickle")),
        Row("multiprocessing.Pipe round trip, json", pipe_roundtrip("json")),
        Row("multiprocessing.Pipe round trip, marshal", pipe_roundtrip("marshal")),
        Row(
            "Worker round trip, json",
            worker_roundtrip("json"),
            ["multiprocessing.Pipe round trip", "multiprocessing.Pipe round trip, json"],
        ),
        Row(
            "Worker round trip, marshal",
            worker_roundtrip("marshal"),
            [
                "multiprocessing.Pipe round trip",
                "multiprocessing.Pipe round trip, marshal",
                "Worker round trip, json",
            ],
        ),
        Row("stage 4 Worker round trip (subprocess)", other_package_roundtrip(previous)),
        Row(
            "this Worker round trip (subprocess)",
            other_package_roundtrip(str(ROOT)),
            ["stage 4 Worker round trip (subprocess)"],
        ),
        Row("RemoteWorker round trip, json", worker_roundtrip("json", transport="tcp")),
        Row(
            "RemoteWorker round trip, marshal",
            worker_roundtrip("marshal", transport="tcp"),
            ["RemoteWorker round trip, json"],
        ),
    ]
    return rows


def buffer_rows(size: int) -> list[Row]:
    echo_baselines = [
        "numpy copyto into warm memory",
        "Worker numpy echo, copies",
        "Ray actor numpy echo",
    ]
    return [
        Row("memcpy into warm memory", memcpy_rate(size)),
        Row("numpy copyto into warm memory", numpy_copyto_rate(size)),
        Row("copy into fresh memory (bytes(buffer))", fresh_copy_rate(size)),
        Row(
            "Worker hand-off, received as a copy",
            miniray_handoff(size, copy=True),
            ["memcpy into warm memory", "copy into fresh memory (bytes(buffer))"],
        ),
        Row(
            "Worker hand-off, received as a view",
            miniray_handoff(size, copy=False),
            ["memcpy into warm memory"],
        ),
        Row(
            "Worker hand-off, base64 in JSON (before)",
            base64_handoff(size),
            ["Worker hand-off, received as a copy"],
        ),
        Row("Worker numpy echo, copies", miniray_echo(size, copy=True), ["Ray actor numpy echo"]),
        Row("Worker numpy echo, views", miniray_echo(size, copy=False), echo_baselines),
        Row("raw TCP loopback bulk", raw_tcp_handoff(size)),
        Row("raw TCP loopback bulk + HMAC-SHA256", raw_tcp_handoff(size, mac=True)),
        Row(
            "RemoteWorker hand-off, received as a copy",
            remote_handoff(size, copy=True),
            ["raw TCP loopback bulk", "raw TCP loopback bulk + HMAC-SHA256"],
        ),
        Row(
            "RemoteWorker hand-off, received as a view",
            remote_handoff(size, copy=False),
            ["raw TCP loopback bulk", "raw TCP loopback bulk + HMAC-SHA256"],
        ),
    ]


def other_package_roundtrip(package: str) -> Callable[[], float]:
    """A Worker's small round trips/s, measured in a fresh process with another package."""

    def run() -> float:
        command = [sys.executable, __file__, "--package", package, "--seconds", str(RUN_SECONDS[0])]
        return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)

    return run


def table(
    title: str,
    rows: list[Row],
    repeats: int,
    unit: str,
    peer_rows: Callable[[Any], list[Row]] | None = None,
) -> list[Result]:
    """Measure the rows (then, with Ray up, the peer rows), print one table, return it."""
    samples = measure(rows, repeats)
    took_turns = set(samples)  # Ray's rows run after these, in rounds of their own
    if peer_rows is not None:
        peers = ray_peers()
        if peers is not None:
            try:
                extra = peer_rows(peers)
                samples |= measure(extra, repeats)
                rows = rows + extra
            finally:
                peers.shutdown()
    baselines = {row.name: row.baselines for row in rows}
    ordered = {row.name: samples[row.name] for row in rows}  # the printed order
    results = results_from_samples(
        title, ordered, unit=unit, better="higher", baselines=baselines, paired=took_turns
    )
    print(f"\n## {title}\n")
    print(f"| {'row':44} | {unit:>12} | {'spread':>17} | ratio |")
    print(f"|{'-' * 46}|{'-' * 14}|{'-' * 19}|-------|")
    for result in results:
        ratio = ", ".join(_ratio_text(r, samples, result.name, took_turns) for r in result.ratios)
        spread = f"{result.low:8,.0f}-{result.high:<8,.0f}"
        print(f"| {result.name:44} | {result.median:12,.0f} | {spread} | {ratio} |")
    sys.stdout.flush()
    return results


def _ratio_text(ratio: Any, samples: dict[str, list[float]], name: str, paired: set[str]) -> str:
    """``0.85x base``; where both rows took turns, with the lowest and highest of the
    per-round ratios: ``0.85x base (0.70-0.90)``."""
    text = f"{ratio.ratio:.2f}x {ratio.baseline}"
    if name in paired and ratio.baseline in paired:
        per_round = [a / b for a, b in zip(samples[name], samples[ratio.baseline], strict=True)]
        text += f" ({min(per_round):.2f}-{max(per_round):.2f})"
    return text


def measure(rows: list[Row], repeats: int) -> dict[str, list[float]]:
    """Every row's rate, ``repeats`` times, interleaved (a burst of load hits all rows
    alike), after one dropped warm-up round."""
    samples: dict[str, list[float]] = {row.name: [] for row in rows}
    try:
        for round_number in range(repeats + 1):
            for row in rows:
                value = row.measure()
                if round_number:
                    samples[row.name].append(value)
    finally:
        for row in reversed(rows):
            row.close()
    return samples


if __name__ == "__main__":
    main()
