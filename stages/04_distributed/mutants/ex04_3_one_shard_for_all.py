"""Sends every rank the first shard: the ranks all compute on the same data, and the rest
of the batch is never seen."""


def train_step(
    workers: Sequence[SendingWorker],
    shards: Sequence[dict[str, Any]],
    *,
    timeout: float | None = None,
) -> dict[str, float]:
    for worker in workers:
        worker.send({"cmd": "forward_backward", "batch": shards[0]})
    metrics = gather(workers, timeout)
    for worker in workers:
        worker.send({"cmd": "optim_step"})
    gather(workers, timeout)
    return {"loss": sum(m["loss"] for m in metrics) / len(metrics)}
