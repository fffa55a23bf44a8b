"""Sends optim_step without gathering its replies: they are still unread when the next
step gathers, and are taken for that step's losses."""


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
    return {"loss": sum(m.get("loss", 0.0) for m in metrics) / len(metrics)}
