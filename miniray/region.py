# @5+
"""A shared-memory region (a memfd) that carries one direction's buffers between two processes.

A local ``Worker`` makes two, one per direction, *before* it forks: the
child inherits the descriptors, so each region is handed over exactly once, by ``fork``
itself (a process that was not forked from us would get it once with ``socket.send_fds``;
a process on another host cannot get it at all: memory is not shared across machines).

Layout: a 64-byte header, then the buffers of one message, each at a 64-byte aligned
offset. The header holds one number, ``released``: the sequence number of the last
message whose bytes the reader has let go of.

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

from .errors import ProtocolError, Unsendable

HEADER_SIZE = 64
ALIGN = 64  # each buffer starts at a multiple of this (numpy and SIMD like aligned data)
_RELEASED = struct.Struct("=Q")  # native order: both ends are on this machine


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
        """Sender: True when the receiver has released every message put here."""
        return self._header_value() == self.sent

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
        return memoryview(mapping)[HEADER_SIZE : HEADER_SIZE + size]

    # --8<-- [end:sender]

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
        """Receiver: a new object that exports this region's mapping, for one message's views.

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
        mapping = self._mapping(HEADER_SIZE, grow=False)
        _RELEASED.pack_into(mapping, 0, seq)

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

    def _header_value(self) -> int:
        (value,) = _RELEASED.unpack_from(self._mapping(HEADER_SIZE, grow=False), 0)
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
