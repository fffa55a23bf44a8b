"""Waits for the socket before looking in the buffer.

A frame that arrived in the same read as the previous one sits in the buffer while the
socket is empty: the call waits its whole timeout (or forever) for bytes it already has.
"""


def _next_frame(self, deadline: float | None) -> tuple[int, bytes]:
    while True:
        if self.closed:
            raise ChannelClosed("the channel is closed")
        if self._end is not None:
            raise self._end.error()
        if deadline is None:
            self._read_some()
        else:
            ready = [fd for fd, _ in self._poller.poll(ms_until(deadline))]
            if not ready:
                raise TimeoutError("no message arrived in time")
            if self._sock.fileno() in ready:
                self._read_some()
            else:
                self._check_watched_process()
        if self._frames:
            return self._frames[0]
