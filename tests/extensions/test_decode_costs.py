"""Messages made to cost: decoding one costs about what its bytes do, and imports nothing.

From probes of the final package: keys that all share one hash (quadratic to build a set of),
back-references that name one container many times (exponential to walk), skeletons nested
past the recursion limit, and placeholders that made the receiver import torch.
"""

from __future__ import annotations

import json
import marshal
import socket
import struct
import subprocess
import sys
import time
from typing import Any

import ext_workfns
import pytest

pytestmark = [pytest.mark.needs("marshal"), pytest.mark.needs("buffers")]

P = 2**61 - 1  # CPython hashes an int n as n mod P, with no secret: n, n + P, n + 2P... collide
TOO_DEEP = 600  # lists inside lists: deeper than the codecs' MAX_DEPTH (500)
DEEP_ENOUGH = 450  # not deeper: a message this deep is delivered


def _i32(n: int) -> bytes:
    return n.to_bytes(4, "little", signed=True)


def _items(values: list[Any]) -> bytes:
    return b"".join(marshal.dumps(v, 2) for v in values)  # version 2: no back-references


def _flood(shape: str, keys: list[Any]) -> bytes:
    """A marshalled set, frozenset or dict of ``keys``, written item by item (building the
    real thing to dump it would take as long as the decoding under test)."""
    if shape == "dict":
        return b"{" + b"".join(marshal.dumps(k, 2) + b"N" for k in keys) + b"0"
    return (b">" if shape == "frozenset" else b"<") + _i32(len(keys)) + _items(keys)


FLOODS = {  # about 640 kB each; each key shares its hash with every other
    "set of big ints": ("set", [P * (k + 1) for k in range(43_000)]),
    "frozenset of big ints": ("frozenset", [P * (k + 1) for k in range(43_000)]),
    "dict keyed by big ints": ("dict", [P * (k + 1) for k in range(40_000)]),
    "set of tuples": ("set", [("k", P * (k + 1)) for k in range(28_000)]),
}


@pytest.mark.parametrize("name", sorted(FLOODS))
def test_keys_that_share_one_hash_are_refused_in_linear_time(name: str) -> None:
    """Finding 4: a 647 kB set of ints sharing one hash kept recv busy for 9-14 s (the
    comparisons grow with the square of the keys: minutes for a 4 MiB frame)."""
    import miniray
    from miniray.codec import MARSHAL

    payload = _flood(*FLOODS[name])
    started = time.process_time()  # this process's CPU: what other processes do cannot add
    with pytest.raises(miniray.ProtocolError, match="share hashes"):
        MARSHAL.decode(payload)
    assert time.process_time() - started < 1.0, len(payload)


LEGIT_HASHED = {
    "100k small ints": set(range(100_000)),
    "100k big ints": {2**40 + 7 * k for k in range(100_000)},
    "floats": {k / 3 for k in range(20_000)},
    "tuple keys": {(i, j): i * j for i in range(100) for j in range(100)},
    "frozensets in a set": {frozenset({k, 2**70 + k}) for k in range(2_000)},
    "nested": {"ids": {2**62 + k for k in range(10)}, "m": [{(1, 2.5): frozenset({3.5})}]},
    "a few shared hashes": {1, P + 1, 2 * P + 1, 2.0, P + 2, (1, 2), (1, P + 2)},
}


@pytest.mark.parametrize("name", sorted(LEGIT_HASHED))
def test_sets_and_dicts_of_distinct_keys_still_arrive_whole(name: str) -> None:
    from miniray.codec import MARSHAL

    value = LEGIT_HASHED[name]
    got = MARSHAL.decode(marshal.dumps(value, 4))
    assert got == value and type(got) is type(value)
    if name == "nested":
        assert type(got["m"][0]) is dict and type(got["m"][0][(1, 2.5)]) is frozenset


def test_hashed_containers_arrive_whole_over_a_marshal_worker(ext_connect: Any) -> None:
    worker = ext_connect(ext_workfns.echo_fn, codec="marshal")
    value = {"ids": {2**40 + k for k in range(5_000)}, "grid": {(i, 0.5): i for i in range(99)}}
    worker.send(value)
    assert worker.recv(timeout=10) == value


