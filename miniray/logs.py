# @3+
"""Worker logs: from each worker's stdout and stderr to the coordinator, line by line.

On the node (``LogRelay``, a thread in the cluster server): each worker's fds 1 and 2
become one pipe, whose read end the worker hands to the relay over a Unix socket. The
relay reads every pipe as it fills (a worker printing megabytes never waits for long),
cuts the bytes into lines, and writes each line whole, as one record, to the server's
stdout, which is the SSH channel back to the coordinator:

    MINIRAY_LOG <rank> <the line, without its newline>

One writer per stdout, whole lines only: lines of different workers never mix. A
last line without a newline is sent when the worker's pipe closes (when it exits).
A line longer than 64 KiB is sent in 64 KiB pieces.

On the coordinator (``LogLine`` and the sinks): each record becomes a `LogLine`, handed to
the cluster's sink (through a bounded buffer, ``log_delivery``: a slow sink never makes
a worker wait): the coordinator's stderr (``[host rN] line``, the default), your
own function, or one file per rank (``log_to_files``). A worker's output is its own
business, but the coordinator's terminal is not: the stderr sink shows control
characters (escape sequences that retitle the window, clear the screen, write the
clipboard; a carriage return that repaints the line) as text, such as ``\\x1b``.
Files get the text as the worker printed it.
"""

from __future__ import annotations

import contextlib
import logging  # @6+
import os
import select
import signal
import socket
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .orphans import child_pids

LOG_PREFIX = b"MINIRAY_LOG "
MAX_LINE = 1 << 16


@dataclass(frozen=True)
class LogLine:
    """One line a worker (``rank`` set) or a node's server (``rank`` None) printed."""

    host: str
    rank: int | None
    text: str

    def __str__(self) -> str:
        who = self.host if self.rank is None else f"{self.host} r{self.rank}"
        return f"[{who}] {self.text}"


LogSink = Callable[[LogLine], None]

# C0 controls but tab, DEL, and C1 controls (a terminal may take U+009B for ESC [).
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)] if c != 0x09}


def escape_controls(text: str) -> str:
    """``text`` with every control character but tab written as ``\\xNN``."""
    return text.translate(_ESCAPES)


def log_to_stream(stream: IO[str] | None = None) -> LogSink:
    """A sink that writes ``[host rN] line`` to ``stream`` (default: ``sys.stderr`` at the
    time of each line), one whole line per write, control characters escaped (see
    `escape_controls`): a worker's output cannot drive the terminal."""
    lock = threading.Lock()

    def write(line: LogLine) -> None:
        out = stream if stream is not None else sys.stderr
        with lock, contextlib.suppress(OSError, ValueError):
            out.write(escape_controls(str(line)) + "\n")
            out.flush()

    return write


# @6+ {
def log_to_logging(logger: logging.Logger | None = None, level: int = logging.INFO) -> LogSink:
    """A sink that makes each line a `logging` record, for an application that configures
    logging already: ``Cluster(nodes, log=log_to_logging())``.

    Each record goes to ``logger`` (default: the ``miniray.worker`` logger) at ``level``,
    with the line's ``host`` and ``rank`` as attributes of the record (``%(host)s r%(rank)s``
    in a format; ``rank`` is None for a node server's own lines). Its message is the line
    with control characters escaped (see `escape_controls`), as a handler may well write
    it to a terminal.
    """
    target = logger if logger is not None else logging.getLogger("miniray.worker")

    def emit(line: LogLine) -> None:
        extra = {"host": line.host, "rank": line.rank}
        target.log(level, "%s", escape_controls(line.text), extra=extra)

    return emit


