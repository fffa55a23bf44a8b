"""Never raises BacklogFull: once the backlog is full nothing more is read, and the call
waits out its timeout on a socket that stays readable (and says TimeoutError)."""


def wait(self, timeout: float | None = None) -> int:
    deadline = deadline_after(check_timeout(timeout))
    while (end := self._end(deadline)) is None:
        remaining = None if deadline is None else deadline - time.monotonic()
        if (remaining is not None and remaining <= 0) or not wait_readable(
            self._channel.wait_fds(), remaining
        ):
            raise TimeoutError(f"worker pid {self.pid} still running after {timeout} s")
    if isinstance(end, WorkerDied) and end.returncode is not None:
        self.returncode = end.returncode
        return end.returncode
    raise end if isinstance(end, (RemoteError, ProtocolError)) else self._lost()
