# @2+
"""The server's side of the handshake, run inside its poll loop: cheap for strangers.

A connection that has not authenticated costs the server one socket and a few dozen
bytes, never a process. The server greets it, then reads exactly the 64-byte answer
(non-blocking, as the bytes arrive), checks the proof with ``auth.check_answer``, and
parses nothing else. Two limits keep strangers from crowding out the clients that know
the secret:

* at most ``max_pending`` connections may be unauthenticated at once, from any
  addresses. Only when every place is taken does a newcomer take one: the place of a
  connection that has had the first tenth of its time to answer (``PROTECTED_SHARE``)
  and has not, or else the oldest place of an address that holds more places than the
  newcomer's. Failing both, the newcomer is refused, not the young connections before
  it. So idle strangers cannot hold the door shut, a client that answers at once (a
  round trip) gets through, and a burst of clients from one host that fits in the
  places is served in full;
* each has ``timeout`` seconds for its whole answer: one deadline, so a trickle of one
  byte a second does not extend it.

A worker slot is taken only after the proof checks out (``on_authenticated``).
Refusals are counted, not logged one by one: :class:`Tally` writes one summary line
per ``log_every`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import select
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import takewhile

from .auth import ANSWER_SIZE, NONCE_SIZE, REJECTION, check_answer, greeting
from .errors import AuthenticationError
from .frame_mac import Session

log = logging.getLogger("miniray.worker_server")
Watch = Callable[[int, int, Callable[[int], object]], None]  # (fd, poll events, handler)
# The share of its time to answer during which a handshake keeps its place against
# newcomers from its own address (or one as crowded). A client answers within a round
# trip: a tenth of the default 10 s leaves it 1 s of slack on a loaded machine, and a
# silent stranger's place goes to the next newcomer after that second, not after ten.
PROTECTED_SHARE = 0.1


@dataclass
class _Pending:
    conn: socket.socket
    address: str  # the client's IP address, for the per-address limit
    client: str  # address:port, for the log
    nonce: bytes
    deadline: float
    protected_until: float  # until then, no newcomer may take its place
    answer: bytes = b""


class Handshakes:
    """The connections still authenticating, with their budget and deadlines.

    Args:
        secret: The handshake key (``load_secret``'s, from the shared secret).
        timeout: Seconds a connection has to send its whole answer.
        max_pending: Unauthenticated connections at once, from all addresses.
        watch: Registers a descriptor in the server's poll loop, with its handler.
        unwatch: Removes it again.
        on_authenticated: Called with ``(conn, "address:port", session)`` for a client
            whose proof is right; it owns the connection from then on.
        log_every: Seconds between summary lines about refused connections.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        timeout: float,
        max_pending: int,
        watch: Watch,
        unwatch: Callable[[int], None],
        on_authenticated: Callable[[socket.socket, str, Session], None],
        log_every: float = 10.0,
    ) -> None:
        self._secret, self._timeout = secret, timeout
        self._max_pending = max_pending
        self._watch, self._unwatch = watch, unwatch
        self._on_authenticated = on_authenticated
        self._pending: dict[int, _Pending] = {}  # by descriptor, oldest first
        self._per_address: Counter[str] = Counter()
        self.tally = Tally("refused unauthenticated connections", every=log_every)

    # --8<-- [start:start]
    def start(self, conn: socket.socket, address: str, client: str) -> None:
        """Greet a new connection and wait for its answer (making room if need be)."""
        if len(self._pending) >= self._max_pending:
            taken = self._place_for(address)
            if taken is None:  # all young, and its address holds as many places as any other
                self.tally.note("over the pending limit", address)
                conn.close()
                return
            self._drop(taken, "gave way to a newcomer")
        conn.setblocking(False)
        nonce = secrets.token_bytes(NONCE_SIZE)
        try:  # 41 bytes into a new connection's empty send buffer: never blocks
            conn.send(greeting(nonce))
        except OSError:
            self.tally.note("hung up", address)
            conn.close()
            return
        now = time.monotonic()
        protected_until = now + self._timeout * PROTECTED_SHARE
        pending = _Pending(conn, address, client, nonce, now + self._timeout, protected_until)
        self._pending[conn.fileno()] = pending
        self._per_address[address] += 1
        self._watch(conn.fileno(), select.POLLIN, lambda _: self._read_answer(pending))

    # --8<-- [end:start]

    def expire(self) -> None:
        """Drop the connections whose time to answer is over; log the tally when due."""
        now = time.monotonic()
        while self._pending:
            oldest = next(iter(self._pending.values()))  # deadlines come in arrival order
            if oldest.deadline > now:
                break
            self._drop(oldest, "timed out")
        self.tally.log_if_due()

    def next_timer(self) -> float | None:
        """When :meth:`expire` next has work (a deadline or a summary line), if ever."""
        times = [p.deadline for p in list(self._pending.values())[:1]]
        times += [t for t in [self.tally.due_at()] if t is not None]
        return min(times, default=None)

    def close_all(self) -> None:
        """Hang up on every pending connection and log the final tally."""
        for pending in list(self._pending.values()):
            self._drop(pending, "server stopping")
        self.tally.log_if_due(force=True)

    # --8<-- [start:read_answer]
    def _read_answer(self, pending: _Pending) -> None:
        try:
            chunk = pending.conn.recv(ANSWER_SIZE - len(pending.answer))
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(pending, "hung up")
            return
        pending.answer += chunk
        if len(pending.answer) < ANSWER_SIZE:
            return
        self._forget(pending)
        try:
            session = check_answer(self._secret, pending.nonce, pending.answer)
        except AuthenticationError:
            self.tally.note("wrong secret", pending.address)
            tell_and_close(pending.conn, REJECTION)
            return
        self._on_authenticated(pending.conn, pending.client, session)

    # --8<-- [end:read_answer]

    # --8<-- [start:place_for]
    def _place_for(self, address: str) -> _Pending | None:
        """The pending handshake a newcomer from ``address`` may replace, if any.

        First one that has had its protected share and not answered: the oldest of the
        address holding the most. Else the oldest of an address holding more places
        than the newcomer's: an address crowding the table gives way to the others.
        """
        now = time.monotonic()
        in_order = self._pending.values()  # oldest first: the unprotected come first
        unprotected = list(takewhile(lambda p: p.protected_until <= now, in_order))
        holding = self._per_address.__getitem__
        if unprotected:
            crowded = max(dict.fromkeys(p.address for p in unprotected), key=holding)
            return next(p for p in unprotected if p.address == crowded)
        crowded = max(self._per_address, key=holding)
        if holding(crowded) > holding(address):
            return next(p for p in in_order if p.address == crowded)
        return None

    # --8<-- [end:place_for]

    def _drop(self, pending: _Pending, reason: str) -> None:
        self.tally.note(reason, pending.address)
        self._forget(pending)
        pending.conn.close()

    def _forget(self, pending: _Pending) -> None:
        self._unwatch(pending.conn.fileno())
        del self._pending[pending.conn.fileno()]
        self._per_address[pending.address] -= 1
        if not self._per_address[pending.address]:
            del self._per_address[pending.address]


