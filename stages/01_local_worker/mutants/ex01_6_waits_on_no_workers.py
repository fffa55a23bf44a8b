"""Waits on an empty list like any other: with no timeout it never returns, and with one
it says a worker was late where there was none to wait for."""


def wait_any(workers: Iterable[AnyWorker], timeout: float | None = None) -> list[AnyWorker]:
    workers = list(workers)
    deadline = deadline_after(check_timeout(timeout))
    while True:
        ready = [w for w in workers if w.poll()]
        if ready:
            return ready
        fds = [fd for w in workers for fd in w.wait_fds()]
        if not wait_readable(fds, seconds_left(deadline)):
            raise TimeoutError(f"no worker had a message within {timeout} s")
