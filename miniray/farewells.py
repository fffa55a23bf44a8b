# @2+
"""The server's last words to a client whose worker ended: its exit report, even when
the stream is full.

When the server reaps a worker, it seals the exit code as its report and ends the stream
(``tcp_server.WorkerServer._reap``). Usually the report fits in the socket's send buffer
and goes out at once. But a worker killed while it sent without pause (to a client that
was not reading) leaves that buffer full. A send that waited for room would stop the
whole server; one that did not wait would lose the report, and the client would read a
cut-off stream instead of "killed by SIGKILL". So what did not fit waits here, and the
server's loop sends it as the client reads (POLLOUT), for `FAREWELL_TIMEOUT` seconds at
most. Then, or once it is all sent, the stream ends (`pending_handshakes.end_stream`).
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from .pending_handshakes import end_stream
from .process import drop_in_children, keep_in_children

FAREWELL_TIMEOUT = 10.0  # seconds a client that reads nothing may keep its report waiting


class Farewells:
    """Reports still being sent, each on its own connection, watched by the server's poll."""

    def __init__(
        self,
        *,
        watch: Callable[[int, int, Callable[[int], object]], None],
        unwatch: Callable[[int], None],
        timeout: float = FAREWELL_TIMEOUT,
    ) -> None:
        self._watch, self._unwatch = watch, unwatch
        self._timeout = timeout
        self._pending: dict[int, _Farewell] = {}  # fd -> the report's rest

    def say(self, conn: socket.socket, words: bytes) -> None:
        """Send ``words``, then end the stream: now, or as the client makes room."""
        sent = _send_some(conn, words)
        if sent is None or sent == len(words):  # all sent, or the client is gone
            end_stream(conn)
            return
        farewell = _Farewell(conn, words[sent:], time.monotonic() + self._timeout)
        drop_in_children(conn)  # a worker forked meanwhile must not hold the stream open
        self._pending[conn.fileno()] = farewell
        self._watch(conn.fileno(), select.POLLOUT, lambda events: self._go_on(farewell, events))

    def next_timer(self) -> float | None:
        """When the oldest report gives up (for the server's poll timeout), or None."""
        return min((f.deadline for f in self._pending.values()), default=None)

    def expire(self) -> None:
        """End the streams whose reports ran out of time: the client read nothing."""
        now = time.monotonic()
        for farewell in [f for f in self._pending.values() if f.deadline <= now]:
            self._end(farewell)

    def close_all(self) -> None:
        """End every stream now, sent or not (the server is stopping)."""
        for farewell in list(self._pending.values()):
            self._end(farewell)

    def _go_on(self, farewell: _Farewell, events: int) -> None:
        if events & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            self._end(farewell)  # the client is gone: no one left to tell
            return
        sent = _send_some(farewell.conn, farewell.rest)
        if sent is not None:
            farewell.rest = farewell.rest[sent:]
        if sent is None or not farewell.rest:
            self._end(farewell)

    def _end(self, farewell: _Farewell) -> None:
        fd = farewell.conn.fileno()
        self._unwatch(fd)
        del self._pending[fd]
        keep_in_children(farewell.conn)  # it closes now: its number may be reused
        end_stream(farewell.conn)


@dataclass(eq=False)  # hashed by identity: held in process.drop_in_children's WeakSet
class _Farewell:
    conn: socket.socket
    rest: bytes  # what the send buffer has not taken yet
    deadline: float


def _send_some(conn: socket.socket, data: bytes) -> int | None:
    """Send what fits without waiting: the count (maybe 0), or None if the client is gone."""
    try:
        return conn.send(data, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return 0
    except OSError:
        return None
