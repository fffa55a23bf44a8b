# @6+
"""One rank of ``miniray run`` as its supervisor holds it: a child process, its output, its
heartbeat and its stack dumps, all watched by one loop in one thread.

* **Nothing outlives it.** The rank leads a process group of its own and dies with the
  supervisor (``PR_SET_PDEATHSIG``); on every way out, the supervisor SIGKILLs the group,
  so a daemon the script forked goes too (one that made a session of its own escapes).
* **Output never blocks, never piles up.** stdout and stderr are two pipes read as they
  fill, cut into lines (a line longer than `MAX_LINE` in pieces), and sent at once as
  messages: a rank printing 50 MB waits only for the network, and at most one read's worth
  is held here.
* **Silence is news.** A Python rank (started through ``run_boot``) writes a heartbeat
  byte every half second. None for ``hang_after`` seconds: ``{"hung": why}``, where *why*
  reads ``/proc/PID/stat`` to tell "stopped" (SIGSTOP) from "not answering" (the GIL held
  for good, say by a deadlock in C code). The supervisor, not the user's code, keeps time.
* **A raise is news too.** ``run_boot`` writes `RAISED` to the same pipe when the script
  raises, before the traceback is printed: ``{"raised": True}`` goes to the launcher at
  once, so it can name the rank that failed first, not the first to end.
* **Stacks on request.** ``{"dump": timeout}`` sends SIGUSR1 to the rank; its faulthandler
  writes every thread's stack to a pipe; what arrived is sent once the pipe has been quiet
  for `_DUMP_QUIET` seconds (a dump is written in one go) or at the timeout.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import signal
import subprocess
import time

from .channel import Channel
from .process import die_with_parent
from .run_boot import RAISED

MAX_LINE = 1 << 16  # longer lines are sent in pieces of this size
_CHECK_EVERY = 0.5  # seconds between looks at the heartbeat
_DUMP_QUIET = 0.2  # seconds without more stack text that end a dump
_DRAIN = 2.0  # seconds to read the rest of the output after the rank ended


def exit_status(returncode: int) -> int:
    """A process's exit status as a shell reports it: a death by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def process_state(pid: int) -> str:
    """The state letter of ``/proc/PID/stat`` ("R", "S", "T" for stopped...), "" if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


class RankProcess:
    """A rank started by its supervisor (see the module's docstring)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, *, booted: bool) -> None:
        self.booted = booted
        fds: list[int] = []
        self._heartbeat = self._stacks = -1
        if booted:
            self._heartbeat, beat_w = os.pipe()
            self._stacks, stacks_w = os.pipe()
            env = {**env, "MINIRAY_HEARTBEAT_FD": str(beat_w), "MINIRAY_STACKS_FD": str(stacks_w)}
            fds = [beat_w, stacks_w]
        try:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=fds,
                start_new_session=True,  # its own group: signalled and killed as one
                preexec_fn=functools.partial(die_with_parent, os.getpid()),
            )
        except OSError:  # it could not start (no such program...): ours go with it
            for fd in (self._heartbeat, self._stacks):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            for fd in fds:
                os.close(fd)  # the rank's ends: its exit closes them
        self._dump: bytearray | None = None  # stack text of the dump under way
        self._dump_ends = self._dump_deadline = self._kill_at = 0.0
        self._dump_why = ""

    def signal_group(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the rank's process group (quietly if it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def kill_group(self) -> None:
        """SIGKILL the rank and everything in its group, reap it, close our pipe ends."""
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for fd in (self._heartbeat, self._stacks):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._heartbeat = self._stacks = -1
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def watch(self, handle: Channel, hang_after: float) -> int:
        """Relay output and requests until the rank has ended; return its exit status.

        Raises whatever ``handle`` raises (the coordinator gone): the caller kills the group.
        """
        assert self.proc.stdout is not None and self.proc.stderr is not None
        sel = selectors.DefaultSelector()
        streams = {self.proc.stdout.fileno(): "out", self.proc.stderr.fileno(): "err"}
        pending = {fd: b"" for fd in streams}
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ, "output")
        for fd in handle.wait_fds():
            sel.register(fd, selectors.EVENT_READ, "control")
        pidfd = os.pidfd_open(self.proc.pid)
        sel.register(pidfd, selectors.EVENT_READ, "exit")
        if self.booted:
            sel.register(self._heartbeat, selectors.EVENT_READ, "beat")
            sel.register(self._stacks, selectors.EVENT_READ, "stacks")
        last_beat, hung, raised = time.monotonic(), False, False
        ended_at: float | None = None
        try:
            while ended_at is None or (pending and time.monotonic() < ended_at + _DRAIN):
                for key, _ in sel.select(self._next_wakeup()):
                    if key.data == "output":
                        self._read_output(sel, key.fd, streams[key.fd], pending, handle)
                    elif key.data == "beat":
                        last_beat = time.monotonic()
                        beats = os.read(self._heartbeat, 4096)
                        if not beats:
                            sel.unregister(self._heartbeat)  # the rank closed it (exec, exit)
                        elif RAISED in beats and not raised:
                            raised = True
                            handle.send({"raised": True})
                    elif key.data == "stacks":
                        self._read_stacks(sel)
                    elif key.data == "exit" and ended_at is None:
                        ended_at = time.monotonic()
                        sel.unregister(pidfd)
                        self.signal_group(signal.SIGKILL)  # what it left behind in its group
                while handle.poll():  # the channel may hold several messages: read them all
                    self._obey(handle.recv(timeout=0))
                now = time.monotonic()
                if self._dump is not None and now >= self._dump_ends:
                    self._send_dump(handle)
                if self._kill_at and now >= self._kill_at:
                    self.signal_group(signal.SIGKILL)
                why = self._silence(now - last_beat)
                if ended_at is None and not hung and why and now - last_beat > hang_after:
                    hung = True
                    handle.send({"hung": why})
                elif hung and why is None and ended_at is None:
                    hung = False
                    handle.send({"alive": True})
        finally:
            sel.close()
            os.close(pidfd)
        if self._dump is not None:
            self._send_dump(handle)
        return exit_status(self.proc.wait())

    def _next_wakeup(self) -> float:
        timeout = _CHECK_EVERY
        if self._dump is not None:
            timeout = min(timeout, max(0.0, self._dump_ends - time.monotonic()))
        return timeout

    def _silence(self, seconds: float) -> str | None:
        """Why the rank is silent, or None if it is not (or cannot be watched)."""
        state = process_state(self.proc.pid)
        if state in ("T", "t"):
            return "stopped (SIGSTOP or a debugger)"
        if self.booted and seconds > _CHECK_EVERY * 4:
            return (
                f"not answering: no heartbeat for {seconds:.1f} s (a thread holding the "
                "GIL, such as a deadlock in C code?)"
            )
        return None

    def _read_output(
        self,
        sel: selectors.BaseSelector,
        fd: int,
        stream: str,
        pending: dict[int, bytes],
        handle: Channel,
    ) -> None:
        chunk = os.read(fd, 1 << 16)
        lines = (pending[fd] + chunk).split(b"\n")
        rest = lines.pop()  # what follows the last newline: not a line yet
        if (rest and not chunk) or len(rest) >= MAX_LINE:  # the end, or too long to wait
            lines.append(rest)
            rest = b""
        pieces = [
            line[i : i + MAX_LINE] for line in lines for i in range(0, len(line) or 1, MAX_LINE)
        ]
        if pieces:
            handle.send({stream: [piece.decode(errors="replace") for piece in pieces]})
        pending[fd] = rest
        if not chunk:
            sel.unregister(fd)
            del pending[fd]

    def _obey(self, msg: object) -> None:
        if not isinstance(msg, dict):
            return
        if msg.get("signal") in ("SIGINT", "SIGTERM", "SIGUSR2", "SIGHUP"):
            self.signal_group(signal.Signals[msg["signal"]])
        elif isinstance(msg.get("stop"), (int, float)):
            self.signal_group(signal.SIGTERM)
            self._kill_at = time.monotonic() + max(0.0, float(msg["stop"]))
        elif isinstance(msg.get("dump"), (int, float)):
            self._start_dump(float(msg["dump"]))

    def _start_dump(self, timeout: float) -> None:
        self._dump = bytearray()
        self._dump_deadline = self._dump_ends = time.monotonic() + max(0.1, timeout)
        self._dump_why = ""
        if not self.booted:
            self._dump_why, self._dump_ends = "not a Python rank: no stack dump", 0.0
        elif process_state(self.proc.pid) in ("T", "t"):
            self._dump_why, self._dump_ends = "stopped (SIGSTOP): it cannot dump", 0.0
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGUSR1)

    def _read_stacks(self, sel: selectors.BaseSelector) -> None:
        chunk = os.read(self._stacks, 1 << 16)
        if not chunk:
            sel.unregister(self._stacks)
        elif self._dump is not None and len(self._dump) < (1 << 20):
            self._dump += chunk
            self._dump_ends = min(self._dump_deadline, time.monotonic() + _DUMP_QUIET)

    def _send_dump(self, handle: Channel) -> None:
        text = bytes(self._dump or b"").decode(errors="replace")
        why = self._dump_why or ("" if text else "no answer to SIGUSR1 in time")
        handle.send({"stacks": text or None, "why": why})
        self._dump = None
