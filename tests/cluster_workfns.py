"""Work functions for the cluster tests: importable by name on every node (tests/ is on
the nodes' PYTHONPATH), as ``Cluster.start(work_fn="cluster_workfns.NAME")`` needs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from typing import Any

RANK_VARIABLES = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK"]


def whoami(handle: Any) -> None:
    """Answer every message with this worker's rank environment, host name and address."""
    while True:
        msg = handle.recv()
        env = {name: os.environ.get(name) for name in [*RANK_VARIABLES, "MINIRAY_HOST"]}
        sockname = handle._sock.getsockname()
        address = sockname[0] if isinstance(sockname, tuple) else "socketpair"
        handle.send(
            {
                "msg": msg,
                "env": env,
                "hostname": socket.gethostname(),
                "address": address,
                "pid": os.getpid(),
            }
        )


def chatty(handle: Any) -> None:
    """Print the lines asked for (stdout and stderr), a last one without newline; say done."""
    lines = handle.recv()
    for i in range(lines):
        print(f"line {i} of rank {os.environ['RANK']}")
        print(f"err {i} of rank {os.environ['RANK']}", file=sys.stderr)
    print(f"last words of rank {os.environ['RANK']}", end="")
    handle.send("done")
    handle.recv()  # until the coordinator is done with us


def flood(handle: Any) -> None:
    """Print ``n`` megabytes in 10 kB lines of this worker's digit (longer than a pipe
    writes at once: lines of workers that shared a pipe would be cut into each other),
    then say how many lines."""
    megabytes = handle.recv()
    line = os.environ["RANK"][-1] * 9999
    count = megabytes * 100
    for _ in range(count):
        print(line)
    handle.send(count)
    handle.recv()


def sleeper(handle: Any) -> None:
    """Say ready, then sleep until interrupted (KeyboardInterrupt) or killed."""
    handle.send({"pid": os.getpid(), "rank": int(os.environ["RANK"])})
    while True:
        time.sleep(60)


def stubborn(handle: Any) -> None:
    """Ignore end-of-file: keep sleeping after the coordinator says goodbye."""
    handle.send("ready")
    with contextlib.suppress(Exception):
        handle.recv()
    while True:
        time.sleep(60)


def unbothered(handle: Any) -> None:
    """Sleep; a SIGINT is printed and ignored (the handler is in place before "ready")."""

    def ignore(signum: int, frame: Any) -> None:
        print(f"rank {os.environ['RANK']} ignored KeyboardInterrupt", flush=True)

    signal.signal(signal.SIGINT, ignore)
    handle.send("ready")
    while True:
        time.sleep(60)
