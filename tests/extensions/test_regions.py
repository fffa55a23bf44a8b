"""A local Worker's shared regions: the receiver's limit, what close() frees, what a view promises.

Memory and descriptors are counted from /proc with garbage collection switched off, so what
a test sees freed was freed by close() or by reference counting, never by a collection.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator

import ext_workfns
import pytest

pytestmark = pytest.mark.needs("buffers")

BIG = ext_workfns.BIG
MiB = 1 << 20


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Garbage collection off for the test: only reference counting frees anything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _memfds() -> int:
    """How many of this process's descriptors are MiniRay memfds."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # listdir's own descriptor, closed since
            count += "memfd:miniray" in os.readlink(f"/proc/self/fd/{fd}")
    return count


def _memfd_maps(name: str = "miniray") -> list[int]:
    """The sizes of this process's mappings of MiniRay memfds (of one region, by ``name``)."""
    sizes = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            if f"memfd:{name}" in line:
                start, end = line.split()[0].split("-")
                sizes.append(int(end, 16) - int(start, 16))
    return sizes


def _shared_rss() -> int:
    """Bytes of shared memory (memfd pages among them) resident in this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssShmem:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssShmem in /proc/self/status")


@pytest.mark.parametrize("copy", [True, False])
def test_a_region_message_over_the_limit_is_refused_before_anything_is_mapped(copy: bool) -> None:
    import miniray

    limit = MiB
    with miniray.Worker(ext_workfns.rogue_region, max_buffer_bytes=limit) as worker:
        worker.send({"cmd": "announce", "size": 64 * limit})  # the file really is that big
        with pytest.raises(miniray.ProtocolError, match="max_buffer_bytes"):
            worker.recv(timeout=10, copy=copy)
        assert all(size <= limit + 4096 for size in _memfd_maps("miniray-to-parent"))
        worker.send("still usable")
        assert worker.recv(timeout=10) == "still usable"


def test_close_frees_the_regions_while_the_worker_object_lives(no_gc: None) -> None:
    import miniray

    fds, maps, rss = _memfds(), len(_memfd_maps()), _shared_rss()
    closed = []
    for _ in range(10):
        worker = miniray.Worker(ext_workfns.echo_fn)
        worker.send({"data": b"x" * (3 * MiB)})
        view = worker.recv(timeout=10, copy=False)["data"]
        assert view == b"x" * (3 * MiB)  # every page read: resident here
        del view
        worker.close()
        closed.append(worker)  # still referenced: close() alone must let go
    assert (_memfds(), len(_memfd_maps())) == (fds, maps)
    assert _shared_rss() - rss < 3 * MiB  # less than one message; before: 3 MiB a worker


def test_a_view_outlives_close_unchanged_and_takes_the_memfd_with_it(no_gc: None) -> None:
    numpy = pytest.importorskip("numpy", reason="numpy is optional; the test holds an array view")
    import miniray

    fds, maps = _memfds(), len(_memfd_maps())
    worker = miniray.Worker(ext_workfns.echo_fn)
    worker.send({"data": b"v" * BIG, "array": numpy.full(BIG, 7, dtype=numpy.uint8)})
    got = worker.recv(timeout=10, copy=False)
    piece, array = got["data"][:10], got["array"]
    del got
    worker.close()
    assert bytes(piece) == b"v" * 10 and (array == 7).all()  # valid, and as they were
    # What is left is the views' one mapping (and the descriptor Python's mmap keeps of it).
    assert (_memfds(), len(_memfd_maps())) == (fds + 1, maps + 1)
    del piece
    assert (_memfds(), len(_memfd_maps())) == (fds + 1, maps + 1)  # the array still uses it
    del array
    assert (_memfds(), len(_memfd_maps())) == (fds, maps)  # the last view took it along
    assert worker.returncode is not None


def test_a_view_is_kept_from_miniray_writes_not_from_the_childs_own() -> None:
    """Exactly what ``recv(copy=False)`` promises (see the stage 5 page, "The shared region")."""
    import miniray

    with miniray.Worker(ext_workfns.rogue_region) as worker:
        worker.send({"cmd": "send", "fill": 1})
        own = worker.recv(timeout=10)["data"]  # a copy: the region is released at once
        worker.send({"cmd": "send", "fill": 2})
        view = worker.recv(timeout=10, copy=False)["data"]  # the same region, now held
        assert own == b"\x01" * BIG and view == b"\x02" * BIG
        worker.send({"cmd": "send", "fill": 3})  # MiniRay's own send goes around the view
        assert worker.recv(timeout=10)["data"] == b"\x03" * BIG and view[0] == 2

        worker.send({"cmd": "poke", "byte": 9})  # the child's code writes its memfd itself:
        assert worker.recv(timeout=10) == "poked"
        assert view[0] == 9  # the view shows it (not promised against the child's own code)
        assert own[0] == 1  # a copy is this process's own

        worker.send({"cmd": "send", "fill": 4, "ignore_released": True})
        with pytest.raises(miniray.ProtocolError, match="released"):
            worker.recv(timeout=10, copy=False)  # a child that ignored `released`: caught,
        assert view[0] == 4  # but only once it has written


def _maps_of(name: str) -> list[str]:
    """The address ranges of this process's mappings of one region's memfd."""
    with open("/proc/self/maps") as maps:
        return sorted(line.split()[0] for line in maps if f"memfd:{name}" in line)


def test_views_of_every_message_come_from_one_mapping_made_once() -> None:
    """A fresh mapping per message would fault every page in again (issue 18, item 2)."""
    import miniray

    with miniray.Worker(ext_workfns.echo_fn) as worker:
        worker.send({"data": b"a" * BIG})
        first = worker.recv(timeout=10, copy=False)["data"]
        assert first == b"a" * BIG
        del first
        mapped = _maps_of("miniray-to-parent")
        for letter in b"bcde":
            worker.send({"data": bytes([letter]) * BIG})
            view = worker.recv(timeout=10, copy=False)["data"]  # held while we look
            assert view == bytes([letter]) * BIG
            assert _maps_of("miniray-to-parent") == mapped
            del view


def test_anything_made_from_a_view_keeps_the_region_claimed(no_gc: None) -> None:
    """A slice, an array, a memoryview of that array: each alone keeps the bytes unchanged."""
    numpy = pytest.importorskip("numpy", reason="numpy is optional; the test holds array views")
    import miniray

    with miniray.Worker(ext_workfns.echo_fn) as worker:
        codec = worker._channel.codec
        worker.send({"data": b"a" * BIG})
        view = worker.recv(timeout=10, copy=False)["data"]
        piece = view[5:10]
        array = numpy.frombuffer(view, dtype=numpy.uint8)[100:]
        of_array = memoryview(array[:7])
        held = [view, piece, array, of_array]
        del view, piece, array, of_array
        for fill in range(len(held)):  # drop them one at a time, oldest first
            worker.send({"data": bytes([fill]) * BIG})  # goes inline: the region is held
            assert worker.recv(timeout=10, copy=False)["data"] == bytes([fill]) * BIG
            assert codec._lease_seq == 1, "a later message used the region: bytes could change"
            assert all(bytes(h[:3]) == b"aaa" for h in held)
            held.pop(0)
        worker.send({"data": b"z" * BIG})  # none left: the region is used again
        assert worker.recv(timeout=10, copy=False)["data"] == b"z" * BIG
        assert codec._lease_seq == 2


def test_a_view_held_across_many_messages_never_changes() -> None:
    numpy = pytest.importorskip("numpy", reason="numpy is optional; the test holds an array view")
    import miniray

    with miniray.Worker(ext_workfns.echo_fn) as worker:
        worker.send(numpy.full(BIG, 1, dtype=numpy.float64))
        held = worker.recv(timeout=10, copy=False)
        for value in range(2, 12):  # copies and views alternate; none may touch `held`
            worker.send(numpy.full(BIG, value, dtype=numpy.float64))
            assert (worker.recv(timeout=10, copy=value % 2 == 0) == value).all()
            assert (held == 1).all()
