"""Ignores ``timeout``: each phase waits for every rank as long as it takes."""


def train_step(
    workers: Sequence[SendingWorker],
    shards: Sequence[dict[str, Any]],
    *,
    timeout: float | None = None,
) -> dict[str, float]:
    for worker, shard in zip(workers, shards, strict=True):
        worker.send({"cmd": "forward_backward", "batch": shard})
    metrics = gather(workers)
    for worker in workers:
        worker.send({"cmd": "optim_step"})
    gather(workers)
    return {"loss": sum(m["loss"] for m in metrics) / len(metrics)}
