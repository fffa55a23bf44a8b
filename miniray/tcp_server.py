# @2+
"""WorkerServer: accept TCP connections and fork one authenticated worker for each.

One process, one loop, no threads. The loop polls:

* the listening socket: accept, greet, and hand the connection to the handshakes in
  progress (``pending_handshakes.py``), which have their own small budget;
* each connection still authenticating: read its 64-byte answer as it arrives; a right
  proof takes a worker slot: fork a child that runs ``work_fn(handle)`` exactly like a
  stage 1 worker, or, with no slot (or no process) free, tell the client so;
* each child's pidfd: the child ended, so end its process group, reap it, send its
  client the exit code (sealed as the server's report), and hang up; a report that does
  not fit in a full stream is sent as the client reads (``farewells.py``);
* each child's connection, for POLLRDHUP only: the client hung up, so the child gets
  ``exit_grace`` seconds to finish, then SIGTERM, then SIGKILL;
* a wake-up socket written by the SIGTERM/SIGINT handlers: stop every child, reap
  it, and return.

The server process reads exactly one thing a client sends: the fixed-size, 64-byte
answer to its challenge, compared with ``hmac.compare_digest``. It parses nothing: no
length, no frame, no JSON (when it hangs up, it throws unread bytes away unlooked-at,
so that the client sees a clean end of stream rather than a reset). Everything after
the handshake happens in the forked child, so a hostile client can break nothing but
its own child, and a stranger costs a socket, never a process. The command line
around it is ``worker_server.py``.
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

from .auth import ACCEPTED, BUSY, FULL
from .channel import Channel, wait_readable
from .codec import CODECS  # @5+
from .errors import MiniRayError  # @5+
from .farewells import Farewells
from .frame_mac import Session
from .message_codec import MessageCodec  # @5+
from .pending_handshakes import Handshakes, Tally, tell_and_close
from .process import (
    check_work_fn,
    die_with_parent,
    drop_in_children,
    fork_child,
    keep_in_children,
    run_work_fn,
)
from .settings import check_count
from .tcp import check_host, check_port, tune
from .timeouts import check_seconds
from .wire import DEFAULT_MAX_FRAME
from .wire_options import (
    DEFAULT_MAX_BUFFER_BYTES,  # @5+
    WireOptions,
)
from .worker import WorkFn

log = logging.getLogger("miniray.worker_server")
_TERM_TO_KILL = 2.0  # seconds between SIGTERM and SIGKILL
_ACCEPTS_PER_WAKEUP = 16  # a burst of connections is taken in few loop turns, not one each


@dataclass(eq=False)  # hashed by identity: held in process.drop_in_children's WeakSet
class _Child:
    pid: int
    pidfd: int
    conn: socket.socket
    client: str
    session: Session  # to seal the exit report the server sends when it reaps the child
    kill_at: float | None = None  # when to send next_signal, once the client has left
    next_signal: signal.Signals = signal.SIGTERM

    def close_in_child(self) -> None:
        """In a later fork: a sibling's connection and pidfd are not the new worker's."""
        self.conn.close()
        os.close(self.pidfd)


class WorkerServer:
    """Listen on ``host:port``; fork one worker running ``work_fn`` per authenticated client.

    Args:
        work_fn: The function every worker runs, with its handle.
        host: Address to bind. The default serves this machine only; binding
            ``0.0.0.0`` is an explicit choice (and the traffic is not encrypted).
        port: TCP port; 0 picks a free one (see ``self.port``).
        max_workers: Workers at once (a slot is taken only after authentication).
        secret: Shared secret; by default looked up as described in ``miniray.secret``.
        handshake_timeout: Seconds a new client has to authenticate.
        exit_grace: Seconds a worker may outlive its client before SIGTERM.
        max_frame: Largest message, in encoded bytes (default 4 MiB). Decoding one
            can take up to ~50 times its size in memory (see ``wire.py``).
        max_buffer_bytes: Largest total of the buffers beside one message (default  # @5+
            1 GiB; see ``wire_options.py``).  # @5+
        max_pending: Connections still authenticating at once, from all addresses; at
            least ``max_workers``, so that a client for every worker may connect at once.
        codecs: The codecs clients may choose (``("json",)``: a JSON-only server).  # @5+
        wire: The limits as one object, in place of ``max_frame`` and  # @3+
            ``max_buffer_bytes`` (a Cluster's node server passes its Cluster's).  # @3+

    Raises:
        TypeError: ``work_fn`` is not callable, ``host`` not a str, or ``port`` or a count
            not an int.
        ValueError: ``port`` is not 0-65535, a count is under 1, or a time is negative,
            NaN or infinite.
        OSError: The address cannot be bound (in use, not this machine's).
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
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,  # @5+
        codecs: tuple[str, ...] = tuple(CODECS),  # @5+
        max_pending: int = 64,
        wire: WireOptions | None = None,  # @3+
    ) -> None:
        check_count("max_workers", max_workers)
        check_count("max_pending", max_pending)
        check_work_fn(work_fn)
        check_host(host, server=True)
        check_port(port, server=True)
        self._work_fn = work_fn
        self._handshake_timeout = check_seconds("handshake_timeout", handshake_timeout)
        self._exit_grace = check_seconds("exit_grace", exit_grace)
        # Imported here, not with the package: ``python -m miniray.secret`` runs that
        # module, and runpy warns on stderr if ``import miniray`` has imported it already.
        from .secret import load_secret

        self._key = load_secret(secret)  # scrypt, once per process and secret
        self._max_workers = max_workers
        # @2-4: self._options = WireOptions(max_frame, set_on="WorkerServer")
        self._options = WireOptions(max_frame, max_buffer_bytes, set_on="WorkerServer")  # @5+
        self._options = wire or self._options  # @3+
        # @5+ {
        if isinstance(codecs, str):  # its letters are no codecs
            raise TypeError(f"codecs: a tuple of codec names, not {codecs!r:.50}")
        unknown = sorted(set(codecs) - set(CODECS))
        if unknown or not codecs:
            raise ValueError(f"codecs must be some of {list(CODECS)}, not {list(codecs)}")
        self._codecs = codecs
        # @}
        # A burst of a client for every worker queues here until accepted, not dropped
        # (the kernel caps the backlog at net.core.somaxconn, 4096 by default).
        self._listener = socket.create_server((host, port), backlog=max(128, max_workers))
        self._listener.setblocking(False)
        drop_in_children(self._listener)  # as is everything the server opens: one rule
        self.host, self.port = self._listener.getsockname()[:2]
        self._children: dict[int, _Child] = {}
        self._poller = select.poll()
        self._handlers: dict[int, Callable[[int], object]] = {}  # fd -> handler(poll events)
        self._watch(self._listener.fileno(), select.POLLIN, self._accept)
        self._handshakes = Handshakes(
            self._key,
            timeout=handshake_timeout,
            max_pending=max(max_pending, max_workers),
            watch=self._watch,
            unwatch=self._unwatch,
            on_authenticated=self._start_worker,
        )
        self._farewells = Farewells(watch=self._watch, unwatch=self._unwatch)
        self._accept_failures = Tally("accept() failed", every=10.0)
        self._stopping = False
        self._wake: tuple[socket.socket, ...] = ()  # the signal wake-up pair, while serving

    # --8<-- [start:serve_forever]
    def serve_forever(self) -> None:
        """Serve until SIGTERM or SIGINT; then stop every worker, reap it, and return."""
        wake_read, wake_write = socket.socketpair()
        wake_write.setblocking(False)
        self._wake = (wake_read, wake_write)
        for end in self._wake:
            drop_in_children(end)
        self._watch(wake_read.fileno(), select.POLLIN, lambda _: wake_read.recv(512))
        previous_fd = signal.set_wakeup_fd(wake_write.fileno())
        previous = {sig: signal.signal(sig, self._on_stop_signal) for sig in _STOP_SIGNALS}
        try:
            while not self._stopping:
                # An event belongs to the handler that was watching when poll() returned.
                # A handler earlier in the batch may close a descriptor and a later one
                # reuse its number (a reap frees a pidfd, the next worker's pidfd takes
                # it): a stale event must not reach the new owner's handler.
                batch = self._poller.poll(self._ms_to_next_timer())
                owners = [(fd, events, self._handlers.get(fd)) for fd, events in batch]
                for fd, events, handler in owners:
                    if handler is not None and self._handlers.get(fd) is handler:
                        handler(events)
                self._handshakes.expire()
                self._farewells.expire()
                self._accept_failures.log_if_due()
                self._escalate_kills()
            count = len(self._children)
            log.info("stopping: %d worker%s", count, "" if count == 1 else "s")
        finally:
            self._handshakes.close_all()
            self._accept_failures.log_if_due(force=True)
            self.stop_workers()
            self._farewells.close_all()
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
            _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in list(self._children.values()):
            if not wait_readable([child.pidfd], max(0.0, deadline - time.monotonic())):
                _signal_group(child.pid, signal.SIGKILL)
            self._reap(child)

    def _accept(self, _events: int) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                conn, address = self._listener.accept()
                drop_in_children(conn)  # until it becomes a worker's own connection
                tune(conn)
            except (BlockingIOError, ConnectionAbortedError):
                return  # no one (left) waiting
            except OSError as e:  # e.g. out of file descriptors: count, back off, go on
                self._accept_failures.note(e.strerror or str(e))
                time.sleep(0.1)  # the listener stays readable: without a pause, a busy loop
                return
            self._handshakes.start(conn, address[0], f"{address[0]}:{address[1]}")

    # --8<-- [start:start_worker]
    def _start_worker(self, conn: socket.socket, client: str, session: Session) -> None:
        """A client proved it knows the secret: fork its worker, or tell it why not."""
        if len(self._children) >= self._max_workers:
            log.warning("refused %s: all %d worker slots are busy", client, self._max_workers)
            tell_and_close(conn, session.verdict(FULL))
            return
        try:
            with open(os.devnull, "rb") as spare:  # keeps a descriptor free for the pidfd
                drop_in_children(spare)
                keep_in_children(conn)  # the child's own; all else it drops at the fork
                pid = fork_child(lambda: self._serve_client(conn, session))
        except OSError as e:  # out of processes (EAGAIN), memory or descriptors (EMFILE)
            log.error("cannot start a worker for %s: %s", client, e)
            tell_and_close(conn, session.verdict(BUSY))
            return
        pidfd = _pidfd_or_kill(pid)  # takes the spare's number, so EMFILE cannot happen
        if pidfd is None:
            conn.close()
            return
        child = _Child(pid, pidfd, conn, client, session)
        drop_in_children(child)  # later workers must not keep a sibling's stream or pidfd
        self._children[pid] = child
        self._watch(pidfd, select.POLLIN, lambda _: self._reap(child))
        self._watch(conn.fileno(), select.POLLRDHUP, lambda _: self._client_left(child))
        log.info("worker pid %d started for %s", pid, client)

    # --8<-- [end:start_worker]

    # --8<-- [start:serve_client]
    def _serve_client(self, conn: socket.socket, session: Session) -> int:
        """In the forked child: accept the client, say hello, then be its worker."""
        _forks_die_with_their_parent()  # fork_child made it lead a process group, too
        conn.settimeout(self._handshake_timeout)
        try:
            conn.sendall(session.verdict(ACCEPTED))
        except OSError:
            return 2  # the client left right after proving itself
        conn.settimeout(None)
        frame_auth = session.worker_frames()
        handle = Channel(conn, options=self._options, from_worker=False, frame_auth=frame_auth)
        # @2-4: handle.send({"pid": os.getpid(), "host": socket.gethostname()})
        # @5+ {
        try:  # only an authenticated client gets here: its bytes may reach a decoder now
            proposal = handle.recv(timeout=self._handshake_timeout)
        except (MiniRayError, OSError) as e:
            log.warning("no codec from the client: %s", e)
            return 2
        codec = proposal.get("codec") if isinstance(proposal, dict) else None
        if codec not in self._codecs:  # say which it speaks; then this worker ends
            handle.send({"refused": f"not {codec!r}", "codecs": list(self._codecs)})
            log.warning("refused codec %r: this server speaks %s", codec, ",".join(self._codecs))
            return 2
        handle.send({"pid": os.getpid(), "host": socket.gethostname(), "codec": codec})
        handle.codec = MessageCodec(CODECS[codec], options=self._options)
        # @}
        return run_work_fn(self._work_fn, handle)

    # --8<-- [end:serve_client]

    # --8<-- [start:reap]
    def _reap(self, child: _Child) -> None:
        """The child ended: end its group, reap it, tell its client the code, hang up."""
        _signal_group(child.pid, signal.SIGKILL)  # what it forked must not keep the stream
        _, status = os.waitpid(child.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        log.info("worker pid %d for %s ended with code %d", child.pid, child.client, code)
        for fd in (child.pidfd, child.conn.fileno()):
            self._unwatch(fd)
        keep_in_children(child)  # its descriptors close now: their numbers may be reused
        os.close(child.pidfd)
        self._farewells.say(child.conn, child.session.exit_report(code))
        del self._children[child.pid]

    # --8<-- [end:reap]

    def _client_left(self, child: _Child) -> None:
        self._unwatch(child.conn.fileno())  # level-triggered: it would fire forever
        child.kill_at = time.monotonic() + self._exit_grace

    def _escalate_kills(self) -> None:
        now = time.monotonic()
        for child in self._children.values():
            if child.kill_at is not None and child.kill_at <= now:
                log.warning(
                    "worker pid %d outlived its client: %s", child.pid, child.next_signal.name
                )
                _signal_group(child.pid, child.next_signal)
                child.kill_at = now + _TERM_TO_KILL if child.next_signal == signal.SIGTERM else None
                child.next_signal = signal.SIGKILL

    def _ms_to_next_timer(self) -> int | None:
        times = [c.kill_at for c in self._children.values() if c.kill_at is not None]
        more = (
            self._handshakes.next_timer(),
            self._farewells.next_timer(),
            self._accept_failures.due_at(),
        )
        times += [t for t in more if t is not None]
        return None if not times else max(0, int((min(times) - time.monotonic()) * 1000) + 1)

    def _watch(self, fd: int, events: int, handler: Callable[[int], object]) -> None:
        self._poller.register(fd, events)
        self._handlers[fd] = handler

    def _unwatch(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            self._poller.unregister(fd)

    def _on_stop_signal(self, _signum: int, _frame: object) -> None:
        self._stopping = True  # only this: a handler that logged could interrupt a log call


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal a worker's process group. Safe: until it is reaped, the group id is ours."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _pidfd_or_kill(pid: int) -> int | None:
    """A pidfd for the new worker; if even that fails, kill and reap it (and say so)."""
    try:
        return os.pidfd_open(pid)
    except OSError as e:
        log.error("cannot watch worker pid %d (%s): killed it", pid, e)
        _signal_group(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None


def _forks_die_with_their_parent() -> None:
    """In a worker: every process forked from here on dies with its parent (PDEATHSIG).

    So a process the work function forks cannot keep the client's connection open
    after the worker is gone, even if the server was killed and cannot end the group.
    """
    parent: list[int] = []
    os.register_at_fork(
        before=lambda: parent.append(os.getpid()),
        after_in_child=lambda: die_with_parent(parent[-1]),
        after_in_parent=parent.clear,
    )
