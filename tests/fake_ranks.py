"""Work functions that play torch ranks without torch, for the stage 4 tests that test the
coordinator's side (gather, train_step, the preflight timeout) in a fraction of a second.
"""

from __future__ import annotations

import os
import time
from typing import Any

from miniray import Channel, NCCLConfig
from miniray.preflight import BACKEND_KEY, REPORT_KEY
from miniray.training import serve_training


class ArithmeticBackend:
    """A "model" whose loss is the mean of the batch: easy to check from outside."""

    def __init__(self) -> None:
        self.step = 0
        self.seen: list[str] = []

    def forward_backward(self, batch: dict[str, Any]) -> dict[str, Any]:
        self.seen.append("forward_backward")
        values = [v for row in batch["inputs"] for v in row]
        return {"loss": sum(values) / len(values), "rank": int(os.environ["RANK"])}

    def optim_step(self) -> dict[str, Any]:
        self.seen.append("optim_step")
        self.step += 1
        return {"step": self.step, "seen": self.seen}

    def save(self) -> dict[str, Any]:
        return {"saved": self.step}

    def load(self, step: int) -> dict[str, Any]:
        self.step = step
        return {"loaded": step}

    def parameters(self) -> dict[str, list[float]]:
        return {"step": [float(self.step)]}


def arithmetic_trainer(handle: Channel) -> None:
    """serve_training with the arithmetic backend."""
    serve_training(handle, ArithmeticBackend())


def echo_rank(handle: Channel) -> None:
    """Answer every message with this rank; rank 1 waits a moment first."""
    while True:
        msg = handle.recv()
        if os.environ["RANK"] == "1":
            time.sleep(0.2)
        handle.send({"rank": int(os.environ["RANK"]), "msg": msg})


def stuck_in_init(handle: Channel) -> None:
    """The rank half of the preflight, stuck where a real rank hangs: after "hello".

    Rank 0 (and only rank 0) gets through, so the error must name ranks 1.. as missing.
    """
    config = NCCLConfig(**handle.recv())
    handle.send({REPORT_KEY: "hello", "cuda_devices": 0})
    handle.recv()  # the backend
    if config.rank == 0:
        handle.send({REPORT_KEY: "joined"})
        handle.send({REPORT_KEY: "ok"})
    time.sleep(3600)  # like a C++ rendezvous that never completes: deaf to messages


def fake_preflight_ok(handle: Channel) -> None:
    """The rank half of the preflight, all phases, without torch; then echo the backend."""
    NCCLConfig(**handle.recv())
    handle.send({REPORT_KEY: "hello", "cuda_devices": 0})
    backend = handle.recv()[BACKEND_KEY]
    handle.send({REPORT_KEY: "joined"})
    handle.send({REPORT_KEY: "ok"})
    handle.send({"backend": backend})
    handle.recv()