def _shared_levels(bottom: Any, levels: int) -> Any:
    """``[x, x]``, ``levels`` times over: 2**levels copies of ``bottom`` when walked as a tree,
    a few bytes per level once marshalled (each level refers back to the one below)."""
    value = bottom
    for _ in range(levels):
        value = [value, value]
    return value


def test_back_references_cannot_make_a_small_skeleton_huge() -> None:
    """Finding 5: a 322-byte skeleton took 1.6-3.3 s to restore, and 4.5 kB ran out of memory."""
    import miniray
    from miniray.codec import MARSHAL
    from miniray.message_codec import MessageCodec

    skeleton = marshal.dumps(_shared_levels({"__buffer__": 0, "type": "bytes"}, 22), 4)
    assert len(skeleton) < 400
    started = time.perf_counter()
    with pytest.raises(miniray.ProtocolError, match="weighs"):
        MessageCodec(MARSHAL).decode(ext_workfns.buffer_message(skeleton, b"x"))
    assert time.perf_counter() - started < 0.5
    with pytest.raises(miniray.ProtocolError, match="weighs"):  # a message without buffers
        MARSHAL.decode(marshal.dumps(_shared_levels(1, 60), 4))


def test_shared_parts_of_a_reasonable_size_still_arrive_and_stay_shared() -> None:
    from miniray.codec import MARSHAL
    from miniray.message_codec import MessageCodec

    row = [0.5] * 100
    assert MARSHAL.decode(marshal.dumps([row] * 100, 4)) == [row] * 100
    skeleton = marshal.dumps(_shared_levels({"__buffer__": 0, "type": "bytes"}, 10), 4)
    got = MessageCodec(MARSHAL).decode(ext_workfns.buffer_message(skeleton, b"x"))
    assert got == _shared_levels(b"x", 10)
    assert got[0] is got[1]  # restored once, where marshal shared it


def _nested(depth: int, bottom: Any) -> Any:
    for _ in range(depth):
        bottom = [bottom]
    return bottom


@pytest.mark.parametrize("codec", ["json", "marshal"])
def test_a_deep_skeleton_is_delivered_or_a_protocol_error_never_a_recursion_error(
    codec: str,
) -> None:
    """Finding 13: a JSON skeleton ~500 lists deep made recv raise RecursionError."""
    from adapters import frame

    import miniray
    from miniray.codec import get_codec
    from miniray.message_codec import MessageCodec

    encode = get_codec(codec).encode
    placeholder = {"__buffer__": 0, "type": "bytes"}
    ours, theirs = socket.socketpair()
    channel = miniray.Channel(ours, codec=MessageCodec(get_codec(codec)))
    for depth in (DEEP_ENOUGH, TOO_DEEP):
        skeleton = encode(_nested(depth, placeholder))
        theirs.sendall(frame(ext_workfns.buffer_message(skeleton, b"x")))
    theirs.sendall(frame(encode("next")))
    assert channel.recv(timeout=5) == _nested(DEEP_ENOUGH, b"x")
    with pytest.raises(miniray.ProtocolError, match="nested deeper than 500"):
        channel.recv(timeout=5)
    assert channel.recv(timeout=5) == "next"  # the frame was whole: the stream goes on
    channel.close()
    theirs.close()


@pytest.mark.parametrize("codec", ["json", "marshal"])
def test_both_codecs_refuse_the_same_depth(codec: str) -> None:
    import miniray
    from miniray.codec import get_codec

    chosen = get_codec(codec)
    assert chosen.decode(chosen.encode(_nested(500, 1))) == _nested(500, 1)  # 500 lists
    with pytest.raises(miniray.ProtocolError, match="nested deeper than 500"):
        chosen.decode(chosen.encode(_nested(501, 1)))
    deep_dicts = b'{"a":' * TOO_DEEP + b"1" + b"}" * TOO_DEEP
    with pytest.raises(miniray.ProtocolError, match="nested deeper than 500"):
        get_codec("json").decode(deep_dicts)


