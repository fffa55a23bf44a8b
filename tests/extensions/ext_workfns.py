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

BIG = 256 * 1024  # above the size from which a local Worker uses its shared region


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


def sized(n: int) -> str:
    return "x" * n


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def pid() -> int:
    return os.getpid()


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no words for it")


def unprintable_error() -> None:
    raise _Unprintable()


registry = miniray.Registry() if hasattr(miniray, "Registry") else None  # stage 5 on
if registry is not None:
    for function in (add, echo, fail, die, nap, unsendable, sized, nested, pid, unprintable_error):
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
    while True:
        handle.send(handle.recv(copy=False))


def rogue_region(handle: Channel) -> None:
    """A child that breaks the shared region's rules on request (white-box, on purpose).

    Commands: ``{"cmd": "send", "fill": n, "ignore_released": bool}`` sends a region message
    of ``BIG`` bytes, with or without waiting for the parent to release the last one;
    ``{"cmd": "poke", "byte": n}`` writes the region's first data byte directly (the child's
    own code holds the memfd); ``{"cmd": "announce", "size": n}`` makes the region file that
    big and announces that many bytes of buffers, more than the parent's limit. Anything else
    is echoed.
    """
    from miniray.region import HEADER_SIZE
    from miniray.wire import MESSAGE

    region = handle.codec._outgoing
    while True:
        msg = handle.recv()
        if not isinstance(msg, dict) or "cmd" not in msg:
            handle.send(msg)
        elif msg["cmd"] == "send":
            if msg.get("ignore_released"):  # claim the region even while the parent holds views
                region.is_free = lambda: True
            handle.send({"data": bytes([msg["fill"]]) * BIG})
            region.__dict__.pop("is_free", None)
        elif msg["cmd"] == "poke":
            os.pwrite(region.fd, bytes([msg["byte"]]), HEADER_SIZE)
            handle.send("poked")
        elif msg["cmd"] == "announce":
            os.ftruncate(region.fd, HEADER_SIZE + msg["size"])  # sparse: costs the child nothing
            skeleton = b'{"__buffer__":0,"type":"bytes"}'
            head = struct.pack("!BBIQI", 0, 1, 1, region.sent + 1, len(skeleton))
            handle.send_frame(MESSAGE, head + struct.pack("!Q", msg["size"]) + skeleton)


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
    """A buffer message's payload (see miniray/message_codec.py) with one buffer, inline."""
    head = struct.pack("!BBIQI", 0, 0, 1, 0, len(skeleton)) + struct.pack("!Q", len(data))
    return head + skeleton + data
