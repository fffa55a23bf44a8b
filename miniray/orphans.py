"""What a worker leaves running when it ends, found and ended.

A process group holds what a worker forked, and a group kill ends it. A process that left
the group (``setsid``, a daemon) is out of its reach; once its parent ends it is an orphan,
and Linux hands it to the nearest ancestor marked a child subreaper
(``process.become_subreaper``). A worker and a node's server are such ancestors: they list
their children here and end all but those they keep.
"""

from __future__ import annotations

import contextlib
import os
import signal

_ORPHAN_ROUNDS = 10  # end_orphans: orphans of orphans, at most this deep


def end_orphans(keep: frozenset[int] = frozenset()) -> None:
    """SIGKILL and reap every child of ours but ``keep`` (a server keeps its watchdog), with
    whatever each started: its group, then the orphans that come to us as they die.

    A worker calls it as it exits, for what its work function left running; a server, once
    its workers are reaped, for the orphans of those it had to kill.
    """
    for _ in range(_ORPHAN_ROUNDS):
        orphans = child_pids() - keep
        if not orphans:
            return
        for pid in orphans:  # our children, unreaped: the numbers cannot be anyone else's
            with contextlib.suppress(ProcessLookupError, PermissionError):
                group = os.getpgid(pid)
                if group != os.getpgrp():  # ours: a worker's, ended by its owner's group kill
                    os.killpg(group, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
        for pid in orphans:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def child_pids() -> set[int]:
    """The pids of this process's children, whichever of its threads started them, and of
    the orphans given to it (see ``process.become_subreaper``)."""
    pids: set[int] = set()
    with contextlib.suppress(OSError):
        for thread in os.listdir("/proc/self/task"):
            with (
                contextlib.suppress(OSError, ValueError),
                open(f"/proc/self/task/{thread}/children") as listed,
            ):
                pids.update(int(pid) for pid in listed.read().split())
    return pids
