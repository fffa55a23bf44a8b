"""Raises TimeoutError as soon as the deadline has passed, before looking at the socket.

So ``timeout=0`` never reads: a message waiting in the socket is not returned.
"""


def _next_frame(self, deadline: float | None) -> tuple[int, bytes]:
    while True:
        if self._frames:
            return self._frames[0]
        if self.closed:
            raise ChannelClosed("the channel is closed")
        if self._end is not None:
            raise self._end.error()
        if deadline is None:
            self._read_some()
            continue
        if time.monotonic() >= deadline:
            raise TimeoutError("no message arrived in time")
        ready = [fd for fd, _ in self._poller.poll(ms_until(deadline))]
        if not ready:
            raise TimeoutError("no message arrived in time")
        if self._sock.fileno() in ready:
            self._read_some()
        else:
            self._check_watched_process()
