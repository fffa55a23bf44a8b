"""The wire format, tested on a bare Channel with a raw socket at the other end.

Runs against every stage: the framing never changes, only what rides on it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

import adapters
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testutil import recv_exactly

from miniray import ChannelClosed, ProtocolError, RemoteError, Unsendable

pytestmark = pytest.mark.needs("local")
# A reader that never cuts a frame off its buffer takes the same frame forever, in a loop
# that never looks at the clock: only pytest-timeout ends it. These tests take milliseconds.
QUICK = pytest.mark.timeout(3)


@pytest.mark.ex01_1
@QUICK
def test_a_frame_split_across_writes_is_reassembled() -> None:
    channel, peer = adapters.channel_pair()
    data = adapters.frame(json.dumps({"x": [1, 2, 3]}).encode())
    peer.sendall(data[:3])
    with pytest.raises(TimeoutError):
        channel.recv(timeout=0.05)
    peer.sendall(data[3:11])
    with pytest.raises(TimeoutError):
        channel.recv(timeout=0.05)
    peer.sendall(data[11:])
    assert channel.recv(timeout=1) == {"x": [1, 2, 3]}


@pytest.mark.ex01_1
@QUICK
def test_two_frames_in_one_write_are_two_messages() -> None:
    channel, peer = adapters.channel_pair()
    peer.sendall(adapters.frame(b'"a"') + adapters.frame(b'"b"'))
    assert channel.recv(timeout=1) == "a"
    assert channel.recv(timeout=1) == "b"


@pytest.mark.ex01_1
@pytest.mark.parametrize("length", [2**63, 2**64 - 1, (1 << 20) + 1])
def test_an_oversize_length_is_a_protocol_error_not_an_allocation(length: int) -> None:
    channel, peer = adapters.channel_pair(max_frame=1 << 20)
    peer.sendall(adapters.frame(b"", length=length) + b'"')  # (no buffer message: see stage 5)
    with pytest.raises(ProtocolError, match="max_frame"):
        channel.recv(timeout=1)
    with pytest.raises(ProtocolError):  # the stream cannot be trusted again: stay broken
        channel.recv(timeout=1)


def test_garbled_json_is_a_protocol_error_and_the_next_frame_still_arrives() -> None:
    channel, peer = adapters.channel_pair()
    peer.sendall(adapters.frame(b"\xff{not json") + adapters.frame(b"42"))
    with pytest.raises(ProtocolError, match="garbled"):
        channel.recv(timeout=1)
    assert channel.recv(timeout=1) == 42


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_a_message_goes_out_as_compact_json_and_comes_back_equal(value: Any) -> None:
    """The channel's encoder is made once, from json's parts: byte for byte what json.dumps
    writes, and json.dumps's own output (spaces, an indent, a newline around) reads back."""
    channel, peer = adapters.channel_pair()
    channel.send(value)
    compact = json.dumps(value, separators=(",", ":")).encode()
    assert recv_exactly(peer, len(adapters.frame(compact))) == adapters.frame(compact)
    spaced = json.dumps(value, indent=1).encode()
    peer.sendall(adapters.frame(b" \n" + spaced + b"\r\n\t"))
    assert channel.recv(timeout=1) == value
    peer.sendall(adapters.frame(compact + b" 0"))
    with pytest.raises(ProtocolError, match="extra data"):
        channel.recv(timeout=1)


