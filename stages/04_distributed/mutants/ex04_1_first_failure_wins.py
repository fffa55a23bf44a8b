"""Raises the first failure it sees: a peer's RemoteError ("connection closed") hides the
death that caused it a moment later."""


def gather(workers: Sequence[RankedWorker], timeout: float | None = None) -> list[Any]:
    deadline = None if timeout is None else time.monotonic() + timeout
    replies: dict[int, Any] = {}
    while True:
        pending = [i for i in range(len(workers)) if i not in replies]
        for i in pending:
            try:
                replies[i] = workers[i].recv(timeout=0)
            except TimeoutError:
                continue
            except (WorkerDied, RemoteError) as e:
                raise _root_cause(workers, {i: e}) from None
        pending = [i for i in pending if i not in replies]
        if not pending:
            return [replies[i] for i in range(len(workers))]
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            late = ", ".join(str(workers[i].rank) for i in pending)
            raise TimeoutError(f"ranks {late} did not answer within {timeout} s")
        fds = [fd for i in pending for fd in workers[i].wait_fds()]
        wait_readable(fds, None if deadline is None else deadline - now)
