# @5+
"""A shared-memory region (a memfd) that carries one direction's buffers between two processes.

A local ``Worker`` makes two, one per direction, *before* it forks: the
child inherits the descriptors, so each region is handed over exactly once, by ``fork``
itself (a process that was not forked from us would get it once with ``socket.send_fds``;
a process on another host cannot get it at all: memory is not shared across machines).

Layout: a 64-byte header, then the buffers of one message, each at a 64-byte aligned
offset. The header holds two numbers, both written by the receiver: ``released``, the
sequence number of the last message whose bytes it has let go of, and ``returned``, how
many messages it has sent back that refer to bytes of this region (see ``returned.py``).

# --8<-- [start:overwrite_rule]
**Who may write which bytes when.** Only the sender writes the data part, and only the
receiver writes ``released``. The sender numbers its region messages 1, 2, 3...; it may
overwrite the region only when ``released`` equals the number of the last message it put
there, that is, when the receiver has finished with every earlier one. Otherwise it does
not wait (the receiver may be waiting for *it*): it sends the buffers inline, through the
socket. The receiver sets ``released`` as soon as it has copied a message's buffers out; for
zero-copy views, once nothing refers to them any more. The views of one message are made
from an object of their own (a *lease*) over the receiver's one long-lived mapping; each
``recv`` and ``send`` looks (through a weak reference) whether the last message's lease
is still alive: it is while any view of it is (a memoryview, a slice of one, a numpy
array made from one), and then the region stays claimed. So MiniRay never writes where a
view looks, for as long as you hold it; later messages simply take the slower path
meanwhile. The rule binds MiniRay's code at both ends; it is not a wall. The sender's
process keeps the memfd, writable, and its own code can write there: the view shows it. A
region message that arrives while views of the last one are alive broke the rule, and is a
``ProtocolError``: detected when it arrives, not prevented.

**Views sent back.** A receiver that sends back views of the message it got (an echo)
sends where they lie, not their bytes: the sender rebuilds them from its own mapping of
the region, and the bytes are copied once, not twice. The region then holds what both
ends still look at, so the sender also waits until no such *reference* is on its way
(the receiver counts each in ``returned`` before it sends it, the sender counts those it
has decoded) and until no view it rebuilt from one is alive (a lease of its own, as on
the receiving side). A reference to any message but the one the region holds now, or to
bytes outside it, is a ``ProtocolError``.
# --8<-- [end:overwrite_rule]

The file is sealed against shrinking (``F_SEAL_SHRINK``) when it is made: neither side
can ever make it smaller, so a mapping the reader made can never point past the end of
the file (touching such a page would kill the reader with SIGBUS). It may grow: the
sender grows it up to ``max_size`` when a message needs more room.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import mmap
import os
import struct
import weakref
from typing import Any

from .errors import ProtocolError, Unsendable

HEADER_SIZE = 64
ALIGN = 64  # each buffer starts at a multiple of this (numpy and SIMD like aligned data)
_WORD = struct.Struct("=Q")  # native order: both ends are on this machine
_RELEASED, _RETURNED = 0, 8  # where the header's two numbers are


def aligned(n: int) -> int:
    """``n`` rounded up to a multiple of ``ALIGN``."""
    return (n + ALIGN - 1) // ALIGN * ALIGN


class Region:
    """One memfd, mapped lazily; the sender's and the receiver's end look alike.

    Args:
        fd: The memfd (see `create`).
        max_size: The budget: the most bytes of buffers one message may put here; the data
            part never grows beyond it, and the receiver maps no more of it.
    """

    def __init__(self, fd: int, max_size: int) -> None:
        self.fd = fd
        self.max_size = max_size
        self.sent = 0  # sender: the number of the last message put in the region
        self.claimed = 0  # sender: how many data bytes that message has
        self.returns_decoded = 0  # sender: references to its messages it has received back
        self._returned_leases: list[weakref.ref[Any]] = []  # sender: of views made from them
        self._returns_noted = 0  # receiver: messages it sent back that refer to this region
        self._map: mmap.mmap | None = None

    @classmethod
    def create(cls, name: str, max_size: int) -> Region:
        """A new, empty memfd, sealed against shrinking (and against removing that seal)."""
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, HEADER_SIZE)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, max_size)

    # --8<-- [start:sender]
    def is_free(self) -> bool:
        """Sender: True when nothing may look at the region's bytes any more.

        That is when the receiver has released every message put here, no reference to
        the region that it sent back is on its way, and no view made from one is alive.
        """
        # ``released`` first: the receiver notes a reference before it releases the message.
        if self._header_value() != self.sent:
            return False
        if self._header_value(_RETURNED) > self.returns_decoded:
            return False  # (a reference the peer did not note is refused if we reuse first)
        return all(ref() is None for ref in self._returned_leases)

    def claim(self, size: int) -> memoryview:
        """Sender: a writable view of ``size`` data bytes, growing the file if needed.

        Call only when `is_free`; the caller then fills the view and sends ``self.sent``.

        Raises:
            Unsendable: ``size`` is over the budget (see `check_size`); nothing changed.
        """
        try:
            self.check_size(size)
        except ProtocolError as e:  # from our own side, it is a message we cannot send
            raise Unsendable(f"{e}; not sent") from None
        mapping = self._mapping(HEADER_SIZE + size, grow=True)
        self.sent += 1
        self.claimed = size
        return memoryview(mapping)[HEADER_SIZE : HEADER_SIZE + size]

    # --8<-- [end:sender]

    def take_back(self, seq: int, spans: list[tuple[int, int]]) -> memoryview:
        """Sender: the data part of message ``seq``, which the receiver sent references to.

        ``spans``: the ``(offset, length)`` of each. The view comes from a new lease, which
        holds the region (see `is_free`) for as long as anything made from it lives, also
        while the caller copies the bytes out.

        Raises:
            ProtocolError: ``seq`` is not the message the region holds now, or a span lies
                outside it.
        """
        try:
            if seq != self.sent or seq == 0:
                raise ProtocolError(
                    f"peer sent back a reference to region message {seq}, "
                    f"but the region holds message {self.sent}"
                )
            for offset, length in spans:
                if offset + length > self.claimed:
                    raise ProtocolError(
                        f"peer sent back a reference to bytes {offset}..{offset + length} of "
                        f"region message {seq}, which has {self.claimed}"
                    )
            lease = self.lease(self.claimed)
            # Listed before it is counted: `is_free`, perhaps in a thread that sends while
            # this one receives, sees the reference either on its way or held.
            self._returned_leases = [ref for ref in self._returned_leases if ref() is not None]
            self._returned_leases.append(weakref.ref(lease))
        finally:
            self.returns_decoded += 1  # refused ones too: the receiver counted them
        return memoryview(lease).cast("B")[HEADER_SIZE : HEADER_SIZE + self.claimed]

    # --8<-- [start:receiver]
    def read(self, size: int) -> memoryview:
        """Receiver: a view of the first ``size`` data bytes, which the sender announced.

        Raises:
            ProtocolError: ``size`` is over this end's budget, or the file is smaller than
                that (the peer lied): nothing is mapped.
        """
        self.check_size(size)
        return memoryview(self._mapping(HEADER_SIZE + size, grow=False))[
            HEADER_SIZE : HEADER_SIZE + size
        ]

    def lease(self, size: int) -> ctypes.Array[ctypes.c_ubyte]:
        """A new object that exports this region's mapping, for one message's views (at
        either end: the sender makes one for views the receiver sent back).

        Views of one message are made from their own lease (``memoryview(lease)``); the
        lease lives exactly as long as any of them (or anything made from one: a slice, a
        numpy array) does, so a weak reference to it says when they are all gone. The
        mapping itself is the one `read` uses, made once: a fresh mapping per message
        would fault every 4 KiB page in again. The same checks as `read`.
        """
        self.check_size(size)
        mapping = self._mapping(HEADER_SIZE + size, grow=False)
        return (ctypes.c_ubyte * len(mapping)).from_buffer(mapping)

    def release(self, seq: int) -> None:
        """Receiver: tell the sender that message ``seq`` (and all before it) is done with."""
        _WORD.pack_into(self._mapping(HEADER_SIZE, grow=False), _RELEASED, seq)

    def note_returned(self) -> None:
        """Receiver: count one more message that refers to this region's bytes; call it
        before that message is sent (see `is_free`)."""
        self._returns_noted += 1
        _WORD.pack_into(self._mapping(HEADER_SIZE, grow=False), _RETURNED, self._returns_noted)

    # --8<-- [end:receiver]

    # --8<-- [start:check_size]
    def check_size(self, size: int) -> None:
        """Refuse one message's ``size`` bytes of buffers unless they fit ``max_size``.

        The one check of the budget, made by both ends before anything is grown, mapped,
        allocated or copied: the receiver trusts its own limit, not the size of the file,
        which the peer can make as big as it likes. ``max_size`` is the Worker's
        ``max_buffer_bytes``.

        Raises:
            ProtocolError: ``size`` is over ``max_size``.
        """
        if size > self.max_size:
            raise ProtocolError(
                f"{size} bytes of buffers in one message exceed max_buffer_bytes={self.max_size}"
            )

    # --8<-- [end:check_size]

    def close(self) -> None:
        """Unmap (unless a view still uses the mapping) and close the descriptor."""
        self._drop_mapping()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _header_value(self, offset: int = _RELEASED) -> int:
        (value,) = _WORD.unpack_from(self._mapping(HEADER_SIZE, grow=False), offset)
        return int(value)

    def _mapping(self, size: int, *, grow: bool) -> mmap.mmap:
        """A shared mapping of at least ``size`` bytes, made or remade as the file grows."""
        if self._map is not None and len(self._map) >= size:
            return self._map
        if self.fd < 0:
            raise ProtocolError("the shared-memory region is closed")
        file_size = os.fstat(self.fd).st_size
        if file_size < size:
            if not grow:
                raise ProtocolError(
                    f"peer announced {size} bytes in a shared region of {file_size} bytes"
                )
            os.ftruncate(self.fd, size)  # grow only: the seal forbids shrinking
            file_size = size
        self._drop_mapping()
        # Never more than the budget, however big the peer made the file (callers checked
        # ``size`` against it).
        length = min(file_size, HEADER_SIZE + self.max_size)
        self._map = mmap.mmap(self.fd, length, mmap.MAP_SHARED)
        return self._map

    def _drop_mapping(self) -> None:
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a view still uses it: it goes with the view
                self._map.close()
            self._map = None
