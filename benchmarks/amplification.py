"""What one frame can cost its receiver: peak memory and CPU to decode it, by payload shape.

    python benchmarks/amplification.py [--mib 4] [--shapes empty-dicts,deep-lists] [--json PATH]

``max_frame`` bounds the *encoded* size of a message, but decoding JSON builds Python
objects, and some shapes cost far more than their bytes: ``{},`` is 3 bytes on the wire
and an empty dict of 64 bytes plus an 8-byte list slot in memory. This script decodes
one payload of each shape with MiniRay's own ``decode_message`` (the receiving end of
every ``recv``) and prints, per shape:

* the peak RSS growth while decoding, as a multiple of the payload's size (the factor
  to multiply ``max_frame`` by for the worst a peer can make us allocate);
* the CPU seconds of the decode, and that time relative to the baseline row (one long
  string of the same size, which JSON decodes at memory speed).

Each row runs in a fresh subprocess, so one row's garbage does not inflate the next
row's peak; the peak is the kernel's high-water mark (``VmHWM``), reset just before the
decode (``/proc/self/clear_refs``), so building the payload does not count.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the top-level miniray package (= the final stage)

from json_rows import Ratio, Result, write_json  # noqa: E402

from miniray.wire import DEFAULT_MAX_FRAME  # noqa: E402

# shape name -> (one element and its comma, what opens the payload, what closes it).
# The baseline first; then ever more objects per byte: the last rows are the worst
# shapes found (a list of one element costs ~104 bytes, for 2 bytes of JSON).
DEEP = b"[" * 50 + b"]" * 50
SHAPES: dict[str, tuple[bytes, bytes, bytes]] = {
    "string": (b"x", b'"', b'"'),  # one long string: the baseline
    "zeros": (b"0,", b"[", b"0]"),
    "floats": (b"0.5,", b"[", b"0.5]"),
    "short-strings": (b'"ab",', b"[", b'"ab"]'),
    "one-key-dicts": (b'{"":0},', b"[", b'{"":0}]'),
    "empty-dicts": (b"{},", b"[", b"{}]"),
    "empty-lists": (b"[],", b"[", b"[]]"),
    "lists-of-one": (b"[[]],", b"[", b"[[]]]"),
    "deep-lists": (DEEP + b",", b"[", DEEP + b"]"),
}

_MEASURE = """
import os, sys, time
sys.path.insert(0, {root!r})
from miniray.wire import decode_message

element, opening, closing = {element!r}, {opening!r}, {closing!r}
count = max(1, ({size} - len(opening) - len(closing)) // len(element))
payload = b"".join([opening, element * count, closing])

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the high-water mark: only the decode's peak counts
started = time.process_time()
value = decode_message(payload)
seconds = time.process_time() - started
print(len(payload), status("VmHWM:") - before, seconds)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_mib = DEFAULT_MAX_FRAME / 2**20
    parser.add_argument(
        "--mib", type=float, default=default_mib, help="payload size (default: max_frame's default)"
    )
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated shapes")
    parser.add_argument("--json", metavar="PATH", help="also write the rows to PATH as JSON")
    args = parser.parse_args()
    size = int(args.mib * 1024 * 1024)
    names = ["string", *(name for name in args.shapes.split(",") if name != "string")]
    print(f"decoding one {args.mib:g} MiB payload with miniray.wire.decode_message")
    columns = f"{'shape':14} {'element':13} {'peak RSS growth':>16} {'factor':>7} {'CPU s':>7}"
    print(f"{columns}  CPU ratio")
    baseline_seconds = None
    memory, cpu = [], []  # the rows, for --json: one decode each, so no spread
    for name in names:
        payload_size, peak, seconds = measure(name, size)
        baseline_seconds = baseline_seconds or max(seconds, 1e-6)
        factor = peak / payload_size
        memory.append(Result("peak memory", name, factor, factor, factor, 1, "x payload", "lower"))
        ratios = [Ratio("string", seconds / baseline_seconds)] if name != "string" else []
        cpu.append(
            Result("decode CPU", name, seconds, seconds, seconds, 1, "CPU s", "lower", ratios)
        )
        element = SHAPES[name][0].decode()
        element = element if len(element) <= 10 else f"{element[:4]}...{element[-5:]}"
        print(
            f"{name:14} {element:13} {peak / 2**20:12,.0f} MiB {peak / payload_size:6.1f}x "
            f"{seconds:7.2f}  {seconds / baseline_seconds:,.0f}x string"
        )
    if args.json:
        write_json(args.json, memory + cpu, {"payload MiB": args.mib})


def measure(name: str, size: int) -> tuple[int, int, float]:
    """Decode one payload of shape ``name`` in a fresh process: (bytes, peak growth, CPU s)."""
    element, opening, closing = SHAPES[name]
    code = _MEASURE.format(
        root=str(ROOT), element=element, opening=opening, closing=closing, size=size
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    payload_size, peak, seconds = result.stdout.split()
    return int(payload_size), int(peak), float(seconds)


if __name__ == "__main__":
    main()
