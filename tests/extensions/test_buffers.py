"""Buffers out of band: bytes, arrays and tensors beside the message, memfd regions locally."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from typing import Any

import ext_workfns
import pytest

from miniray.wire_options import WireOptions

pytestmark = pytest.mark.needs("buffers")

BIG = 256 * 1024  # above the size from which a local Worker uses its shared region


@pytest.mark.parametrize("codec", ["json", "marshal"])
@pytest.mark.parametrize("size", [10, BIG])
def test_bytes_like_values_arrive_as_the_same_type(ext_connect: Any, codec: str, size: int) -> None:
    worker = ext_connect(ext_workfns.echo_fn, codec=codec)
    data = os.urandom(size)
    msg = {"b": data, "ba": bytearray(data[::-1]), "mv": memoryview(data), "n": [1, (data, 2)]}
    worker.send(msg)
    got = worker.recv(timeout=10)
    assert type(got["b"]) is bytes and got["b"] == data
    assert type(got["ba"]) is bytearray and got["ba"] == data[::-1]
    assert type(got["mv"]) is memoryview and got["mv"] == data
    assert got["n"][1][0] == data and got["n"][0] == 1


@pytest.mark.parametrize("size", [10, BIG])
def test_numpy_arrays_keep_dtype_and_shape(ext_connect: Any, size: int) -> None:
    numpy = pytest.importorskip("numpy", reason="numpy is optional; the array path needs it")
    worker = ext_connect(ext_workfns.echo_arrays)
    arrays = [
        numpy.arange(size, dtype=numpy.float32).reshape(-1, 2),
        numpy.arange(12, dtype=">i8").reshape(3, 4)[:, ::2],  # non-contiguous, big-endian
        numpy.zeros((0, 3), dtype=numpy.complex128),
    ]
    worker.send({"arrays": arrays})
    got = worker.recv(timeout=10)["arrays"]
    for sent, back in zip(arrays, got, strict=True):
        assert isinstance(back, numpy.ndarray)
        assert back.dtype == sent.dtype and back.shape == sent.shape
        assert numpy.array_equal(back, sent) and back.flags.writeable


def test_an_array_received_as_a_copy_is_its_own() -> None:
    numpy = pytest.importorskip("numpy", reason="numpy is optional; the array path needs it")
    import miniray

    with miniray.Worker(ext_workfns.echo_fn) as worker:
        worker.send(numpy.full(BIG, 1, dtype=numpy.uint8))
        first = worker.recv(timeout=10)
        worker.send(numpy.full(BIG, 2, dtype=numpy.uint8))  # through the same region
        worker.recv(timeout=10)
    assert first.flags.owndata and first.flags.writeable
    assert (first == 1).all()


def test_torch_tensors_keep_dtype_and_shape(ext_connect: Any) -> None:
    torch = pytest.importorskip("torch", reason="torch is optional; the tensor path needs it")
    worker = ext_connect(ext_workfns.echo_tensors)
    tensors = [
        torch.arange(6, dtype=torch.bfloat16).reshape(2, 3),
        torch.ones(3, dtype=torch.int64),
    ]
    worker.send(tensors)
    for sent, back in zip(tensors, worker.recv(timeout=10), strict=True):
        assert back.dtype == sent.dtype and back.shape == sent.shape and torch.equal(back, sent)


@pytest.mark.ex05_4
def test_a_zero_copy_view_is_read_only_and_never_changes_while_held() -> None:
    import miniray

    with miniray.Worker(ext_workfns.echo_fn) as worker:
        _, to_parent = _regions(worker)
        worker.send({"data": b"a" * BIG})
        view = worker.recv(timeout=10, copy=False)["data"]
        assert isinstance(view, memoryview) and view.readonly and view == b"a" * BIG
        with pytest.raises(TypeError):
            view[0] = 0
        piece = view[:10]  # a slice shares the bytes: it pins them too
        del view
        worker.send({"data": b"b" * BIG})
        assert worker.recv(timeout=10)["data"] == b"b" * BIG
        assert bytes(piece) == b"a" * 10  # the reply went inline, around the held bytes
        assert to_parent._header_value() == 0  # message 1 of the region: not released
        del piece
        for letter in b"cd":  # our next send gives the region back first: both use it
            worker.send({"data": bytes([letter]) * BIG})
            assert worker.recv(timeout=10)["data"] == bytes([letter]) * BIG
        assert to_parent._header_value() == 3  # messages 2 and 3 of the region, released


@pytest.mark.ex05_4
def test_the_region_is_not_overwritten_while_an_array_holds_a_view() -> None:
    numpy = pytest.importorskip("numpy", reason="numpy is optional; the test holds an array view")
    import miniray

    with miniray.Worker(ext_workfns.echo_fn) as worker:
        worker.send({"x": numpy.full(BIG, 1, dtype=numpy.uint8)})
        held = worker.recv(timeout=10, copy=False)["x"]
        assert not held.flags.writeable
        for value in (2, 3):  # the child must not write where `held` still looks
            worker.send({"x": numpy.full(BIG, value, dtype=numpy.uint8)})
            assert (worker.recv(timeout=10, copy=False)["x"] == value).all()
        assert (held == 1).all()
        del held  # now the region is free again, and is used again
        worker.send({"x": numpy.full(BIG, 4, dtype=numpy.uint8)})
        assert (worker.recv(timeout=10)["x"] == 4).all()


@pytest.mark.ex05_4
def test_the_region_is_used_and_reused_between_local_processes() -> None:
    import miniray

    with miniray.Worker(ext_workfns.echo_fn) as worker:
        to_child, _ = _regions(worker)
        for round_number in range(1, 4):
            worker.send({"data": os.urandom(BIG)})
            worker.recv(timeout=10)
            assert to_child.sent == round_number  # every message went through the region
        worker.send({"data": os.urandom(4 * BIG)})  # bigger: the region grows
        assert len(worker.recv(timeout=10)["data"]) == 4 * BIG
        assert os.fstat(to_child.fd).st_size >= 4 * BIG


def test_the_region_cannot_shrink_so_a_peer_cannot_make_us_fault() -> None:
    import miniray

    with miniray.Worker(ext_workfns.echo_fn) as worker:
        worker.send({"data": b"x" * BIG})
        worker.recv(timeout=10)
        for region in _regions(worker):
            seals = fcntl.fcntl(region.fd, fcntl.F_GET_SEALS)
            assert seals & fcntl.F_SEAL_SHRINK and seals & fcntl.F_SEAL_SEAL
            with pytest.raises(PermissionError):
                os.ftruncate(region.fd, 0)


@pytest.mark.parametrize("size", [10, BIG])
def test_too_large_is_a_clear_error_and_nothing_is_half_sent(ext_connect: Any, size: int) -> None:
    import miniray

    worker = ext_connect(ext_workfns.echo_fn, max_buffer_bytes=4 * BIG)
    with pytest.raises(miniray.Unsendable, match="max_buffer_bytes"):
        worker.send({"data": bytes(4 * BIG + 1)})
    worker.send({"data": b"y" * size})  # the channel is as before
    assert worker.recv(timeout=10)["data"] == b"y" * size


def test_the_placeholder_key_is_reserved_only_beside_buffers(ext_connect: Any) -> None:
    worker = ext_connect(ext_workfns.echo_fn)
    worker.send({"__buffer__": 1})
    assert worker.recv(timeout=10) == {"__buffer__": 1}
    with pytest.raises(TypeError, match="reserved"):
        worker.send({"__buffer__": 1, "data": b"x"})


def _buffer_message(where: int, lengths: list[int], skeleton: bytes, data: bytes = b"") -> bytes:
    head = struct.pack("!BBIQI", 0, where, len(lengths), 1, len(skeleton))
    return head + b"".join(struct.pack("!Q", n) for n in lengths) + skeleton + data


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00",  # too short for its header
        _buffer_message(7, [], b"{}"),  # an unknown place for the buffers
        _buffer_message(0, [5], b"{}", b"abc"),  # fewer bytes than announced
        _buffer_message(0, [4], b'{"__buffer__":5,"type":"bytes"}', b"abcd"),  # no buffer 5
        _buffer_message(0, [4], b'{"__buffer__":0,"type":"pickle"}', b"abcd"),  # no such type
        _buffer_message(0, [4], b'{"__buffer__":0,"type":"ndarray","dtype":"O","shape":[1]}'),
        _buffer_message(1, [4], b"{}"),  # a region message where there is no region
        _buffer_message(0, [], b"{", b""),  # a broken skeleton
    ],
)
def test_malformed_buffer_messages_are_protocol_errors(payload: bytes) -> None:
    from adapters import frame

    import miniray

    ours, theirs = socket.socketpair()
    channel = miniray.Channel(ours)
    theirs.sendall(frame(payload) + frame(b'"next"'))
    with pytest.raises(miniray.ProtocolError):
        channel.recv(timeout=5)
    assert channel.recv(timeout=5) == "next"
    channel.close()
    theirs.close()


def _regions(worker: Any) -> tuple[Any, Any]:
    """The worker's two shared regions (to the child, to the parent): white-box, on purpose."""
    codec = worker._channel.codec
    return codec._outgoing, codec._incoming


