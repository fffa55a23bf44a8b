"""Work functions for the extension tests: a registry, and a plain echo (imported by the tests)."""

from __future__ import annotations

import os
import time
from typing import Any

from miniray import Channel, Registry

registry = Registry()


@registry.register
def add(a: Any, b: Any = 0) -> Any:
    return a + b


@registry.register
def echo(value: Any) -> Any:
    return value


@registry.register
def fail(message: str) -> None:
    raise KeyError(message)


@registry.register
def die(code: int) -> None:
    os._exit(code)  # the worker ends without a word, mid-call


@registry.register
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@registry.register
def unsendable() -> object:
    return object()


@registry.register
def pid() -> int:
    return os.getpid()


registry.register_path("math:sqrt")


def echo_fn(handle: Channel) -> None:
    """Send back every message, as it came (buffers and all)."""
    while True:
        handle.send(handle.recv())


def echo_views(handle: Channel) -> None:
    """Like echo_fn, but the worker takes zero-copy views of what it receives."""
    handle.codec.copy = False
    while True:
        handle.send(handle.recv())