def test_a_reply_too_deep_fails_the_calls_with_a_protocol_error_and_the_worker_lives(
    ext_connect: Any,
) -> None:
    """Finding 13: the calls' futures failed with a RecursionError behind them."""
    import miniray

    worker = ext_connect(ext_workfns.deep_reply)
    error = worker.submit("anything").exception(timeout=10)
    assert isinstance(error, miniray.WorkerDied)
    assert isinstance(error.__cause__, miniray.ProtocolError), repr(error.__cause__)
    assert "nested deeper" in str(error) and "ended" not in str(error)
    assert worker.is_alive()  # it broke the protocol; it did not die


_RECEIVE = """
import sys
for name in sys.argv[1].split(","):
    if name:
        __import__(name)
before = set(sys.modules)
import miniray
from miniray.message_codec import MessageCodec
for payload in sys.argv[2:]:
    try:
        MessageCodec().decode(bytes.fromhex(payload))
        print("delivered", end="; ")
    except miniray.ProtocolError as e:
        print("refused:", e, end="; ")
    print("imported:", sorted(m for m in set(sys.modules) - before if m.split(".")[0] in
          ("numpy", "torch")))
"""


def _receive(imported: str, *placeholders: dict[str, Any]) -> list[str]:
    """What a fresh process that imported ``imported`` (comma-separated) makes of messages with
    one buffer each, one line per message."""
    payloads = [
        ext_workfns.buffer_message(json.dumps(placeholder).encode(), bytes(8)).hex()
        for placeholder in placeholders
    ]
    result = subprocess.run(
        [sys.executable, "-c", _RECEIVE, imported, *payloads],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize(
    "placeholder",
    [
        {"__buffer__": 0, "type": "tensor", "dtype": "float32", "shape": [2]},
        {"__buffer__": 0, "type": "ndarray", "dtype": "<f4", "shape": [2]},
    ],
    ids=["tensor", "ndarray"],
)
def test_a_placeholder_imports_nothing_the_receiver_did_not(placeholder: dict[str, Any]) -> None:
    """Finding 14: 92 bytes made the receiver import torch (1 s, +201 MiB)."""
    (said,) = _receive("", placeholder)
    module = "torch" if placeholder["type"] == "tensor" else "numpy"
    assert f"refused: the peer sent a {module} value" in said and f"import {module}" in said
    assert said.endswith("imported: []"), said


def test_a_tensor_dtype_is_checked_against_a_list_before_torch_is_asked() -> None:
    """Finding 14: the dtype "_dynamo" made torch import torch._dynamo (+71 MiB)."""
    pytest.importorskip("torch", reason="torch is optional; the tensor path needs it")
    placeholder = {"__buffer__": 0, "type": "tensor", "dtype": "_dynamo", "shape": [8]}
    refused, delivered = _receive(
        "torch", placeholder, placeholder | {"dtype": "float32", "shape": [2]}
    )
    assert refused.startswith("refused: cannot rebuild a tensor") and "'_dynamo'" in refused
    assert refused.endswith("imported: []"), refused
    assert delivered.startswith("delivered"), delivered  # a dtype on the list: a tensor


def test_an_unusual_numpy_dtype_string_is_refused() -> None:
    numpy = pytest.importorskip("numpy", reason="numpy is optional; the array path needs it")
    import miniray
    from miniray.message_codec import MessageCodec

    assert numpy is not None
    for dtype in ("i4,f4", "O", "(2,)i4", [("a", "<i4")], "<M8[ns]x"):
        skeleton = json.dumps({"__buffer__": 0, "type": "ndarray", "dtype": dtype, "shape": [1]})
        payload = ext_workfns.buffer_message(skeleton.encode(), bytes(8))
        with pytest.raises(miniray.ProtocolError, match="dtype"):
            MessageCodec().decode(payload)


def test_buffer_message_helper_matches_the_library() -> None:
    """The tests build buffer messages by hand: the layout is the library's."""
    from miniray.message_codec import MessageCodec

    parts = MessageCodec().encode({"b": b"xy"})
    assert isinstance(parts, list)
    skeleton_size = struct.unpack_from("!I", parts[0], 14)[0]
    skeleton = bytes(parts[0][-skeleton_size:])
    assert ext_workfns.buffer_message(skeleton, b"xy") == b"".join(map(bytes, parts))
