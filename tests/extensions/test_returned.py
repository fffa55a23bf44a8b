"""Views sent back by reference: a local Worker's child that answers with views of the message
it received sends where they lie in the parent's region, not their bytes (issue 18, goal 2).

What must hold: the echo copies once, and no view at either end ever changes while held.
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import ext_workfns
import pytest

pytestmark = pytest.mark.needs("buffers")

numpy = pytest.importorskip("numpy", reason="a buffer's address is read with numpy")

BIG = ext_workfns.BIG  # bytes: through the region
TO_CHILD, TO_PARENT = "miniray-to-child", "miniray-to-parent"


def _lies_in(value: Any, name: str) -> bool:
    """Whether ``value``'s bytes lie in this process's mapping of the memfd ``name``."""
    address = numpy.frombuffer(value, numpy.uint8).ctypes.data
    with open("/proc/self/maps") as maps:
        for line in maps:
            if f"memfd:{name}" in line:
                start, end = (int(n, 16) for n in line.split()[0].split("-"))
                if start <= address < end:
                    return True
    return False


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _array(value: float) -> Any:
    return numpy.full(BIG // 8, value, dtype=numpy.float64)


def echo_parts(handle: Any) -> None:
    """Send back the array received, a slice of it and the empty buffer beside it."""
    while True:
        msg = handle.recv(copy=False)
        handle.send({"whole": msg["a"], "part": msg["a"][100:300], "empty": msg["empty"]})


def test_an_echo_of_views_comes_back_from_the_senders_own_region() -> None:
    import miniray

    with miniray.Worker(echo_parts) as worker:
        sent = numpy.arange(BIG // 8, dtype=numpy.float64)
        worker.send({"a": sent, "empty": b""})
        back = worker.recv(timeout=10, copy=False)
        assert (back["whole"] == sent).all() and (back["part"] == sent[100:300]).all()
        assert bytes(back["empty"]) == b"" and not back["whole"].flags.writeable
        # Where we wrote it, not a copy in the child's region: the bytes travelled once.
        assert _lies_in(back["whole"], TO_CHILD) and _lies_in(back["part"], TO_CHILD)


def test_a_returned_view_never_changes_while_held() -> None:
    import miniray

    with miniray.Worker(ext_workfns.echo_views) as worker:
        to_child = worker._channel.codec._outgoing
        worker.send(_array(1))
        held = worker.recv(timeout=10, copy=False)
        assert _lies_in(held, TO_CHILD)
        for value in range(2, 8):  # the child lets go of message 1: only `held` keeps it
            _wait_for(lambda: to_child._header_value() == 1)
            worker.send(_array(value))  # inline: the region is held
            reply = worker.recv(timeout=10, copy=value % 2 == 0)  # the child's region, or inline
            assert (reply == value).all() and not _lies_in(reply, TO_CHILD)
            assert (held == 1).all()
        assert to_child.sent == 1  # the region was never written again
        del held, reply
        worker.send(_array(8))  # nothing holds it: the region again
        assert (worker.recv(timeout=10) == 8).all() and to_child.sent == 2


def keep_first(handle: Any) -> None:
    """Keep the first message's view for good and send it back; then echo each message,
    saying whether the kept bytes are as they were."""
    kept = handle.recv(copy=False)
    first = bytes(kept)
    handle.send(kept)
    while True:
        msg = handle.recv(copy=False)
        handle.send({"echo": msg, "kept": bytes(kept) == first})


def test_the_childs_own_view_never_changes_when_the_parent_drops_its_returned_one() -> None:
    import miniray

    with miniray.Worker(keep_first) as worker:
        worker.send(b"\x01" * BIG)
        back = worker.recv(timeout=10, copy=False)
        assert back == b"\x01" * BIG and _lies_in(back, TO_CHILD)
        del back  # the child's view still holds the region
        for fill in range(2, 6):
            worker.send(bytes([fill]) * BIG)
            reply = worker.recv(timeout=10, copy=fill % 2 == 0)
            assert reply["echo"] == bytes([fill]) * BIG and reply["kept"] is True
        assert worker._channel.codec._outgoing.sent == 1


def test_a_pipelined_parent_never_overwrites_a_reference_on_its_way() -> None:
    """The child released message 1 before we read its reply, a reference to message 1:
    our next message must not go where that reply points."""
    import miniray

    with miniray.Worker(ext_workfns.echo_views) as worker:
        to_child = worker._channel.codec._outgoing
        worker.send(b"\x01" * BIG)
        _wait_for(lambda: to_child._header_value() == 1)  # released: the reply is sent
        worker.send(b"\x02" * BIG)
        assert worker.recv(timeout=10, copy=False) == b"\x01" * BIG
        assert worker.recv(timeout=10, copy=False) == b"\x02" * BIG


def return_crafted(handle: Any) -> None:
    """Answer a region message with a reference built by hand: ``{"seq": delta to the
    message's own number, "offset": ..., "length": ...}``; echo anything else."""
    from miniray.wire import MESSAGE

    while True:
        msg = handle.recv(copy=False)
        if not isinstance(msg, dict) or "seq" not in msg:
            handle.send(msg)
            continue
        seq = handle.codec._lease_seq + msg["seq"]
        skeleton = b'{"__buffer__":0,"type":"bytes"}'
        head = struct.pack("!BBIQI", 0, 2, 1, seq, len(skeleton))
        spans = struct.pack("!QQ", msg["length"], msg["offset"])
        del msg  # let go of the region (and note no reference in its header: a rogue)
        handle.send_frame(MESSAGE, head + spans + skeleton)


@pytest.mark.parametrize(
    ("seq", "offset", "length", "match"),
    [
        (1, 0, 8, "region message 2, but the region holds message 1"),
        (-1, 0, 8, "region message 0, but the region holds message 1"),
        (0, BIG - 8, 64, f"bytes {BIG - 8}..{BIG + 56} of region message 1, which has {BIG}"),
        (0, 2**64 - 1, 1, "which has"),
    ],
)
@pytest.mark.parametrize("copy", [True, False])
def test_a_reference_to_bytes_the_region_does_not_hold_is_refused(
    seq: int, offset: int, length: int, match: str, copy: bool
) -> None:
    import miniray

    with miniray.Worker(return_crafted) as worker:
        worker.send({"data": b"x" * BIG, "seq": seq, "offset": offset, "length": length})
        with pytest.raises(miniray.ProtocolError, match=match):
            worker.recv(timeout=10, copy=copy)
        worker.send({"data": b"y" * BIG})  # the channel, and the region, are usable still
        assert worker.recv(timeout=10)["data"] == b"y" * BIG


def test_a_reference_on_a_channel_without_a_region_is_refused() -> None:
    from miniray.errors import ProtocolError
    from miniray.message_codec import MessageCodec

    skeleton = b'{"__buffer__":0,"type":"bytes"}'
    frame = struct.pack("!BBIQIQQ", 0, 2, 1, 1, len(skeleton), 8, 0) + skeleton
    with pytest.raises(ProtocolError, match="without one"):
        MessageCodec().decode(frame)


def test_copy_true_gives_private_copies_and_holds_nothing() -> None:
    import miniray

    with miniray.Worker(ext_workfns.echo_views) as worker:
        to_child = worker._channel.codec._outgoing
        sent = numpy.arange(BIG // 8, dtype=numpy.float64)
        worker.send(sent)
        back = worker.recv(timeout=10)
        assert (back == sent).all() and not _lies_in(back, TO_CHILD)
        back[:] = -1  # ours to change
        _wait_for(lambda: to_child._header_value() == 1)  # the child let go of its views
        worker.send(sent + 1)  # and our copy holds nothing: the region is used again
        assert to_child.sent == 2
        assert (worker.recv(timeout=10) == sent + 1).all() and (back == -1).all()


def echo_with_new_bytes(handle: Any) -> None:
    """Send back the view received beside bytes of the child's own."""
    while True:
        msg = handle.recv(copy=False)
        handle.send({"old": msg, "new": b"n" * BIG})


def test_views_sent_with_new_bytes_are_copied_and_arrive_right() -> None:
    import miniray

    with miniray.Worker(echo_with_new_bytes) as worker:
        for copy in (False, True):
            sent = numpy.arange(BIG // 8, dtype=numpy.float64) + copy
            worker.send(sent)
            back = worker.recv(timeout=10, copy=copy)
            assert (back["old"] == sent).all() and back["new"] == b"n" * BIG
            assert not _lies_in(back["old"], TO_CHILD)  # copied, as a reference cannot say


def echo_without_numpy(handle: Any) -> None:
    """echo_views in a program that has not imported numpy."""
    sys.modules.pop("numpy", None)  # this forked child's own copy of the table
    ext_workfns.echo_views(handle)


def test_without_numpy_views_are_copied_back() -> None:
    import miniray

    with miniray.Worker(echo_without_numpy) as worker:
        worker.send(b"b" * BIG)
        back = worker.recv(timeout=10, copy=False)
        assert back == b"b" * BIG and _lies_in(back, TO_PARENT)
