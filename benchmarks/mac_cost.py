"""What the per-frame MAC costs: the same Channel over TCP, with and without tags (same run).

    python benchmarks/mac_cost.py [--seconds 0.1] [--rounds 100] [--one-core] [--json PATH]

A RemoteWorker's frames carry a tag (stage 2's ``session.FrameMAC``), and the raw TCP
rows of ``roundtrip.py`` pay for no tags and no JSON, so they cannot say what the tags
alone cost. Here both rows are MiniRay's own ``Channel`` on a loopback TCP connection to
an echoing child, one with ``frame_auth`` (a session's two ``FrameMAC`` ends) and one
without: the only difference is the tags. Rows:

* small round trips per second (``{"cmd": "step", "i": 12345}``), where a tag costs what
  its calls cost (keyed BLAKE2s);
* 1 MiB round trips, in MB/s, where it costs what hashing the bytes costs (HMAC-SHA256).

The rows take turns in short runs (``--rounds`` of ``--seconds`` each: A, B, A, B, ...)
and each ratio is the median of the per-round ratios, with its spread (lowest-highest),
so that load from elsewhere on the machine hits both alike. ``--one-core`` pins both
processes of both pairs to the first CPU: the CPU cost of the tags, without scheduling.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the top-level miniray package (= the final stage)

from json_rows import results_from_samples, write_json  # noqa: E402

from miniray.channel import Channel  # noqa: E402
from miniray.frame_mac import Session  # noqa: E402

SMALL = {"cmd": "step", "i": 12345}
BIG = b"\x5a" * (1024 * 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.1, help="length of one run")
    parser.add_argument("--rounds", type=int, default=100, help="runs per row, taking turns")
    parser.add_argument("--one-core", action="store_true", help="pin everything to one CPU")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args()
    results = []
    if args.one_core:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # children inherit it
    print(f"{'what':34} {'without tags':>14} {'with tags':>12}  ratio (spread)")
    for label, message in [("small round trips/s", SMALL), ("1 MiB both ways, MB/s", BIG)]:
        plain, tagged = EchoPair(tags=False), EchoPair(tags=True)
        try:
            rates = take_turns([plain.pinger(message), tagged.pinger(message)], args)
        finally:  # newest first: the later child holds a copy of the earlier pair's socket
            tagged.close()
            plain.close()
        ratios = [b / a for a, b in zip(*rates, strict=True)]
        medians = [statistics.median(r) for r in rates]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        print(f"{label:34} {medians[0]:14,.0f} {medians[1]:12,.0f}  ", end="")
        print(f"{statistics.median(ratios):.2f}x ({spread})")
        rows = {"without tags": rates[0], "with tags": rates[1]}
        unit = "round trips/s" if message is SMALL else "MB/s"
        results += results_from_samples(
            label,
            rows,
            unit=unit,
            better="higher",
            baselines={"with tags": ["without tags"]},
            paired=rows,  # they took turns
        )
    if args.json:
        write_json(args.json, results, {"placement": "one core" if args.one_core else "unpinned"})


def take_turns(pingers: list[Callable[[], float]], args: argparse.Namespace) -> list[list[float]]:
    """Per pinger, the rate of each of its runs (round trips or MB per second)."""
    rates: list[list[float]] = [[] for _ in pingers]
    for round_ in range(args.rounds + 1):
        for index, ping in enumerate(pingers):
            done, started = 0.0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < args.seconds:
                done += ping()
            if round_:  # the first round warms up
                rates[index].append(done / elapsed)
        if round_ % 20 == 0:
            print(f"measuring: round {round_} of {args.rounds}", file=sys.stderr, flush=True)
    return rates


class EchoPair:
    """A Channel on a loopback TCP connection to a forked child that echoes every message."""

    def __init__(self, *, tags: bool) -> None:
        session = Session(os.urandom(32), os.urandom(32), os.urandom(32))
        ours, theirs = (session.client_frames(), session.worker_frames()) if tags else (None, None)
        listener = socket.create_server(("127.0.0.1", 0))
        self.pid = os.fork()
        if self.pid == 0:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            echo = Channel(conn, from_worker=False, frame_auth=theirs)
            try:
                while True:
                    echo.send(echo.recv())
            finally:
                os._exit(0)
        sock = socket.create_connection(listener.getsockname())
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.close()
        self.channel = Channel(sock, frame_auth=ours)

    def pinger(self, message: object) -> Callable[[], float]:
        """One round trip of ``message``; returns what it counts: 1, or the MB it moved."""
        count = 1.0 if isinstance(message, dict) else 2 * len(BIG) / 1e6

        def ping() -> float:
            self.channel.send(message)
            self.channel.recv(timeout=10)
            return count

        return ping

    def close(self) -> None:
        self.channel.close()
        os.waitpid(self.pid, 0)


if __name__ == "__main__":
    main()
