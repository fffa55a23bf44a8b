"""Sleep-polls every rank (recv with timeout 0, then sleep 20 ms) instead of sleeping on the
ranks' descriptors: it wakes fifty times a second for nothing, and answers late."""


def gather(workers: Sequence[RankedWorker], timeout: float | None = None) -> list[Any]:
    deadline = None if timeout is None else time.monotonic() + timeout
    replies: dict[int, Any] = {}
    failures: dict[int, MiniRayError] = {}
    settle_until: float | None = None
    while True:
        pending = [i for i in range(len(workers)) if i not in replies and i not in failures]
        for i in pending:
            try:
                replies[i] = workers[i].recv(timeout=0)
            except TimeoutError:
                continue
            except (WorkerDied, RemoteError) as e:
                failures[i] = e
                settle_until = settle_until or time.monotonic() + _SETTLE
        pending = [i for i in pending if i not in replies and i not in failures]
        now = time.monotonic()
        settled = settle_until is not None and now >= settle_until
        if not pending or settled or _any_died(failures):
            break
        if deadline is not None and now >= deadline:
            late = ", ".join(str(workers[i].rank) for i in pending)
            raise TimeoutError(f"ranks {late} did not answer within {timeout} s")
        time.sleep(0.02)
    if failures:
        raise _root_cause(workers, failures)
    return [replies[i] for i in range(len(workers))]
