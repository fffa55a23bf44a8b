"""Work functions for the extension tests: a registry, and a plain echo (imported by the tests).

The test modules import this at collection time for every stage, so the registry is only
made where the stage under test has one.
"""

from __future__ import annotations

import os
import time
from typing import Any

import miniray
from miniray import Channel


def add(a: Any, b: Any = 0) -> Any:
    return a + b


def echo(value: Any) -> Any:
    return value


def fail(message: str) -> None:
    raise KeyError(message)


def die(code: int) -> None:
    os._exit(code)  # the worker ends without a word, mid-call


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def unsendable() -> object:
    return object()


def pid() -> int:
    return os.getpid()


registry = miniray.Registry() if hasattr(miniray, "Registry") else None  # stage 5 on
if registry is not None:
    for function in (add, echo, fail, die, nap, unsendable, pid):
        registry.register(function)
    registry.register_path("math:sqrt")


def stray_reply(handle: Channel) -> None:
    """A worker that breaks the call protocol: it answers the first call with a reply to a
    call that was never made, then waits for the end."""
    request = handle.recv()
    handle.send({"reply": request["call"] + 1000, "value": "not yours"})
    handle.recv()


def echo_fn(handle: Channel) -> None:
    """Send back every message, as it came (buffers and all)."""
    while True:
        handle.send(handle.recv())


def echo_views(handle: Channel) -> None:
    """Like echo_fn, but the worker takes zero-copy views of what it receives."""
    handle.codec.copy = False
    while True:
        handle.send(handle.recv())