def test_a_big_frames_tag_fed_in_pieces_is_the_tag_of_the_whole() -> None:
    """A big frame's MAC is fed as its bytes go out and come in: the tag is the one of the
    whole payload, and the checks (order, alteration) are the same."""
    from miniray import ProtocolError
    from miniray.frame_mac import Session

    nonces = os.urandom(32), os.urandom(32)
    client = Session(b"s" * 32, *nonces).client_frames()
    worker = Session(b"s" * 32, *nonces).worker_frames()
    payload = os.urandom(3 << 20)
    sealing = client.sealing(0, len(payload))
    for start in range(0, len(payload), 1 << 20):
        sealing.update(payload[start : start + (1 << 20)])
    worker.check(0, payload, sealing.tag())  # sealed in pieces, checked whole
    tag = client.seal(0, payload)
    checking = worker.checking(0, len(payload))
    checking.update(payload[:5])
    checking.update(payload[5:])
    worker.check_streamed(checking, tag)  # sealed whole, checked in pieces
    altered = payload[:-1] + bytes([payload[-1] ^ 1])
    for refused in (payload, altered):  # the same frame again; an altered one
        checking = worker.checking(0, len(refused))
        checking.update(refused)
        with pytest.raises(ProtocolError, match="integrity"):
            worker.check_streamed(checking, tag)


