"""The work function of the seed's quick start: ``--work-fn my_module.work_fn``."""

from typing import Any


def work_fn(handle: Any) -> None:
    """Answer ``{"cmd": "echo", "data": x}`` with ``{"echo": x}``; fail on anything else."""
    while True:
        msg = handle.recv()
        if msg["cmd"] != "echo":
            raise ValueError(f"unknown command {msg['cmd']!r}")
        handle.send({"echo": msg["data"]})
