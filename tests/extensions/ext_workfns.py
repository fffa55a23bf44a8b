"""Work functions for the extension tests: a registry, and a plain echo (imported by the tests).

The test modules import this at collection time for every stage, so the registry is only
made where the stage under test has one.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
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


def echo_fn(handle: Channel) -> None:
    """Send back every message, as it came (buffers and all)."""
    while True:
        handle.send(handle.recv())


def echo_views(handle: Channel) -> None:
    """Like echo_fn, but the worker takes zero-copy views of what it receives."""
    handle.codec.copy = False
    while True:
        handle.send(handle.recv())


def echo_arrays(handle: Channel) -> None:
    """echo_fn in a program that uses numpy: a process receives arrays only if it has
    imported their module itself (a peer's placeholder never imports one)."""
    import numpy  # noqa: F401

    echo_fn(handle)


def echo_tensors(handle: Channel) -> None:
    """echo_fn in a program that uses torch (see echo_arrays)."""
    import torch  # noqa: F401

    echo_fn(handle)


def deep_reply(handle: Channel) -> None:
    """Answer the first call with a reply whose skeleton nests 600 lists deep, then live on
    until the client hangs up: a worker that breaks the protocol but does not die."""
    request = handle.recv()
    value: Any = {"__buffer__": 0, "type": "bytes"}
    for _ in range(600):
        value = [value]
    skeleton = json.dumps({"reply": request["call"], "value": value}).encode()
    handle.send_frame(0, buffer_message(skeleton, b"x"))  # a MESSAGE frame, built by hand
    with contextlib.suppress(miniray.ChannelClosed):
        while True:
            handle.recv()


def buffer_message(skeleton: bytes, data: bytes) -> bytes:
    """A buffer message's payload (see miniray/buffers.py) with one buffer, inline."""
    head = struct.pack("!BBIQI", 0, 0, 1, 0, len(skeleton)) + struct.pack("!Q", len(data))
    return head + skeleton + data
