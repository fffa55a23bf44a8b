"""Forking a worker process safely, and what the child does until it exits.

``os.fork()`` copies the whole parent: its buffered output, its signal handlers, every
open socket. A careful child undoes what it should not have inherited, then runs the
work function, reports how it ended, and exits without ever returning into the
parent's code:

1. close the descriptors that belong to the parent and to sibling workers (inside
   ``os.fork()`` itself, see ``drop_in_children``);
2. leave the objects it inherited out of its garbage collections, so that it shares
   their memory with the parent instead of copying it;
3. lead a process group of its own, so that whatever it starts can be ended with it;
4. die with the parent (``PR_SET_PDEATHSIG``), so no worker outlives its owner;
5. become a child subreaper, so that what it starts outside its group comes back to it;
6. reset signal handlers to what a fresh Python process has;
7. run ``work_fn(handle)``; an exception travels to the parent as an ERROR frame;
8. flush stdout/stderr, send the EXIT frame, end what the work function left running
   outside its group (``orphans.end_orphans``), and ``os._exit``.

The parent holds the child as a :class:`ChildProcess`: signalled, waited for and reaped
through a pidfd, never by a pid number that may already belong to someone else.

Linux only: it relies on ``prctl`` and pidfds.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import sys
import traceback
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from .channel import Channel
from .errors import ChannelClosed, MiniRayError
from .orphans import end_orphans
from .timeouts import wait_readable
from .wire import ERROR, EXIT, encode_error, encode_exit

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)  # loaded here, once, not in every child


class Closable(Protocol):
    """Anything with a ``close()``: sockets, channels."""

    def close(self) -> None: ...


@runtime_checkable
class DropsInChild(Protocol):
    """An owner of descriptors that knows how to let go of them in a forked child."""

    def close_in_child(self) -> None: ...


# --8<-- [start:drop_in_children]
_parent_only: weakref.WeakSet[Any] = weakref.WeakSet()


def drop_in_children(thing: Closable | DropsInChild) -> None:
    """Make every later fork of this process, whoever forks, let go of ``thing``.

    One rule for every kind of handle (a worker's channel and pidfd, a server's listener
    and connections): a child that kept a copy would hold the stream open, so the peer
    would never see end-of-file. The child calls ``thing.close_in_child()`` if it has
    one, else ``thing.close()``. Held weakly: a handle that is gone needs no closing.
    """
    _parent_only.add(thing)


def keep_in_children(thing: Closable | DropsInChild) -> None:
    """Undo ``drop_in_children``: the next fork keeps ``thing`` (it is the child's own)."""
    _parent_only.discard(thing)


def _drop_parent_only() -> None:
    """Runs in every child right after ``os.fork()`` (``os.register_at_fork``)."""
    for thing in list(_parent_only):
        with contextlib.suppress(OSError):
            thing.close_in_child() if isinstance(thing, DropsInChild) else thing.close()
    _parent_only.clear()


os.register_at_fork(after_in_child=_drop_parent_only)
# --8<-- [end:drop_in_children]


# --8<-- [start:fork_child]
def fork_child(body: Callable[[], int]) -> int:
    """Fork a process that runs ``body()`` and exits with the code it returns.

    What the child must not keep (the parent's and siblings' sockets and pidfds) it has
    already let go of when ``os.fork()`` returns: see :func:`drop_in_children`.

    Returns the child's pid (in the parent). In the child this never returns: whatever
    happens, it ends in ``os._exit``, so the child cannot fall back into the parent's
    program (and its ``atexit`` handlers, ``finally`` blocks, test runner...).
    """
    parent_pid = os.getpid()
    _flush_stdio()  # or the child would print the parent's buffered output a second time
    pid = os.fork()
    if pid != 0:
        with contextlib.suppress(OSError):  # both sides ask: whoever runs first, the
            os.setpgid(pid, pid)  # child leads its group before the parent can signal it
        return pid
    code = 1
    try:
        # The cyclic GC keeps its bookkeeping in each object's header: a full collection
        # here would write to every object inherited from the parent, and so copy the
        # pages that hold them (about 40 MiB a worker from a process with torch loaded).
        # Frozen, they are left out of this process's collections; its own are collected.
        gc.freeze()
        os.setpgid(0, 0)
        die_with_parent(parent_pid)
        become_subreaper()  # what the body's children leave running comes back to us
        reset_signal_handlers()
        code = body()
    except BaseException:
        _print_quietly(traceback.format_exc())
    finally:
        _flush_stdio()
        end_orphans()  # what the body left outside its group; our owner's group kill ends the rest
        os._exit(code)


# --8<-- [end:fork_child]


def check_work_fn(work_fn: object) -> None:
    """Refuse, at the call, a work function that the child could only fail to call."""
    if not callable(work_fn):
        raise TypeError(
            f"work_fn must be a callable that takes the worker's handle, not {work_fn!r:.100}"
        )


def check_env(env: Mapping[str, str]) -> None:
    """Refuse, at the call, an environment the child could not set (``os.environ`` would
    raise there, in the child, after the fork)."""
    for name, value in env.items():
        if not isinstance(name, str) or not isinstance(value, str):  # (a value may be secret)
            kind = type(value).__name__
            raise TypeError(f"environment names and values are str, not {name!r:.50}: {kind}")
        if not name or "=" in name or "\0" in name:
            raise ValueError(f"{name!r} is not an environment variable name")
        if "\0" in value:
            raise ValueError(f"the value of {name} holds a NUL byte")


# --8<-- [start:run_work_fn]
def run_work_fn(work_fn: Callable[[Channel], object], handle: Channel) -> int:
    """Run ``work_fn(handle)`` and report how it ended; return the exit code.

    An exception becomes an ERROR frame (type, message, traceback, pid, host) and exit
    code 1; ``sys.exit(n)`` becomes code ``n``, and ``sys.exit("why")`` code 1 with
    "why" in the EXIT frame and on stderr, as Python prints it; the channel closing under
    a ``recv`` (the parent is done with us) is a normal end, code 0. Either way the
    parent then gets an EXIT frame, after everything the work function sent, and after
    its prints are flushed. Reports go out before anything is printed: a worker whose
    stderr is closed or broken must still tell the parent how it ended.
    """
    code, message = 0, None
    try:
        work_fn(handle)
    except ChannelClosed:
        pass  # the parent closed the channel: the usual way to tell a worker to stop
    except SystemExit as e:
        code, message = _exit_code(e.code)
        if message is not None:
            _print_quietly(message)
    except BaseException as e:
        code = 1
        if not _send_quietly(handle, ERROR, encode_error(e)):  # no one heard: say it here
            _print_quietly("".join(traceback.format_exception(e)))
    _flush_stdio()
    _send_quietly(handle, EXIT, encode_exit(code, message))
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


def become_subreaper() -> None:
    """Have the processes our children leave behind become ours, not init's.

    A process put in a session of its own (``setsid``, a daemon) is out of its parent's
    group, which is all a group kill ends. Once its parent exits, Linux gives it to the
    nearest ancestor marked a child subreaper: this process, which can then end it (see
    ``orphans.end_orphans``). Meanwhile such an orphan that exits stays a zombie until reaped:
    reaping any child at once would reap the ones whose exit status their owner waits
    for too (``subprocess``, a server's workers).
    """
    # Fails only on Linux before 3.4: orphans then go to init, as they would without it.
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


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


class ChildProcess:
    """A child forked by this process, held by a pidfd: signalled, waited for, reaped.

    A pid names a process only until the process is reaped; then the kernel may give the
    number to any new process. A pidfd always means the process it was opened on, so
    every signal and every wait here goes through it: once the child is reaped, nothing
    is ever done to its pid number again.

    The child leads its own process group (see :func:`fork_child`), and when it has
    exited, :meth:`reap` SIGKILLs what is left of that group (the processes it started)
    *before* collecting its status. Why then and only then: a group id is its leader's
    pid, and the kernel does not reuse a number while the leader, even as an unreaped
    zombie, still holds it; after the reap, an empty group's number is free for anyone.
    What escapes: a grandchild that left the group (``setsid``, a daemon), and, when the
    parent set SIGCHLD to SIG_IGN, the group of an exited child, which the kernel reaped
    at once (its number may be reused already, so it is not signalled).

    Args:
        pid: The child's pid, as ``os.fork()`` returned it.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None  # once reaped; None also when the status was lost
        self.reaped = False
        self._owner = os.getpid()
        try:
            self.pidfd = os.pidfd_open(pid)
        except OSError:  # e.g. out of descriptors: do not leave the child running
            os.kill(pid, signal.SIGKILL)  # by pid: safe while it is not reaped
            os.waitpid(pid, 0)
            raise

    def reap(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` s for the child to exit, end its group, reap it.

        Raises:
            TimeoutError: The child still runs.
        """
        if self.reaped:
            return
        if not wait_readable([self.pidfd], timeout):
            raise TimeoutError(f"worker pid {self.pid} still running after {timeout} s")
        if self._present():  # an unreaped zombie: its group id cannot belong to anyone else
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        try:
            status = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
        except ChildProcessError:  # SIGCHLD is ignored: the kernel reaped it, status and all
            status = None
        if status is not None:
            self.returncode = status.si_status
            if status.si_code != os.CLD_EXITED:  # killed (or dumped core)
                self.returncode = -status.si_status
        self.reaped = True

    def signal_group(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child and its process group; nothing once it is reaped."""
        if self.reaped:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.pidfd, sig)  # even if it left its group
        if self._present():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def release(self) -> None:
        """Kill and reap the child if this process owns it and it is not reaped; close the pidfd.

        In a forked copy of the owner this only closes the copy's pidfd: the child is
        someone else's to stop. Safe to call more than once (and as a finalizer).
        """
        if self.pidfd < 0:
            return
        if os.getpid() == self._owner and not self.reaped:
            self.signal_group(signal.SIGKILL)
            self.reap(None)
        os.close(self.pidfd)
        self.pidfd = -1

    def _present(self) -> bool:
        """True while the child runs or is an unreaped zombie, so its pid is still its own."""
        try:
            os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped by the kernel (SIGCHLD ignored)
            return False
        return True


def _exit_code(code: object) -> tuple[int, str | None]:
    """The exit code and message of ``sys.exit(code)``, as the interpreter reads them."""
    if code is None:
        return 0, None
    if isinstance(code, int):
        return int(code), None
    return 1, str(code)


def _send_quietly(handle: Channel, kind: int, payload: bytes) -> bool:
    """Send a report frame; False if it could not go out (there is no one to tell)."""
    try:
        handle.send_frame(kind, payload, timeout=10.0)
    except (OSError, MiniRayError):
        return False
    return True


def _print_quietly(text: str) -> None:
    """Print to stderr if there is one: a closed or broken stderr is not our error."""
    with contextlib.suppress(Exception):
        print(text.rstrip("\n"), file=sys.stderr, flush=True)


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed or replaced
            stream.flush()
