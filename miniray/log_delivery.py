# @3+
"""From the threads reading the nodes' logs to the cluster's sink, which may be slow.

If the thread reading a node's stdout called the sink itself, a slow sink (a file on a
busy network disk, a terminal on a slow link, a function that sleeps) would stop it
reading: the ssh channel would fill, then the node's pipes, and every worker of the node
would wait in ``print``. So the readers only put lines into a bounded buffer, a
`LogDelivery`, and one thread of its own calls the sink, line by line, in order.

When the buffer is full, a line is dropped and counted rather than making a reader wait:
the workers' speed never depends on the sink's, and memory stays bounded. ``close`` gives
the sink until a deadline to take the lines still held, drops the rest, and returns how
many lines were dropped in all (``Cluster.stop`` logs the number).
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from .logs import LogLine, LogSink

log = logging.getLogger("miniray.cluster")

LINE_COST = 256  # bytes a held line costs beyond its text: the LogLine and its string


class LogDelivery:
    """A `LogSink` that hands each line to ``sink`` from a thread of its own, never waiting.

    Call ``start(max_bytes)`` to start the thread, ``close(timeout)`` at the end.

    Args:
        sink: Called with each line, in order, from one thread; it must not raise
            (``Cluster`` guards the user's sink).

    Attributes:
        dropped: How many lines were dropped: the buffer was full, or ``close`` had
            begun, or its deadline came before the sink took them.
    """

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink
        self._max_bytes = 0  # until start(): every line is dropped
        self._lines: deque[tuple[LogLine, int]] = deque()  # (line, its cost)
        self._held = 0  # the bytes of the lines in _lines
        # An RLock (Condition's default): the Ctrl-C handler puts a line, and it may run
        # in the main thread while that thread holds the lock.
        self._cond = threading.Condition()
        self._closing = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="miniray-log-delivery", daemon=True)

    def start(self, max_bytes: int) -> None:
        """Deliver lines from now on, holding at most ``max_bytes`` of them (each line
        counts its text and `LINE_COST`)."""
        with self._cond:
            self._max_bytes = max_bytes
        self._thread.start()

    def __call__(self, line: LogLine) -> None:
        """Hold the line for the sink, or drop it (counted) if the buffer is full."""
        cost = len(line.text) + LINE_COST
        with self._cond:
            if not self._closing and self._held + cost <= self._max_bytes:
                self._lines.append((line, cost))
                self._held += cost
                self._cond.notify()
                return
            self.dropped += 1
            first = self.dropped == 1 and not self._closing
        if first:
            log.warning("the log sink is slower than the workers print: dropping lines")

    def close(self, timeout: float) -> int:
        """Let the sink take the lines held for up to ``timeout`` seconds, drop the rest,
        and return how many lines were dropped in all. Lines put later are dropped."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)  # it ends once it has delivered every line held
        with self._cond:
            self.dropped += len(self._lines)
            self._lines.clear()
            self._held = 0
        if self._thread.ident is not None:
            self._thread.join(1.0)  # the line the sink has now, if the deadline came first
        return self.dropped

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._lines and not self._closing:
                    self._cond.wait()
                if not self._lines:
                    return  # closing, and everything delivered
                line, cost = self._lines.popleft()
                self._held -= cost
            self._sink(line)
