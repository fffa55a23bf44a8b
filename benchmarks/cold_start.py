"""Cold start: the time from nothing to the first reply of a fresh worker, next to its peers.

    python benchmarks/cold_start.py [--repeats 10] [--no-ray] [--json PATH]

Each row starts a fresh worker, sends it one small message and times everything until
its echo is back; stopping the worker afterwards is not timed. Rows (medians over the
repeats, with the lowest and highest beside them):

* ``multiprocessing.Process + Pipe (fork)``: a forked ``Process`` echoing over a ``Pipe``;
  the baseline for a local worker;
* ``miniray.Worker``: ``Worker(echo)``, ``send``, ``recv``;
* ``miniray.RemoteWorker, server already running``: connect to a ``miniray.worker_server``
  started before the clock (authenticate; the server forks the worker), ``send``, ``recv``;
* ``python -c "import miniray"``: one interpreter start, the floor for anything that
  starts a Python server from nothing;
* ``miniray.RemoteWorker, server started too``: start ``python -m miniray.worker_server``,
  wait for its ready line, then as above;
* ``Ray actor, ray.init excluded``: with Ray already up, create an actor and get the
  answer to its first call (Ray may hand the actor a worker process it started earlier);
* ``Ray actor, ray.init included``: ``ray.init``, then the same (``ray.shutdown`` after).

The MiniRay rows and their baselines run interleaved (a burst of load elsewhere hits all
alike), after one dropped warm-up round; the Ray rows run after them, as Ray's daemons
use CPU while they are up. Ray rows need ``pip install ray==2.60.0``: a peer, never a
dependency.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the top-level miniray package (= the final stage)

from json_rows import Result, results_from_samples, write_json  # noqa: E402

import miniray  # noqa: E402

SECRET = "benchmark-secret-0123456789"
MESSAGE = {"cmd": "step", "i": 12345}
PIPE, WORKER = "multiprocessing.Process + Pipe (fork)", "miniray.Worker"
REMOTE, PYTHON = "miniray.RemoteWorker, server already running", 'python -c "import miniray"'
REMOTE_WITH_SERVER = "miniray.RemoteWorker, server started too"
RAY_UP, RAY_INIT = "Ray actor, ray.init excluded", "Ray actor, ray.init included"
BASELINES = {
    WORKER: [PIPE, RAY_UP],
    REMOTE: [WORKER, RAY_UP],
    REMOTE_WITH_SERVER: [PYTHON, RAY_INIT],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="fresh workers per row")
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray rows")
    parser.add_argument("--json", metavar="PATH", help="also write the rows to PATH as JSON")
    args = parser.parse_args()
    server = start_server()
    try:
        rows: dict[str, Callable[[], float]] = {
            PIPE: pipe_first_reply,
            WORKER: worker_first_reply,
            REMOTE: lambda: remote_first_reply(server.port),
            PYTHON: python_import,
            REMOTE_WITH_SERVER: server_and_remote_first_reply,
        }
        times = measure(rows, args.repeats)
    finally:
        server.stop()
    took_turns = set(times)  # Ray's rows run after these, in rounds of their own
    if not args.no_ray:
        times |= ray_times(args.repeats)
    results = results_from_samples(
        "cold start", times, unit="ms", better="lower", baselines=BASELINES, paired=took_turns
    )
    print_table(results, args.repeats)
    if args.json:
        write_json(args.json, results, {"repeats": args.repeats})


def print_table(results: list[Result], repeats: int) -> None:
    print(f"{'from nothing to the first reply':46} {'median ms':>10} {'spread ms':>17}  ratio")
    for row in results:
        ratio = ", ".join(f"{r.ratio:.2f}x {r.baseline}" for r in row.ratios)
        spread = f"{row.low:8.1f}-{row.high:<8.1f}"
        print(f"{row.name:46} {row.median:10.1f} {spread:>17}  {ratio}")
    cpus = sorted(os.sched_getaffinity(0))
    print(f"({repeats} repeats after a warm-up; CPUs allowed: {cpus})")


def measure(rows: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each row's milliseconds, ``repeats`` times, interleaved, after a dropped warm-up."""
    times: dict[str, list[float]] = {name: [] for name in rows}
    for round_number in range(repeats + 1):
        for name, run in rows.items():
            elapsed = run()
            if round_number:
                times[name].append(elapsed * 1e3)
    return times