def test_big_frames_are_read_whole_and_the_stream_goes_on() -> None:
    import threading

    from adapters import frame

    import miniray

    ours, theirs = socket.socketpair()
    channel = miniray.Channel(ours, options=WireOptions(8 << 20))
    big = b"[" + b"1," * (3 << 20) + b"1]"  # a 6 MiB message, then a small one
    writer = threading.Thread(target=theirs.sendall, args=(frame(big) + frame(b'"after"'),))
    writer.start()
    assert len(channel.recv(timeout=10)) == (3 << 20) + 1
    assert channel.recv(timeout=10) == "after"
    writer.join()

    def cut_short() -> None:
        theirs.sendall(frame(b"x" * (2 << 20))[: 1 << 20])  # a big frame, half of it
        theirs.close()

    writer = threading.Thread(target=cut_short)
    writer.start()
    with pytest.raises(miniray.ProtocolError, match="mid-frame"):
        channel.recv(timeout=10)
    writer.join()
    channel.close()


def test_a_big_array_over_tcp_arrives_whole_and_writable(servers: Any) -> None:
    numpy = pytest.importorskip("numpy", reason="numpy is optional; the array path needs it")
    worker = servers.connect(ext_workfns.echo_arrays, max_frame=16 << 20)
    array = numpy.arange(1 << 20, dtype=numpy.float64)  # 8 MiB: the big-frame path
    worker.send({"a": array, "b": b"tail"})
    got = worker.recv(timeout=20)
    assert numpy.array_equal(got["a"], array) and got["b"] == b"tail"
    got["a"][0] = -1.0  # a private copy: writable
    worker.close(timeout=2)


@pytest.mark.parametrize("copy", [True, False])
def test_a_big_frame_buffer_is_reused_only_when_nothing_refers_to_it(copy: bool) -> None:
    import threading

    import miniray

    ours, theirs = socket.socketpair()
    receiver, sender = miniray.Channel(ours, options=WireOptions(8 << 20)), miniray.Channel(theirs)
    size = 2 << 20  # above the big-frame size: read into a buffer of its own

    def send(fill: int) -> None:
        sender.send({"data": memoryview(bytes([fill]) * size)})  # a memoryview may alias

    threads = [threading.Thread(target=send, args=(n,)) for n in (1, 2, 3)]
    threads[0].start()
    first = receiver.recv(timeout=10, copy=copy)["data"]
    threads[0].join()
    for thread in threads[1:]:
        thread.start()
        assert len(receiver.recv(timeout=10)["data"]) == size  # dropped at once: reusable
        thread.join()
    assert bytes(first[:4]) == b"\x01" * 4 and bytes(first[-4:]) == b"\x01" * 4
    receiver.close()
    sender.close()


@pytest.mark.needs("cluster")
def test_cluster_workers_carry_buffers_and_arrays_out_of_band() -> None:
    import miniray

    numpy = pytest.importorskip("numpy", reason="numpy is optional; the array path needs it")
    spec = f"{os.path.dirname(ext_workfns.__file__)}/ext_workfns.py:echo_arrays"
    array = numpy.arange(300_000, dtype=numpy.float32).reshape(600, 500)
    with miniray.Cluster([miniray.NodeConfig("localhost", 2)], log=lambda line: None) as cluster:
        for worker in cluster.start(work_fn=spec):
            worker.send({"raw": b"\x00\xff" * 70_000, "array": array})
            echoed = worker.recv(timeout=20)
            assert echoed["raw"] == b"\x00\xff" * 70_000 and type(echoed["raw"]) is bytes
            assert echoed["array"].dtype == array.dtype and echoed["array"].shape == array.shape
            assert numpy.array_equal(echoed["array"], array)