def test_the_encoder_is_the_same_without_json_s_c_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where json has no C encoder (another Python), the pure-Python one writes the same."""
    import json.encoder

    from miniray.wire import compact_json_encoder

    value = {"a": [1, 2.5, None, True, "\u00e9\n"], "b": {"c": -0.0}, "": "x"}
    with_c = compact_json_encoder()(value)
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    assert compact_json_encoder()(value) == with_c == json.dumps(value, separators=(",", ":"))


def test_eof_mid_frame_is_a_protocol_error_and_clean_eof_is_channel_closed() -> None:
    channel, peer = adapters.channel_pair()
    peer.sendall(adapters.frame(b'"whole"') + adapters.frame(b'"cut"')[:-2])
    peer.close()
    assert channel.recv(timeout=1) == "whole"
    with pytest.raises(ProtocolError, match="mid-frame"):
        channel.recv(timeout=1)
    clean, peer2 = adapters.channel_pair()
    peer2.close()
    with pytest.raises(ChannelClosed):
        clean.recv(timeout=1)


@pytest.mark.ex01_2
def test_recv_timeout_sees_a_message_that_is_already_buffered() -> None:
    channel, peer = adapters.channel_pair()
    peer.sendall(adapters.frame(b"1") + adapters.frame(b"2"))
    assert channel.recv(timeout=1) == 1  # the read pulled both frames into the buffer
    started = time.monotonic()
    assert channel.recv(timeout=5) == 2  # so the socket is empty, but 2 is here already
    assert time.monotonic() - started < 1


@pytest.mark.ex01_2
def test_a_timeout_loses_nothing_and_the_channel_stays_usable() -> None:
    channel, peer = adapters.channel_pair()
    with pytest.raises(TimeoutError):
        channel.recv(timeout=0.05)
    data = adapters.frame(b'"late"')
    peer.sendall(data[:5])
    with pytest.raises(TimeoutError):
        channel.recv(timeout=0.05)
    threading.Timer(0.1, peer.sendall, [data[5:]]).start()
    assert channel.recv(timeout=5) == "late"


@pytest.mark.ex01_2
def test_recv_with_zero_timeout_returns_what_is_there() -> None:
    channel, peer = adapters.channel_pair()
    peer.sendall(adapters.frame(b"7"))
    time.sleep(0.05)
    assert channel.recv(timeout=0) == 7
    with pytest.raises(TimeoutError):
        channel.recv(timeout=0)


def test_send_rejects_oversize_and_unserializable_messages_without_sending() -> None:
    channel, peer = adapters.channel_pair(max_frame=100)
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(Unsendable, match="not sent"):
        channel.send("x" * 200)
    for unsendable in ({"a": object()}, deep, looped):
        with pytest.raises(Unsendable):  # one error for all: the registry's serve catches it
            channel.send(unsendable)
    with pytest.raises(TypeError, match="JSON"):  # what it was before, and json.dumps raises
        channel.send({"a": object()})
    channel.send("ok")
    assert peer.recv(100) == adapters.frame(b'"ok"')


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_hostile_bytes_never_hang_or_crash_the_reader(chunks: list[bytes]) -> None:
    channel, peer = adapters.channel_pair(max_frame=1 << 16)
    peer.sendall(b"".join(chunks))
    peer.close()
    for _ in range(len(b"".join(chunks)) + 2):  # each frame is at least one byte
        try:
            channel.recv(timeout=1)
        except (ProtocolError, ChannelClosed, RemoteError):
            return
        except TimeoutError:
            pytest.fail("a closed peer must end the stream, not time out")
    pytest.fail("the reader never reached the end of the stream")


def test_a_send_with_zero_timeout_that_stops_mid_frame_breaks_the_channel() -> None:
    channel, _peer = adapters.channel_pair(max_frame=1 << 24)  # _peer never reads
    big = "z" * (4 << 20)  # far more than a socketpair buffers: the send stops part-way
    with pytest.raises(TimeoutError):
        channel.send(big, timeout=0)
    with pytest.raises(ProtocolError, match="mid-frame"):  # the next frame would land inside
        channel.send("next")


@pytest.mark.parametrize(
    "report",
    [
        b'{"type":"X","message":"m","traceback":"t","pid":Infinity,"host":"h"}',
        b'{"type":"X","message":"m","traceback":"t","pid":NaN,"host":"h"}',
        b'{"type":"X","message":"m","traceback":"t","pid":1.5,"host":"h"}',
        b'{"type":"X","message":"m","traceback":"t","pid":"12","host":"h"}',
        b'{"type":["X"],"message":"m","traceback":"t","pid":1,"host":"h"}',
        b'{"type":"X","message":"m","pid":1,"host":"h"}',
        b'["X","m","t",1,"h"]',
    ],
)
def test_a_malformed_error_report_is_a_protocol_error_every_time(report: bytes) -> None:
    channel, peer = adapters.channel_pair()
    peer.sendall(adapters.frame(report, kind=1))
    for _ in range(2):
        with pytest.raises(ProtocolError, match="malformed"):
            channel.recv(timeout=1)
    assert isinstance(channel.final_error(), ProtocolError)


@pytest.mark.parametrize(
    "report", [b'{"code":Infinity}', b'{"code":true}', b'{"code":1,"message":5}', b"[0]"]
)
def test_a_malformed_exit_report_is_a_protocol_error(report: bytes) -> None:
    channel, peer = adapters.channel_pair()
    peer.sendall(adapters.frame(report, kind=2))
    with pytest.raises(ProtocolError, match="malformed"):
        channel.recv(timeout=1)


@pytest.mark.parametrize("kind", [1, 2])
def test_a_worker_handle_refuses_report_frames(kind: int) -> None:
    import socket

    from miniray import Channel

    ours, peer = socket.socketpair()
    handle = Channel(ours, from_worker=False)
    peer.sendall(adapters.frame(b'"before"') + adapters.frame(b'{"code":0}', kind=kind))
    assert handle.recv(timeout=1) == "before"
    for _ in range(2):
        with pytest.raises(ProtocolError, match="never sent to one"):
            handle.recv(timeout=1)


@pytest.mark.parametrize("forever", [math.inf, 1e10, None])
def test_channel_timeouts_beyond_reach_mean_no_limit(forever: float | None) -> None:
    channel, peer = adapters.channel_pair()
    peer.sendall(adapters.frame(b"1"))
    assert channel.recv(timeout=forever) == 1
    channel.send(2, timeout=forever)
    assert peer.recv(100) == adapters.frame(b"2")


@pytest.mark.parametrize("bad", [math.nan, -0.5, -math.inf, "1"])
def test_channel_refuses_a_nan_negative_or_non_number_timeout(bad: Any) -> None:
    channel, peer = adapters.channel_pair()
    peer.sendall(adapters.frame(b"1"))
    with pytest.raises((ValueError, TypeError), match="timeout"):
        channel.recv(timeout=bad)
    with pytest.raises((ValueError, TypeError), match="timeout"):
        channel.send("x", timeout=bad)
    assert channel.recv(timeout=1) == 1  # nothing was lost or sent
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)