# --- the rows: each returns the seconds until the first reply ----------------------------------


def pipe_first_reply() -> float:
    started = time.perf_counter()
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_pipe_echo, args=(theirs,))
    process.start()
    ours.send(MESSAGE)
    ours.recv()
    elapsed = time.perf_counter() - started
    ours.send(None)
    process.join()
    return elapsed


def worker_first_reply() -> float:
    started = time.perf_counter()
    worker = miniray.Worker(echo)
    worker.send(MESSAGE)
    worker.recv(timeout=30)
    elapsed = time.perf_counter() - started
    worker.close()
    return elapsed


def remote_first_reply(port: int) -> float:
    started = time.perf_counter()
    worker = miniray.RemoteWorker("127.0.0.1", port, secret=SECRET)
    worker.send(MESSAGE)
    worker.recv(timeout=30)
    elapsed = time.perf_counter() - started
    worker.close()
    return elapsed


def python_import() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import miniray"], check=True, env=_server_env())
    return time.perf_counter() - started


def server_and_remote_first_reply() -> float:
    started = time.perf_counter()
    server = start_server()
    try:
        return remote_first_reply(server.port) + (server.ready_at - started)
    finally:
        server.stop()


class Server:
    """A ``miniray.worker_server`` in its own process, serving `echo`."""

    def __init__(self, process: subprocess.Popen[str], port: int, ready_at: float) -> None:
        self.process, self.port, self.ready_at = process, port, ready_at

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def start_server() -> Server:
    command = [sys.executable, "-m", "miniray.worker_server", "--port", "0", "--workers", "4"]
    command += ["--work-fn", f"{__file__}:echo"]
    with tempfile.TemporaryFile("w+") as log:  # the server's log, shown if it fails
        process = subprocess.Popen(
            command, env=_server_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True
        )
        assert process.stdout is not None
        line = process.stdout.readline()  # MINIRAY_READY {"host": ..., "port": ..., ...}
        ready_at = time.perf_counter()
        if not line.startswith("MINIRAY_READY "):
            process.kill()
            process.wait()
            log.seek(0)
            raise RuntimeError(f"the server did not start: {line!r}\n{log.read()}")
    port = int(line.split('"port": ')[1].split(",")[0])
    return Server(process, port, ready_at)


def _server_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "MINIRAY_SECRET": SECRET}


def echo(handle: miniray.Channel) -> None:
    while True:
        handle.send(handle.recv())


def _pipe_echo(conn: Any) -> None:
    while (msg := conn.recv()) is not None:
        conn.send(msg)


# --- Ray ---------------------------------------------------------------------------------------


def ray_times(repeats: int) -> dict[str, list[float]]:
    """The Ray rows, if ray imports (else none, and a note): Ray up, then Ray from nothing."""
    try:
        import ray
    except ImportError:
        print("# ray not importable: no Ray rows (pip install ray==2.60.0)")
        return {}

    @ray.remote
    class Echo:
        def echo(self, value: Any) -> Any:
            return value

    def init() -> None:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

    def first_reply() -> float:
        started = time.perf_counter()
        actor = Echo.remote()  # type: ignore[attr-defined]
        ray.get(actor.echo.remote(MESSAGE))
        elapsed = time.perf_counter() - started
        ray.kill(actor)
        return elapsed

    def init_and_first_reply() -> float:
        started = time.perf_counter()
        init()
        elapsed = (time.perf_counter() - started) + first_reply()
        ray.shutdown()
        return elapsed

    init()
    try:
        times = measure({RAY_UP: first_reply}, repeats)
    finally:
        ray.shutdown()
    return times | measure({RAY_INIT: init_and_first_reply}, repeats)


if __name__ == "__main__":
    main()
