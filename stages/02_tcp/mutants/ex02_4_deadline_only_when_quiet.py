"""Looks at the deadline only when the socket has nothing to read: while the worker keeps
sending, the call never times out."""


def wait(self, timeout: float | None = None) -> int:
    deadline = deadline_after(check_timeout(timeout))
    while (end := self._end(deadline)) is None:
        if self._channel.backlog > self._max_backlog:
            raise BacklogFull(
                f"worker pid {self.pid} still running, with {self._channel.backlog} bytes "
                "of unread messages: recv() them, then wait() again",
                pid=self.pid,
                unread_bytes=self._channel.backlog,
            )
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not wait_readable(self._channel.wait_fds(), remaining):
            raise TimeoutError(f"worker pid {self.pid} still running after {timeout} s")
    if isinstance(end, WorkerDied) and end.returncode is not None:
        self.returncode = end.returncode
        return end.returncode
    raise end if isinstance(end, (RemoteError, ProtocolError)) else self._lost()
