# @4+
"""The training protocol: what the coordinator sends each rank, and how a rank answers.

    coordinator                                   each rank (serve_training)
    -----------                                   --------------------------
                                          <-      {"status": "ready"}
    {"cmd": "forward_backward",           ->      backend.forward_backward(batch)
     "batch": this rank's shard}          <-      {"loss": ..., "tokens": ...}
    {"cmd": "optim_step"}                 ->      backend.optim_step()
                                          <-      {"step": n}
    {"cmd": "save"} / {"cmd": "load", "step": n} / {"cmd": "parameters"}
    {"cmd": "shutdown"}                   ->      {"status": "bye"}, and return

Every rank gets its own shard of the batch: sending every rank the same batch, as the
original design did, makes N ranks compute one gradient N times. Replies are gathered
with `distributed.gather`, so a rank that dies is reported at once, by rank, instead
of the coordinator waiting forever on a peer stuck in a collective.

No torch here: the backend is anything with these methods (``miniray.fsdp`` has one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .distributed import RankedWorker, gather
from .errors import ProtocolError
from .timeouts import check_timeout

if TYPE_CHECKING:
    from .channel import Channel


class TrainingBackend(Protocol):
    """What `serve_training` drives (``miniray.fsdp.FSDPTrainingBackend`` is one)."""

    def forward_backward(self, batch: dict[str, Any]) -> dict[str, Any]: ...
    def optim_step(self) -> dict[str, Any]: ...
    def save(self) -> dict[str, Any]: ...
    def load(self, step: int) -> dict[str, Any]: ...
    def parameters(self) -> dict[str, list[float]]: ...


class SendingWorker(RankedWorker, Protocol):
    """A worker `train_step` can send to and gather from (`ClusterWorker` is one)."""

    def send(self, msg: Any, timeout: float | None = None) -> None: ...


def serve_training(handle: Channel, backend: TrainingBackend) -> None:
    """In a rank: say ready, then answer the coordinator's commands until ``shutdown``."""
    handle.send({"status": "ready"})
    while True:
        msg = handle.recv()
        cmd = msg.get("cmd") if isinstance(msg, dict) else None
        if cmd == "forward_backward":
            handle.send(backend.forward_backward(msg["batch"]))
        elif cmd == "optim_step":
            handle.send(backend.optim_step())
        elif cmd == "save":
            handle.send(backend.save())
        elif cmd == "load":
            handle.send(backend.load(int(msg["step"])))
        elif cmd == "parameters":
            handle.send(backend.parameters())
        elif cmd == "shutdown":
            handle.send({"status": "bye"})
            return
        else:
            raise ProtocolError(f"unknown training command: {msg!r:.100}")


# --8<-- [start:train_step]
def train_step(
    workers: Sequence[SendingWorker],
    shards: Sequence[dict[str, Any]],
    *,
    timeout: float | None = None,
) -> dict[str, float]:
    """One optimizer step: forward/backward on every rank's shard, then optim_step.

    Args:
        workers: The ranks, in rank order.
        shards: ``shards[r]`` is rank ``r``'s part of the batch (all the same size).
        timeout: Seconds for each of the two phases.

    Returns:
        ``{"loss": the mean of the ranks' losses}``: the loss on the whole batch.

    Raises:
        WorkerDied: A rank died (as in `gather`, which names it).
        RemoteError: A rank's step raised.
        TimeoutError: Not every rank answered a phase within ``timeout`` seconds.
        ValueError, TypeError: Not one shard per rank, or a timeout ``recv`` refuses;
            nothing was sent.
    """
    # Before any rank hears a word: a step sent to some ranks only would leave them a
    # command ahead of the others, and the next step's replies would be this one's.
    check_timeout(timeout)
    if len(shards) != len(workers):
        raise ValueError(f"{len(shards)} shards for {len(workers)} ranks")
    for worker, shard in zip(workers, shards, strict=True):
        worker.send({"cmd": "forward_backward", "batch": shard})
    metrics = gather(workers, timeout)
    for worker in workers:
        worker.send({"cmd": "optim_step"})
    gather(workers, timeout)
    return {"loss": sum(m["loss"] for m in metrics) / len(metrics)}


# --8<-- [end:train_step]


def command(
    workers: Sequence[SendingWorker], msg: dict[str, Any], *, timeout: float | None = None
) -> list[Any]:
    """Send every rank the same command; return the replies in rank order (a bad
    ``timeout`` is refused before any rank hears: see `train_step`)."""
    check_timeout(timeout)
    for worker in workers:
        worker.send(msg)
    return gather(workers, timeout)


def wait_ready(workers: Sequence[RankedWorker], *, timeout: float | None = None) -> None:
    """Wait for every rank's ``{"status": "ready"}``; `ProtocolError` for anything else."""
    for worker, reply in zip(workers, gather(workers, timeout), strict=True):
        if not (isinstance(reply, dict) and reply.get("status") == "ready"):
            raise ProtocolError(f"rank {worker.rank} sent {reply!r:.100}, not ready")
