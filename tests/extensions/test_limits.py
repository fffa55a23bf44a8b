"""The two limits of a message: ``max_frame`` for the encoded message, ``max_buffer_bytes``
for the raw buffers beside it. Each is refused before a byte is written when we send, and
before anything is allocated when a peer announces it; each error names the knob to turn.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

import ext_workfns
import pytest

pytestmark = pytest.mark.needs("buffers")

MiB = 1 << 20
_HEAD = struct.Struct("!BBIQI")  # a buffer message's head (see message_codec.py)


def _rss() -> int:
    """Bytes of this process resident in memory (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _sealed_pair(**options: Any) -> tuple[Any, socket.socket, int]:
    """A receiving Channel with a frame MAC (as after a handshake), the raw peer socket,
    and the MAC's size: the peer has authenticated, and may now announce what it likes."""
    from miniray import Channel
    from miniray.frame_mac import TAG_SIZE, Session
    from miniray.wire_options import WireOptions

    ours, theirs = socket.socketpair()
    session = Session(b"s" * 32, os.urandom(32), os.urandom(32))
    channel = Channel(ours, options=WireOptions(**options), frame_auth=session.worker_frames())
    return channel, theirs, TAG_SIZE


def _buffer_message_start(buffer_bytes: int, tag_size: int) -> bytes:
    """The first bytes of a frame that announces one buffer of ``buffer_bytes`` bytes."""
    from miniray.wire import HEADER, MESSAGE

    skeleton = b'{"__buffer__": 0, "type": "bytes"}'
    head = _HEAD.pack(0, 0, 1, 0, len(skeleton)) + struct.pack("!Q", buffer_bytes) + skeleton
    return HEADER.pack(len(head) + buffer_bytes + tag_size, MESSAGE) + head


def test_a_peer_that_announces_a_gib_and_sends_ten_bytes_does_not_cost_a_gib() -> None:
    channel, peer, tag_size = _sealed_pair()  # the default budget: 1 GiB
    before = _rss()
    peer.sendall(_buffer_message_start((1 << 30) - 4096, tag_size) + b"0123456789")
    with pytest.raises(TimeoutError):
        channel.recv(timeout=0.5)
    grown = _rss() - before
    assert grown < 64 * MiB, f"resident memory grew by {grown / MiB:.0f} MiB"
    channel.close()
    peer.close()


def test_a_peer_that_announces_more_than_the_budget_is_refused_at_once() -> None:
    from miniray import ProtocolError

    channel, peer, tag_size = _sealed_pair(max_buffer_bytes=8 * MiB)
    before = _rss()
    peer.sendall(_buffer_message_start(8 * MiB + 1, tag_size))
    with pytest.raises(ProtocolError, match="8 MiB of buffers, over max_buffer_bytes=8 MiB"):
        channel.recv(timeout=5)
    assert _rss() - before < 4 * MiB
    with pytest.raises(ProtocolError):  # nothing after it can be trusted to start a frame
        channel.recv(timeout=0)


def test_a_frame_over_max_frame_that_is_no_buffer_message_is_refused_at_once() -> None:
    from miniray import ProtocolError
    from miniray.wire import HEADER, MESSAGE

    channel, peer, tag_size = _sealed_pair(max_frame=64 * 1024)
    peer.sendall(HEADER.pack(2 * MiB + tag_size, MESSAGE) + b'"' + b"x" * 100)  # JSON text
    with pytest.raises(ProtocolError, match="max_frame=65536"):
        channel.recv(timeout=5)


@pytest.mark.parametrize("copy", [True, False])
def test_a_skeleton_over_max_frame_is_refused_even_inside_the_buffer_budget(copy: bool) -> None:
    from miniray import ProtocolError
    from miniray.wire import HEADER, MESSAGE

    channel, peer, tag_size = _sealed_pair(max_frame=4096)
    skeleton = b"[" + b"0," * 4000 + b"0]"  # 8 kB of message: decoding it is the risk
    head = _HEAD.pack(0, 0, 1, 0, len(skeleton)) + struct.pack("!Q", 2 * MiB) + skeleton
    peer.sendall(HEADER.pack(len(head) + 2 * MiB + tag_size, MESSAGE) + head)
    with pytest.raises(ProtocolError, match="max_frame=4096"):
        channel.recv(timeout=5, copy=copy)


def test_buffers_over_the_budget_are_refused_before_a_byte_is_sent_naming_the_knob(
    ext_connect: Any,
) -> None:
    import miniray

    worker = ext_connect(ext_workfns.echo_fn, max_buffer_bytes=MiB)
    where = "Worker" if isinstance(worker, miniray.Worker) else "RemoteWorker"
    message = (
        rf"1\.5 MiB of buffers exceed max_buffer_bytes=1 MiB; not sent: "
        rf"pass max_buffer_bytes= to {where}\(\.\.\.\)"
    )
    with pytest.raises(miniray.Unsendable, match=message):
        worker.send({"a": bytes(MiB), "b": bytearray(MiB // 2)})
    worker.send({"a": bytes(MiB)})  # exactly the budget: it goes, and the channel is as before
    assert worker.recv(timeout=10) == {"a": bytes(MiB)}


def test_a_message_over_max_frame_names_the_knob(ext_connect: Any) -> None:
    import miniray

    worker = ext_connect(ext_workfns.echo_fn, max_frame=64 * 1024)
    with pytest.raises(miniray.Unsendable, match=r"exceeds max_frame=65536; not sent: pass max"):
        worker.send("x" * 100_000)
    worker.send({"small": "x" * 1000, "big": bytes(4 * MiB)})  # buffers are not the message
    assert worker.recv(timeout=10)["big"] == bytes(4 * MiB)


@pytest.mark.parametrize("copy", [True, False])
def test_a_64_mib_array_goes_both_ways_with_default_settings(ext_connect: Any, copy: bool) -> None:
    numpy = pytest.importorskip("numpy", reason="numpy is optional; the array path needs it")
    worker = ext_connect(ext_workfns.echo_arrays)
    array = numpy.arange(8 << 20, dtype=numpy.float64)  # 64 MiB
    worker.send({"a": array})
    back = worker.recv(timeout=60, copy=copy)["a"]
    assert back.dtype == array.dtype and numpy.array_equal(back, array)


def test_the_limits_are_checked_where_they_are_set() -> None:
    import miniray

    with pytest.raises(ValueError, match="max_buffer_bytes=-1"):
        miniray.Worker(ext_workfns.echo_fn, max_buffer_bytes=-1)
    with pytest.raises(ValueError, match="max_frame=0"):
        miniray.Worker(ext_workfns.echo_fn, max_frame=0)
    for not_a_size in ("1", None, 1.5, True):  # "1" and None: a bare '<' error; 1.5: taken
        with pytest.raises(TypeError, match="max_buffer_bytes must be an int, in bytes, not "):
            miniray.Worker(ext_workfns.echo_fn, max_buffer_bytes=not_a_size)
    with pytest.raises(
        miniray.ConfigError, match="max_buffer_bytes=-1: a size in bytes, 0 or more"
    ):
        miniray.Cluster([miniray.NodeConfig("h")], max_buffer_bytes=-1)  # was a ValueError
    for bad in (-1, "1"):  # were taken: the node failed to start, or a bare TypeError
        with pytest.raises(miniray.ConfigError, match=r"node h: max_buffer_bytes"):
            miniray.NodeConfig("h", max_buffer_bytes=bad)


def test_a_report_frame_over_max_frame_is_refused_even_under_the_buffer_budget() -> None:
    # Only a buffer message may be longer than max_frame; a worker's report never is.
    from miniray import Channel, ProtocolError
    from miniray.wire import ERROR, HEADER
    from miniray.wire_options import WireOptions

    ours, peer = socket.socketpair()
    channel = Channel(ours, options=WireOptions(max_frame=4096))  # a worker's parent end
    peer.sendall(HEADER.pack(8192, ERROR) + b"x" * 8192)
    with pytest.raises(ProtocolError, match="exceeds max_frame"):
        channel.recv(timeout=5)
