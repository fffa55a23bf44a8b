# @6+
"""``miniray run``: torchrun for many hosts, from one terminal.

    miniray run --hosts h1,h2 --nproc-per-node 4 -- python train.py --lr 3e-4
    python -m miniray run --hosts hosts.txt --nproc-per-node 2 --log-dir logs -- train.py

Starts the command on every host through a `Cluster` (SSH, or here for ``localhost``), one
rank supervisor per rank (``run_supervisor``), with torchrun's environment (``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``, ``ROLE_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``, ``TORCHELASTIC_RUN_ID``...). The ranks' output streams
back as ``[host rN] line``. The launcher's exit status is the first failing rank's; the
other ranks are then stopped. Ctrl-C once sends SIGINT to every rank, twice stops
everything; SIGUSR1 prints every rank's stack, grouped by identical stack.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

from .cluster import Cluster
from .errors import MiniRayError
from .node_config import total_workers
from .run_args import options_from, parser, shown_ranks
from .run_group import INTERRUPTED, RankGroup, RunOptions
from .run_logs import RunLogs

SUPERVISOR = "miniray.run_supervisor.supervise"


class Wakeup:
    """A pipe that signal handlers write to, so that the main loop's wait ends at once
    (a `handle.Waitable`: ``wait_any`` can wait on it beside the workers)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def set(self) -> None:
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            os.write(self._write, b"!")

    def wait_fds(self) -> list[int]:
        return [self._read]

    def poll(self) -> bool:
        return bool(select.select([self._read], [], [], 0)[0])

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self._read, 4096)

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


def run(options: RunOptions, logs: RunLogs) -> int:
    """Run the command on every rank to its end (restarts included); the exit status."""
    started, wake = time.time(), Wakeup()
    cluster = Cluster(options.nodes)
    group: RankGroup | None = None
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1)}

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        if group is None:
            raise KeyboardInterrupt
        group.ctrl_c += 1
        if group.ctrl_c >= 2:
            raise KeyboardInterrupt  # unwinds to Cluster.stop below
        wake.set()

    def on_sigusr1(_signum: int, _frame: FrameType | None) -> None:
        if group is not None:
            group.dump_wanted = True
            wake.set()

    signal.signal(signal.SIGUSR1, on_sigusr1)
    status, restarts, codes = INTERRUPTED, 0, {}
    try:
        workers = cluster.start(SUPERVISOR)  # catches Ctrl-C itself while it starts
        group = RankGroup(workers, options, logs, wake)
        signal.signal(signal.SIGINT, on_sigint)
        status, restarts, attempt = group.run()
        codes = attempt.codes
    except KeyboardInterrupt:
        logs.say("stopping every rank (second Ctrl-C)")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stop is bounded: let it finish
        try:
            cluster.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            wake.close()
    logs.summary(
        {
            "command": options.argv,
            "hosts": [[n.host, n.num_workers] for n in options.nodes],
            "run_id": options.run_id,
            "restarts": restarts,
            "exit_codes": {str(rank): code for rank, code in sorted(codes.items())},
            "exit_status": status,
            "seconds": round(time.time() - started, 3),
        }
    )
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """``miniray run``'s entry point: parse, run, return the exit status."""
    args = parser().parse_args(argv)
    try:
        options = options_from(args)
        world_size = total_workers(options.nodes)
        logs = RunLogs(args.log_dir, shown_ranks(args.ranks, world_size), world_size=world_size)
    except MiniRayError as e:  # nothing has started: said as `logs.say` says things
        print(f"miniray run: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    try:
        return run(options, logs)
    except MiniRayError as e:
        logs.say(f"{type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
