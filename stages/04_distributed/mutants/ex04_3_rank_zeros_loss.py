"""Reports rank 0's loss as the step's loss: the loss on one shard, not on the whole batch."""


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
    return {"loss": float(metrics[0]["loss"])}
