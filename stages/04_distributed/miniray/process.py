"""Forking a worker process safely, and what the child does until it exits.

``os.fork()`` copies the whole parent: its buffered output, its signal handlers, every
open socket. A careful child undoes what it should not have inherited, then runs the
work function, reports how it ended, and exits without ever returning into the
parent's code:

1. die with the parent (``PR_SET_PDEATHSIG``), so no worker outlives its owner;
2. reset signal handlers to what a fresh Python process has;
3. close the descriptors that belong to the parent and to sibling workers;
4. run ``work_fn(handle)``; an exception travels to the parent as an ERROR frame;
5. flush stdout/stderr, send the EXIT frame, and ``os._exit``.

Linux only: it relies on ``prctl`` and pidfds.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Protocol

from .channel import Channel
from .errors import ChannelClosed, MiniRayError
from .wire import ERROR, EXIT, encode_error, encode_exit

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)  # loaded here, once, not in every child


class Closable(Protocol):
    """Anything with a ``close()``: sockets, channels."""

    def close(self) -> None: ...


# --8<-- [start:fork_child]
def fork_child(body: Callable[[], int], *, close_in_child: Iterable[Closable | int] = ()) -> int:
    """Fork a process that runs ``body()`` and exits with the code it returns.

    ``close_in_child`` lists what the child must not keep: the parent's and siblings'
    sockets (objects with ``close()``) and raw descriptors (ints).

    Returns the child's pid (in the parent). In the child this never returns: whatever
    happens, it ends in ``os._exit``, so the child cannot fall back into the parent's
    program (and its ``atexit`` handlers, ``finally`` blocks, test runner...).
    """
    parent_pid = os.getpid()
    _flush_stdio()  # or the child would print the parent's buffered output a second time
    pid = os.fork()
    if pid != 0:
        return pid
    code = 1
    try:
        die_with_parent(parent_pid)
        reset_signal_handlers()
        for thing in close_in_child:
            os.close(thing) if isinstance(thing, int) else thing.close()
        code = body()
    except BaseException:
        traceback.print_exc()
    finally:
        _flush_stdio()
        os._exit(code)


# --8<-- [end:fork_child]


# --8<-- [start:run_work_fn]
def run_work_fn(work_fn: Callable[[Channel], object], handle: Channel) -> int:
    """Run ``work_fn(handle)`` and report how it ended; return the exit code.

    An exception becomes an ERROR frame (type, message, traceback, pid, host) and exit
    code 1; ``sys.exit(n)`` becomes code ``n``; the channel closing under a ``recv``
    (the parent is done with us) is a normal end, code 0. Either way the parent then gets an EXIT
    frame, after everything the work function sent, and after its prints are flushed.
    """
    code = 0
    try:
        work_fn(handle)
    except ChannelClosed:
        pass  # the parent closed the channel: the usual way to tell a worker to stop
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:
        code = 1
        traceback.print_exc()  # on the worker's stderr too, in case no one is listening
        _send_quietly(handle, ERROR, encode_error(e))
    _flush_stdio()
    _send_quietly(handle, EXIT, encode_exit(code))
    return code


# --8<-- [end:run_work_fn]


# --8<-- [start:die_with_parent]
def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies.

    The request only covers a parent that dies *after* it is made. If the parent died
    in between ``fork`` and here, we have already been re-parented: exit at once.

    PR_SET_PDEATHSIG fires when the parent *thread* that forked exits, so create
    workers from a thread that lives as long as they should.
    """
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")
    if os.getppid() != parent_pid:
        os._exit(1)


# --8<-- [end:die_with_parent]


def reset_signal_handlers() -> None:
    """Give every signal the disposition a freshly started Python process has.

    The parent may have installed handlers (a server's SIGTERM handler, a test
    runner's SIGALRM) that make no sense in a worker.
    """
    python_defaults: dict[int, Callable[..., object] | signal.Handlers] = {
        signal.SIGINT: signal.default_int_handler,
        signal.SIGPIPE: signal.SIG_IGN,  # Python ignores these two at start-up
        signal.SIGXFSZ: signal.SIG_IGN,
    }
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        current = signal.getsignal(sig)
        wanted = python_defaults.get(sig, signal.SIG_DFL)
        if current is not None and current != wanted:
            signal.signal(sig, wanted)
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _send_quietly(handle: Channel, kind: int, payload: bytes) -> None:
    """Send a report frame; if the parent is gone there is no one to tell."""
    with contextlib.suppress(OSError, MiniRayError):
        handle.send_frame(kind, payload, timeout=10.0)


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed or replaced
            stream.flush()
