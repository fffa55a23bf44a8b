"""Small-message round trips per second: MiniRay next to the raw sockets it is built on.

    python benchmarks/roundtrip.py [--seconds 0.3] [--repeats 15] [--one-core | --unpinned]
                                   [--json PATH]

Every row is measured in this one process, the rows taking turns, and reported as the
median of ``--repeats`` runs. Ratios compare each MiniRay row with the baseline above
it, round by round (the median of the per-round ratios, with the middle half of the
rounds in brackets), so the numbers mean something on any machine:

* ``Worker`` (fork + socketpair + JSON frames) vs a raw length-prefixed socketpair
  ping-pong and vs ``multiprocessing.Pipe`` (pickle);
* ``RemoteWorker`` (TCP + JSON frames, after the handshake) vs a raw length-prefixed
  TCP loopback ping-pong.

The message is ``{"cmd": "step", "i": <int>}``; the raw rows send its JSON bytes
pre-encoded, so they pay for no serialization at all.

Where the scheduler puts the two processes of a pair changes a round trip's cost more
than anything MiniRay does (on this 2-core machine, by up to 2x, from run to run). So
every pair is pinned: this process to the first CPU, the peer to the last one (a
cross-core round trip, as between a trainer and its workers). ``--one-core`` pins both
to the first CPU: then a round trip is just the CPU work of both sides, and the ratios
show MiniRay's per-message overhead (JSON both ways and, over TCP, a MAC per frame,
which the raw rows skip). ``--unpinned`` leaves placement to the scheduler, as in real use.

Read the cross-core rows with care: on this (virtual) machine a round trip across cores
got *faster* when each side did more work per message; a bare socket ping-pong idles
its CPUs in the slowest way. That, not cleverness, is why MiniRay can beat the raw
rows there. The one-core rows are the fair comparison of work done.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the top-level miniray package (= the final stage)

from json_rows import results_from_samples, write_json  # noqa: E402

import miniray  # noqa: E402

HEADER = struct.Struct("!Q")
MESSAGE = {"cmd": "step", "i": 12345}
RAW = b'{"cmd":"step","i":12345}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one run")
    parser.add_argument("--repeats", type=int, default=15, help="runs per row (median)")
    parser.add_argument(
        "--one-core",
        action="store_true",
        help="pin both ends of every pair to one CPU: measures the CPU cost per message",
    )
    parser.add_argument(
        "--unpinned", action="store_true", help="pin nothing: let the scheduler place both ends"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the rows to PATH as JSON")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if not args.unpinned:
        os.sched_setaffinity(0, {cpus[0]})
    peer_cpu = cpus[0] if args.one_core else cpus[-1]
    pingers = {
        "raw socketpair, length-prefixed bytes": raw_socketpair_pingpong(),
        "multiprocessing.Pipe (fork, pickle)": multiprocessing_pipe_pingpong(),
        "miniray.Worker": miniray_worker_pingpong(),
    }
    if hasattr(miniray, "RemoteWorker"):  # stage 2 on
        pingers["raw TCP loopback, length-prefixed bytes"] = raw_tcp_pingpong()
        pingers["miniray.RemoteWorker"] = miniray_remote_pingpong()
    for ping in pingers.values():
        if not args.unpinned:
            os.sched_setaffinity(ping.peer_pid, {peer_cpu})
    samples = timed_rates(pingers, args.seconds, args.repeats)
    ratios = {
        "miniray.Worker": [
            ("raw socketpair", "raw socketpair, length-prefixed bytes"),
            ("Pipe", "multiprocessing.Pipe (fork, pickle)"),
        ],
        "miniray.RemoteWorker": [("raw TCP", "raw TCP loopback, length-prefixed bytes")],
    }
    baselines = {name: [base for _, base in pairs] for name, pairs in ratios.items()}
    rows = results_from_samples(
        "round trips",
        samples,
        unit="round trips/s",
        better="higher",
        baselines=baselines,
        paired=samples,  # every row took its turn in every round
    )
    print(f"{'transport':42} {'round trips/s':>14}  ratio (middle half of the rounds)")
    for row in rows:
        labels = {base: label for label, base in ratios.get(row.name, [])}
        ratio = ", ".join(
            f"{r.ratio:.2f}x {labels[r.baseline]} ({r.low:.2f}-{r.high:.2f})" for r in row.ratios
        )
        print(f"{row.name:42} {row.median:14,.0f}  {ratio}")
    if args.json:
        placement = "unpinned" if args.unpinned else "one core" if args.one_core else "cross-core"
        notes = {"placement": placement, "seconds per run": args.seconds, "repeats": args.repeats}
        write_json(args.json, rows, notes)


def timed_rates(pingers: dict[str, Pinger], seconds: float, repeats: int) -> dict[str, list[float]]:
    """Round trips per second of each pinger, in each of ``repeats`` timed runs.

    Runs are interleaved (A, B, C, A, B, C, ...) so that a burst of load from elsewhere
    on the machine hits every row alike, and the first round is a dropped warm-up.
    """
    samples: dict[str, list[float]] = {name: [] for name in pingers}
    try:
        for round_ in range(repeats + 1):
            what = "warm-up" if round_ == 0 else f"round {round_} of {repeats}"
            print(f"measuring: {what}, {len(pingers)} rows", file=sys.stderr, flush=True)
            for name, ping in pingers.items():
                count, started = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - started) < seconds:
                    for _ in range(200):
                        ping()
                    count += 200
                samples[name].append(count / elapsed)
    finally:  # newest first: a peer forked later holds copies of the older peers' sockets
        for ping in reversed(pingers.values()):
            ping.close()
    return {name: rates[1:] for name, rates in samples.items()}


class Pinger:
    """A callable that does one round trip, with a ``close`` to stop its echo peer."""

    def __init__(self, ping: Callable[[], None], close: Callable[[], None], peer_pid: int) -> None:
        self._ping, self.close, self.peer_pid = ping, close, peer_pid

    def __call__(self) -> None:
        self._ping()


def raw_socketpair_pingpong() -> Pinger:
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        _raw_echo(theirs)
        os._exit(0)
    theirs.close()
    return Pinger(lambda: _raw_roundtrip(ours), lambda: _stop_raw(ours, pid), pid)


def raw_tcp_pingpong() -> Pinger:
    listener = socket.create_server(("127.0.0.1", 0))
    pid = os.fork()
    if pid == 0:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _raw_echo(conn)
        os._exit(0)
    sock = socket.create_connection(listener.getsockname())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.close()
    return Pinger(lambda: _raw_roundtrip(sock), lambda: _stop_raw(sock, pid), pid)


def multiprocessing_pipe_pingpong() -> Pinger:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_pipe_echo, args=(theirs,))
    process.start()

    def ping() -> None:
        ours.send(MESSAGE)
        ours.recv()

    def close() -> None:
        ours.send(None)
        process.join()

    assert process.pid is not None
    return Pinger(ping, close, process.pid)


def miniray_worker_pingpong() -> Pinger:
    worker = miniray.Worker(_miniray_echo)

    def ping() -> None:
        worker.send(MESSAGE)
        worker.recv()

    return Pinger(ping, worker.close, worker.pid)


def miniray_remote_pingpong() -> Pinger:
    secret = "benchmark-secret-0123456789"
    command = [sys.executable, "-m", "miniray.worker_server", "--port", "0", "--workers", "1"]
    command += ["--work-fn", f"{__file__}:_miniray_echo"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINIRAY_SECRET": secret}
    server = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert server.stdout is not None
    port = int(server.stdout.readline().split('"port": ')[1].split(",")[0])
    worker = miniray.RemoteWorker("127.0.0.1", port, secret=secret)

    def ping() -> None:
        worker.send(MESSAGE)
        worker.recv()

    def close() -> None:
        worker.close()
        server.terminate()
        server.wait()

    return Pinger(ping, close, worker.pid)  # the worker the server forked for us


def _miniray_echo(handle: miniray.Channel) -> None:
    while True:
        handle.send(handle.recv())


def _pipe_echo(conn: multiprocessing.connection.Connection) -> None:
    while (msg := conn.recv()) is not None:
        conn.send(msg)


def _raw_roundtrip(sock: socket.socket) -> None:
    sock.sendall(HEADER.pack(len(RAW)) + RAW)
    _recv_frame(sock)


def _raw_echo(sock: socket.socket) -> None:
    while (payload := _recv_frame(sock)) is not None:
        sock.sendall(HEADER.pack(len(payload)) + payload)


def _recv_frame(sock: socket.socket) -> bytes | None:
    """One read of up to 64 KiB takes a whole small frame: the fastest honest raw reader."""
    data = sock.recv(65536)
    while data and (
        len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]
    ):
        data += sock.recv(65536)
    return data[HEADER.size :] if data else None


def _stop_raw(sock: socket.socket, pid: int) -> None:
    sock.close()
    os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