# @}
class log_to_files:
    """A sink that appends each rank's lines to ``directory/rank-N.log`` (servers' lines:
    ``directory/node-HOST.log``). ``close()`` closes the files (``Cluster.stop`` does)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, line: LogLine) -> None:
        name = f"node-{line.host}.log" if line.rank is None else f"rank-{line.rank}.log"
        with self._lock:
            if name not in self._files:
                self._files[name] = open(self.directory / name, "a", encoding="utf-8")  # noqa: SIM115
            self._files[name].write(line.text + "\n")
            self._files[name].flush()

    def close(self) -> None:
        with self._lock:
            for file in self._files.values():
                file.close()
            self._files.clear()


def parse_record(host: str, record: bytes) -> LogLine:
    """A line from a server's stdout as a `LogLine` (a line that is no record: the server's)."""
    if record.startswith(LOG_PREFIX):
        rank, _, text = record[len(LOG_PREFIX) :].partition(b" ")
        if rank.isdigit():
            return LogLine(host, int(rank), text.decode(errors="replace"))
    return LogLine(host, None, record.decode(errors="replace"))


class LogRelay:
    """In a cluster server: collect each worker's output and write it to ``out_fd`` as records.

    Call ``capture(rank)`` in each forked worker, ``start()`` in the server, and
    ``finish()`` once the workers are gone.
    """

    def __init__(self, out_fd: int) -> None:
        self._out_fd = out_fd
        self._inbox, self._outbox = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._pipes: dict[int, tuple[int, int, bytearray]] = {}  # fd -> rank, pid, pending
        self._lock = threading.Lock()  # held across fork: a child sees a whole _pipes
        self._write_lock = threading.Lock()  # a whole record at a time, from any thread
        self._finishing = False
        self._thread = threading.Thread(target=self._run, name="miniray-log-relay", daemon=True)
        _relays.add(self)

    def start(self) -> None:
        self._thread.start()

    def capture(self, rank: int) -> None:
        """In a forked worker: send fds 1 and 2 through a new pipe to the relay; stdin from
        /dev/null (the server's stdin is the lease, not the worker's)."""
        read_end, write_end = os.pipe()
        socket.send_fds(self._outbox, [f"{rank} {os.getpid()}".encode()], [read_end])
        os.close(read_end)
        self._outbox.close()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        os.close(write_end)
        for stream in (sys.stdout, sys.stderr):  # a pipe now: flush each line as it is printed
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    def interrupt_workers(self) -> None:
        """SIGINT every worker (a KeyboardInterrupt in work_fn).

        The workers are this server's children: the kernel's list of them is complete even
        when the relay thread has not yet seen a new worker's pipe.
        """
        with self._lock:
            pids = {pid for _, pid, _ in self._pipes.values()}
        for pid in pids | child_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)

    def finish(self, timeout: float) -> None:
        """Send what is left (the workers have ended), then stop the thread."""
        self._finishing = True
        with contextlib.suppress(OSError):
            self._outbox.send(b"")  # wake the thread
        self._thread.join(timeout)

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._inbox, select.POLLIN)
        while not (self._finishing and not self._pipes):
            for fd, _ in poller.poll(100 if self._finishing else None):
                if fd == self._inbox.fileno():
                    self._receive_pipe(poller)
                else:
                    self._read_pipe(poller, fd)

    def _receive_pipe(self, poller: select.poll) -> None:
        note, fds, _, _ = socket.recv_fds(self._inbox, 256, 1)
        if not fds:
            return  # the wake-up from finish()
        rank, pid = (int(x) for x in note.split())
        with self._lock:
            self._pipes[fds[0]] = (rank, pid, bytearray())
        poller.register(fds[0], select.POLLIN)

    def _read_pipe(self, poller: select.poll, fd: int) -> None:
        rank, _, pending = self._pipes[fd]
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            chunk = b""
        pending += chunk
        lines = [bytes(line) for line in pending.split(b"\n")]
        rest = lines.pop()  # what follows the last newline: not a line yet
        if (rest and not chunk) or len(rest) >= MAX_LINE:  # the end, or too long to wait for
            lines.append(rest)
            rest = b""
        pending[:] = rest
        if lines:
            self._emit(rank, lines)
        if not chunk:  # the worker (and everything it started) closed its output
            poller.unregister(fd)
            with self._lock:
                del self._pipes[fd]
            os.close(fd)

    def _emit(self, rank: int, lines: list[bytes]) -> None:
        """Write the lines as records, all in one write."""
        prefix = LOG_PREFIX + str(rank).encode() + b" "
        pieces = [
            line[i : i + MAX_LINE] for line in lines for i in range(0, len(line) or 1, MAX_LINE)
        ]
        with self._write_lock:
            self._write(b"".join(prefix + piece + b"\n" for piece in pieces))

    # @6+ {
    def send_record(self, record: bytes) -> None:
        """Write ``record`` (whole lines) to ``out_fd``, never inside another's lines."""
        with self._write_lock:
            self._write(record)

    # @}
    def _write(self, data: bytes) -> None:
        records = memoryview(data)
        try:
            while records:
                records = records[os.write(self._out_fd, records) :]
        except OSError:
            pass  # the coordinator is gone; keep draining so that workers never block

    def _drop_in_child(self) -> None:
        """After a fork: the child keeps only its way to hand over its own output."""
        for fd in self._pipes:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._pipes.clear()
        self._inbox.close()


_relays: weakref.WeakSet[LogRelay] = weakref.WeakSet()


def _before_fork() -> None:
    for relay in list(_relays):
        relay._lock.acquire()


def _after_fork_in_parent() -> None:
    for relay in list(_relays):
        relay._lock.release()


def _after_fork_in_child() -> None:
    for relay in list(_relays):
        relay._lock.release()
        relay._drop_in_child()
    _relays.clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
