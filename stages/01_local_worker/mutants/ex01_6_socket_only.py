"""Only waits on the descriptors: a message already in a worker's buffer is not seen, since
its socket has nothing more to read."""


def wait_any(workers: Iterable[AnyWorker], timeout: float | None = None) -> list[AnyWorker]:
    workers = list(workers)
    fds = {fd: w for w in workers for fd in w.wait_fds()}
    ready = wait_readable(list(fds), check_timeout(timeout))
    if not ready:
        raise TimeoutError(f"no worker had a message within {timeout} s")
    return [w for w in workers if any(fds[fd] is w for fd in ready)]
