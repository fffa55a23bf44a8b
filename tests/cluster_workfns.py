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


def echo(handle: Any) -> None:
    """Send back every message."""
    while True:
        handle.send(handle.recv())


def echo_env(handle: Any) -> None:
    """Answer each variable's name with its value in this worker's environment."""
    while True:
        handle.send(os.environ.get(handle.recv()))


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


def timed_prints(handle: Any) -> None:
    """Print ``n`` numbered lines of 100 bytes; say how long the printing took (seconds)."""
    count = handle.recv()
    started = time.monotonic()
    for i in range(count):
        print(f"{i:>6} " + "." * 92)
    handle.send(time.monotonic() - started)
    handle.recv()


# What a terminal acts on, if it gets the bytes raw: each is a line a worker prints.
TERMINAL_ESCAPES = [
    "\x1b]0;pwned\x07title",  # set the window's title
    "\x1b[2J\x1b[Hcleared",  # clear the screen
    "\x1b]52;c;cm0gLXJmIH4K\x07clipboard",  # OSC 52: write the clipboard
    "real\r[node9 r7] forged",  # repaint the line as another node's
    "\x9b31mC1\tand a tab",  # an 8-bit CSI; the tab is plain text
]


def terminal_escapes(handle: Any) -> None:
    """Print the lines of TERMINAL_ESCAPES; say done."""
    for line in TERMINAL_ESCAPES:
        print(line)
    handle.send("done")
    handle.recv()


def numbered_lines(handle: Any) -> None:
    """Print ``count`` numbered lines, then one line of ``big`` bytes (if any); say done."""
    count, big = handle.recv()
    rank = os.environ["RANK"]
    for i in range(count):
        print(f"{i} of rank {rank}")
    if big:
        print(rank[-1] * big)
    handle.send("done")
    handle.recv()


def echo_numpy(handle: Any) -> None:
    """echo in a program that uses numpy (about 0.1 s to import, unlike torch): a process
    receives arrays only if it has imported their module itself."""
    import numpy  # noqa: F401

    echo(handle)


def parked_by_rank(handle: Any) -> None:
    """Say our pid, then wait for the coordinator's goodbye in a function named after our
    rank's parity (``parked_even`` or ``parked_odd``): a stack dump shows which."""
    handle.send(os.getpid())
    (parked_even if int(os.environ["RANK"]) % 2 == 0 else parked_odd)(handle)


def parked_even(handle: Any) -> None:
    with contextlib.suppress(Exception):
        handle.recv()


def parked_odd(handle: Any) -> None:
    with contextlib.suppress(Exception):
        handle.recv()
