"""Throws away the messages that arrive while it waits, instead of keeping them for recv."""


def wait(self, timeout: float | None = None) -> int:
    deadline = deadline_after(check_timeout(timeout))
    while (end := self._end(deadline)) is None:
        self._channel.discard_messages()
        remaining = None if deadline is None else deadline - time.monotonic()
        if (remaining is not None and remaining <= 0) or not wait_readable(
            self._channel.wait_fds(), remaining
        ):
            raise TimeoutError(f"worker pid {self.pid} still running after {timeout} s")
    self._channel.discard_messages()
    if isinstance(end, WorkerDied) and end.returncode is not None:
        self.returncode = end.returncode
        return end.returncode
    raise end if isinstance(end, (RemoteError, ProtocolError)) else self._lost()
