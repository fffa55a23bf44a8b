"""Counts the shards only as it sends them (``zip(strict=True)``): with one shard too few,
the first ranks get their forward_backward before the ValueError, and stay a command ahead
of the others; a bad timeout, too, is found only after every rank was sent its shard."""


def train_step(
    workers: Sequence[SendingWorker],
    shards: Sequence[dict[str, Any]],
    *,
    timeout: float | None = None,
) -> dict[str, float]:
    for worker, shard in zip(workers, shards, strict=True):
        worker.send({"cmd": "forward_backward", "batch": shard})
    metrics = gather(workers, timeout)
    for worker in workers:
        worker.send({"cmd": "optim_step"})
    gather(workers, timeout)
    return {"loss": sum(m["loss"] for m in metrics) / len(metrics)}
