"""Receives from rank 0, then rank 1, and so on, as the original design did: when rank 2
dies, rank 0 (waiting in a collective for rank 2) never answers, and neither does the call."""


def gather(workers: Sequence[RankedWorker], timeout: float | None = None) -> list[Any]:
    deadline = None if timeout is None else time.monotonic() + timeout
    replies = []
    for worker in workers:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            replies.append(worker.recv(timeout=left))
        except TimeoutError:
            raise TimeoutError(f"rank {worker.rank} did not answer within {timeout} s") from None
        except (WorkerDied, RemoteError) as e:
            raise _root_cause(workers, {workers.index(worker): e}) from None
    return replies
