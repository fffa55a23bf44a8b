# @5+
"""Big frames: sent from where they lie, read into a buffer of their own, hashed as they go.

For the buffers of ``message_codec.py`` (a numpy array, a tensor): a frame of
``BIG_FRAME`` bytes or more would cost the receiving `Channel` two more copies of every
byte if it went the way of small frames (each 64 KiB read appended to the receive buffer,
then the payload cut out of it). So once its header has arrived, the rest of a big frame
is read straight into a buffer of its own (`BigFrameReader`), which the next big frame
reuses when nothing refers to it any more.

Over TCP every frame ends with a MAC (stage 2's ``session.FrameMAC``). Hashing a big
payload before sending it and after it has all arrived would make each end wait for the
other's hashing; instead the sender hashes a chunk just before it goes (`send_sealed`) and
the receiver hashes what has arrived while more is on its way, so both hash at once. The
frame is delivered only once its tag has been checked.
"""

from __future__ import annotations

import mmap
import socket
import sys
from collections.abc import Callable, Sequence

from .frame_auth import FrameAuth
from .frame_mac import StreamedTag
from .wire import HEADER, MESSAGE

Payload = bytes | bytearray | mmap.mmap  # a received frame's payload: small, or big
BIG_FRAME = 1024 * 1024  # from this size on, a payload is read straight into its own buffer
SEND_CHUNK = 256 * 1024  # a big frame with a MAC is hashed and sent this much at a time


def send_sealed(
    sock: socket.socket, header: bytes, parts: Sequence[bytes | memoryview], tag: StreamedTag
) -> None:
    """Send a frame a chunk at a time, each hashed just before it goes, then its tag."""
    sock.sendall(header)
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), SEND_CHUNK):
            chunk = view[start : start + SEND_CHUNK]
            tag.update(chunk)
            sock.sendall(chunk)
    sock.sendall(tag.tag())


class BigFrameReader:
    """The big frame being read, if any, and the last one's buffer, kept for reuse.

    Args:
        frame_auth: The channel's MAC, if it has one: each payload is then hashed as it
            arrives, and its tag checked before the frame is delivered.
    """

    def __init__(self, frame_auth: FrameAuth | None) -> None:
        self._auth = frame_auth
        self._tag_size = 0 if frame_auth is None else frame_auth.tag_size
        self.current: _BigFrame | None = None
        self._spare: bytearray | mmap.mmap = bytearray()

    # --8<-- [start:big_frame]
    def begin(self, buffer: bytearray, may_read: Callable[[int, memoryview, int], bool]) -> None:
        """If ``buffer`` starts with a big frame's header, take that frame over from it.

        The bytes of the frame already in ``buffer`` move into the frame's own buffer,
        and ``buffer`` is emptied; `read` fetches the rest. First ``may_read(kind, start,
        size)`` looks at the payload's first bytes (the codec's limits): False leaves the
        frame in ``buffer`` until more of it has arrived; a ProtocolError refuses it.
        """
        if len(buffer) < HEADER.size:
            return
        length, kind = HEADER.unpack_from(buffer)  # (under the channel's limit already)
        if length < BIG_FRAME:
            return
        size = length - self._tag_size  # the payload's; its tag is read into a buffer apart
        if not may_read(kind, memoryview(buffer)[HEADER.size :], size) or kind != MESSAGE:
            return  # (reports stay small, and bytes)
        # Fresh memory costs a page fault per 4 KiB on first touch, more than the copy:
        # reuse the last big frame's buffer if nothing (a message, an array) refers to it.
        # New memory is an anonymous mapping: the kernel gives it a page at a time as the
        # bytes arrive, so a peer that announces 1 GiB and sends 10 bytes costs 10 bytes.
        spare_is_free = sys.getrefcount(self._spare) == 2  # ours, and the call's argument
        reuse = spare_is_free and len(self._spare) == size
        payload = self._spare if reuse else mmap.mmap(-1, size)
        self._spare = payload
        have = len(buffer) - HEADER.size  # (less than size: at most one 64 KiB read)
        payload[:have] = buffer[HEADER.size :]
        buffer.clear()
        tag = None if self._auth is None else self._auth.checking(kind, size)
        if tag is not None:
            tag.update(memoryview(payload)[:have])
        self.current = _BigFrame(kind, payload, bytearray(self._tag_size), have, tag)

    def read(self, sock: socket.socket) -> tuple[int, bytearray | mmap.mmap] | None:
        """Read more of the current frame: the frame once it is complete, else None.

        Raises:
            BlockingIOError: The socket's receive timeout expired; nothing was read.
            EOFError: The peer closed the connection in the middle of the frame.
            ProtocolError: The frame failed its MAC.
        """
        big = self.current
        assert big is not None
        in_payload = big.filled < len(big.payload)
        if in_payload:
            into = memoryview(big.payload)[big.filled :]
        else:  # the payload is in: its tag follows
            into = memoryview(big.tag)[big.filled - len(big.payload) :]
        try:
            count = sock.recv_into(into)
        except (ConnectionResetError, TimeoutError):  # TimeoutError: TCP keepalives gave up
            count = 0
        if count == 0:
            raise EOFError("the peer closed the channel mid-frame")
        if in_payload and big.streamed is not None:
            big.streamed.update(into[:count])
        big.filled += count
        if big.filled < len(big.payload) + len(big.tag):
            return None
        self.current = None
        if self._auth is not None and big.streamed is not None:  # checked before delivery
            self._auth.check_streamed(big.streamed, bytes(big.tag))
        return big.kind, big.payload

    # --8<-- [end:big_frame]

    def tail(self, count: int) -> bytes:
        """The last ``count`` bytes received of the current frame (payload, then tag)."""
        big = self.current
        if big is None:
            return b""
        in_payload = min(big.filled, len(big.payload))
        received = big.payload[max(0, in_payload - count) : in_payload]
        return (bytes(received) + bytes(big.tag[: big.filled - in_payload]))[-count:]

    @property
    def backlog(self) -> int:
        """Bytes held for the frame being read."""
        return 0 if self.current is None else len(self.current.payload)


class _BigFrame:
    """A big frame being read: its payload into a buffer of its own, then its tag, if any."""

    def __init__(
        self,
        kind: int,
        payload: bytearray | mmap.mmap,
        tag: bytearray,
        filled: int,
        streamed: StreamedTag | None,
    ) -> None:
        self.kind, self.payload, self.tag, self.filled = kind, payload, tag, filled
        self.streamed = streamed  # the tag being computed as the payload arrives, if any