@dataclass
class Tally:
    """Count events by reason; log them as one line at most every ``every`` seconds.

    The first event after a quiet spell is logged at once; later ones wait for the
    next line, so a flood of connections costs a line per ``every`` seconds, not one each.
    """

    what: str
    every: float
    _counts: Counter[str] = field(default_factory=Counter)
    _addresses: Counter[str] = field(default_factory=Counter)
    _next_line: float = 0.0

    def note(self, reason: str, address: str = "") -> None:
        """Count one event; log the tally if a line is due."""
        self._counts[reason] += 1
        if address:
            self._addresses[address] += 1
        self.log_if_due()

    def due_at(self) -> float | None:
        """When the next line is due, if there is anything to say."""
        return self._next_line if self._counts else None

    def log_if_due(self, *, force: bool = False) -> None:
        """Log what was counted, if there is any and a line is due (or ``force``)."""
        now = time.monotonic()
        if not self._counts or (now < self._next_line and not force):
            return
        # most_common(n) would import heapq here: no imports while out of descriptors
        reasons = ", ".join(f"{n} {reason}" for reason, n in self._counts.most_common())
        top = sorted(self._addresses, key=self._addresses.__getitem__, reverse=True)[:3]
        more = len(self._addresses) - len(top)
        sources = ", ".join(top) + (f" and {more} more addresses" if more > 0 else "")
        log.warning(
            "%s: %d (%s)%s",
            self.what,
            self._counts.total(),
            reasons,
            f" from {sources}" if sources else "",
        )
        self._counts.clear()
        self._addresses.clear()
        self._next_line = now + self.every


def tell_and_close(conn: socket.socket, last_words: bytes) -> None:
    """Send a few bytes without waiting, then end the stream (`end_stream`)."""
    with contextlib.suppress(OSError):
        conn.send(last_words, socket.MSG_DONTWAIT)
    end_stream(conn)


def end_stream(conn: socket.socket) -> None:
    """End the stream even if others hold it, and close our end.

    ``shutdown`` ends the connection for every process that holds it (a grandchild of
    the worker may); unread bytes are discarded first, since closing a socket with
    unread data resets the connection instead of ending it.
    """
    with contextlib.suppress(OSError):
        for _ in range(16):
            if not conn.recv(65536, socket.MSG_DONTWAIT):
                break
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()
