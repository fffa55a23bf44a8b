"""On a timeout, throws away the bytes of a frame that has only partly arrived.

The next call then reads the frame's tail as if it were a header: the stream is garbled.
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
        ready = [fd for fd, _ in self._poller.poll(ms_until(deadline))]
        if not ready:
            del self._buffer[:]  # start afresh next time
            raise TimeoutError("no message arrived in time")
        if self._sock.fileno() in ready:
            self._read_some()
        else:
            self._check_watched_process()
