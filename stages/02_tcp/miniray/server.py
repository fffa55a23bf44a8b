"""WorkerServer: accept TCP connections and fork one authenticated worker for each.

One process, one loop, no threads. The loop polls:

* the listening socket: accept; when every ``max_workers`` slot is taken, say "full"
  and hang up; otherwise fork a child that authenticates the client, then runs
  ``work_fn(handle)`` exactly like a stage 1 worker;
* each child's pidfd: the child ended, so reap it and close our copy of its
  connection (that is when the client sees end-of-file);
* each child's connection, for POLLRDHUP only: the client hung up, so the child gets
  ``exit_grace`` seconds to finish, then SIGTERM, then SIGKILL;
* a wake-up socket written by the SIGTERM/SIGINT handlers: stop every child, reap
  it, and return.

The server process never reads a byte a client sends: the handshake and all parsing
happen in the forked child, so a hostile client can break nothing but its own child.
The command line around it is ``worker_server.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .auth import load_secret, refuse_full, server_handshake
from .channel import Channel, wait_readable
from .errors import MiniRayError
from .process import fork_child, run_work_fn
from .tcp import tune
from .wire import DEFAULT_MAX_FRAME
from .worker import WorkFn

log = logging.getLogger("miniray.worker_server")
_TERM_TO_KILL = 2.0  # seconds between SIGTERM and SIGKILL


@dataclass
class _Child:
    pid: int
    pidfd: int
    conn: socket.socket
    client: str
    kill_at: float | None = None  # when to send next_signal, once the client has left
    next_signal: signal.Signals = signal.SIGTERM


class WorkerServer:
    """Listen on ``host:port``; fork one worker running ``work_fn`` per authenticated client.

    Args:
        work_fn: The function every worker runs, with its handle.
        host: Address to bind. The default serves this machine only; binding
            ``0.0.0.0`` is an explicit choice (and the traffic is not encrypted).
        port: TCP port; 0 picks a free one (see ``self.port``).
        max_workers: Workers (including connections still authenticating) at once.
        secret: Shared secret; by default looked up as described in ``miniray.auth``.
        handshake_timeout: Seconds a new client has to authenticate.
        exit_grace: Seconds a worker may outlive its client before SIGTERM.
        max_frame: Largest message, in encoded bytes (default 4 MiB). Decoding one
            can take up to ~50 times its size in memory (see ``wire.py``).
    """

    def __init__(
        self,
        work_fn: WorkFn,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_workers: int = 4,
        secret: str | bytes | None = None,
        handshake_timeout: float = 10.0,
        exit_grace: float = 5.0,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self._work_fn = work_fn
        self._secret = load_secret(secret)
        self._max_workers = max_workers
        self._handshake_timeout = handshake_timeout
        self._exit_grace = exit_grace
        self._max_frame = max_frame
        self._listener = socket.create_server((host, port))
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._children: dict[int, _Child] = {}
        self._poller = select.poll()
        self._handlers: dict[int, Callable[[int], object]] = {}  # fd -> handler(poll events)
        self._watch(self._listener.fileno(), select.POLLIN, self._accept)
        self._stopping = False
        self._wake: tuple[socket.socket, ...] = ()  # the signal wake-up pair, while serving

    # --8<-- [start:serve_forever]
    def serve_forever(self) -> None:
        """Serve until SIGTERM or SIGINT; then stop every worker, reap it, and return."""
        wake_read, wake_write = socket.socketpair()
        wake_write.setblocking(False)
        self._wake = (wake_read, wake_write)  # closed in every child
        self._watch(wake_read.fileno(), select.POLLIN, lambda _: wake_read.recv(512))
        previous_fd = signal.set_wakeup_fd(wake_write.fileno())
        previous = {sig: signal.signal(sig, self._on_stop_signal) for sig in _STOP_SIGNALS}
        try:
            while not self._stopping:
                # The listener was registered first, so its events come first: accept()
                # runs before a reap in the same batch can free a descriptor number.
                for fd, events in self._poller.poll(self._ms_to_next_kill()):
                    handler = self._handlers.get(fd)  # an earlier handler may have dropped it
                    if handler is not None:
                        handler(events)
                self._escalate_kills()
            log.info("stopping: %d workers", len(self._children))
        finally:
            self.stop_workers()
            signal.set_wakeup_fd(previous_fd)
            for sig, old_handler in previous.items():
                signal.signal(sig, old_handler)
            wake_read.close()
            wake_write.close()
            self._listener.close()

    # --8<-- [end:serve_forever]

    def stop_workers(self, grace: float = _TERM_TO_KILL) -> None:
        """SIGTERM every worker, SIGKILL those still running after ``grace`` s, reap all."""
        for child in self._children.values():
            _signal(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in list(self._children.values()):
            if not wait_readable([child.pidfd], max(0.0, deadline - time.monotonic())):
                _signal(child.pid, signal.SIGKILL)
            self._reap(child)

    # --8<-- [start:accept]
    def _accept(self, _events: int) -> None:
        try:
            conn, address = self._listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return  # the client gave up between poll and accept
        except OSError as e:  # e.g. out of file descriptors: log, back off, go on
            log.warning("accept failed: %s", e)
            time.sleep(0.1)
            return
        client = f"{address[0]}:{address[1]}"
        if len(self._children) >= self._max_workers:
            log.warning("refused %s: all %d worker slots are busy", client, self._max_workers)
            refuse_full(conn)
            conn.close()
            return
        conn.setblocking(True)
        tune(conn)
        inherited: list[Any] = [self._listener, *self._wake]
        inherited += [c.conn for c in self._children.values()]
        inherited += [c.pidfd for c in self._children.values()]
        pid = fork_child(lambda: self._serve_client(conn, client), close_in_child=inherited)
        child = _Child(pid, os.pidfd_open(pid), conn, client)
        self._children[pid] = child
        self._watch(child.pidfd, select.POLLIN, lambda _: self._reap(child))
        self._watch(conn.fileno(), select.POLLRDHUP, lambda _: self._client_left(child))
        log.info("worker pid %d started for %s", pid, client)

    # --8<-- [end:accept]

    # --8<-- [start:serve_client]
    def _serve_client(self, conn: socket.socket, client: str) -> int:
        """In the forked child: authenticate the client, then be its worker."""
        try:
            server_handshake(conn, self._secret, self._handshake_timeout)
        except (MiniRayError, OSError) as e:  # wrong secret, timeout, hang-up
            log.warning("refused %s: %s", client, e)
            return 2
        conn.settimeout(None)
        handle = Channel(conn, max_frame=self._max_frame, from_worker=False)
        handle.send({"pid": os.getpid(), "host": socket.gethostname()})
        return run_work_fn(self._work_fn, handle)

    # --8<-- [end:serve_client]

    def _reap(self, child: _Child) -> None:
        """The child ended: collect its status, and hang up on its client."""
        _, status = os.waitpid(child.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        log.info("worker pid %d for %s ended with code %d", child.pid, child.client, code)
        for fd in (child.pidfd, child.conn.fileno()):
            if fd in self._handlers:
                self._poller.unregister(fd)
                del self._handlers[fd]
        os.close(child.pidfd)
        child.conn.close()
        del self._children[child.pid]

    def _client_left(self, child: _Child) -> None:
        self._poller.unregister(child.conn.fileno())  # level-triggered: it would fire forever
        del self._handlers[child.conn.fileno()]
        child.kill_at = time.monotonic() + self._exit_grace

    def _escalate_kills(self) -> None:
        now = time.monotonic()
        for child in self._children.values():
            if child.kill_at is not None and child.kill_at <= now:
                log.warning(
                    "worker pid %d outlived its client: %s", child.pid, child.next_signal.name
                )
                _signal(child.pid, child.next_signal)
                child.kill_at = now + _TERM_TO_KILL if child.next_signal == signal.SIGTERM else None
                child.next_signal = signal.SIGKILL

    def _ms_to_next_kill(self) -> int | None:
        times = [c.kill_at for c in self._children.values() if c.kill_at is not None]
        return None if not times else max(0, int((min(times) - time.monotonic()) * 1000) + 1)

    def _watch(self, fd: int, events: int, handler: Callable[[int], object]) -> None:
        self._poller.register(fd, events)
        self._handlers[fd] = handler

    def _on_stop_signal(self, _signum: int, _frame: object) -> None:
        self._stopping = True  # only this: a handler that logged could interrupt a log call


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)  # safe: we have not reaped it, so the pid is still this child's
