# @5+
"""Buffers out of band: bytes, arrays and tensors travel beside the message, not inside it.

``send`` accepts messages that contain ``bytes``, ``bytearray``,
``memoryview`` (or any object with the buffer protocol) and, when they are installed,
``numpy.ndarray`` and CPU ``torch.Tensor``. The codec (JSON or marshal) encodes a
*skeleton*: the message with each buffer replaced by a placeholder
``{"__buffer__": i, "type": ..., "dtype": ..., "shape": [...]}``. The buffers' raw bytes go

* over TCP: in the same frame, right after the skeleton (never base64, never lists);
* between a local ``Worker`` and its child: in the direction's shared `Region`, when it
  is free; the frame then carries only the skeleton and the lengths. Views of the last
  message received are sent back as references into its region (see `returned`).

A message without buffers is encoded exactly as before. A buffer message's payload starts
with a zero byte, which begins neither a JSON text nor a marshal value:

    0x00 | where: 1 | count: 4 | seq: 8 | skeleton length: 4 | count x length: 8 | skeleton | data

Received values are the sent types (bytes as bytes, arrays with their dtype and shape), as
private copies; with ``copy=False`` they are read-only views instead (see `region`).
"""

from __future__ import annotations

import mmap
import struct
import weakref
from collections.abc import Callable
from typing import Any

from .buffer_values import PLACEHOLDER, HasBuffer, describe, holds_buffer, json_probe, rebuild
from .codec import JSON, Codec
from .decode_limits import bottom_up
from .errors import ProtocolError, Unsendable
from .region import HEADER_SIZE, Region, aligned
from .returned import OFFSET, offsets_in, returned_views
from .wire import MESSAGE
from .wire_options import DEFAULT_OPTIONS, WireOptions

_HEAD = struct.Struct("!BBIQI")  # marker 0, where, count, seq, skeleton length
_LENGTH = struct.Struct("!Q")
_INLINE, _IN_REGION, _RETURNED = 0, 1, 2
_REGION_MIN = 64 * 1024  # smaller buffers are cheaper through the socket than through memory


# --8<-- [start:message_codec]
class MessageCodec:
    """A codec (JSON or marshal) plus out-of-band buffers, for one end of one channel.

    Args:
        codec: Encodes the message, or its skeleton when it holds buffers.
        options: The limits: ``max_frame`` for the message (its skeleton), and
            ``max_buffer_bytes`` for the buffers beside it.
        outgoing: The region this end writes buffers into (local Workers only).
        incoming: The region the peer writes buffers into (local Workers only).
    """

    def __init__(
        self,
        codec: Codec = JSON,
        *,
        options: WireOptions = DEFAULT_OPTIONS,
        outgoing: Region | None = None,
        incoming: Region | None = None,
    ) -> None:
        self.codec = codec
        self.options = options
        self.name = codec.name
        self._outgoing = outgoing
        self._incoming = incoming
        # The lease the last message's zero-copy views were made from (see Region.lease):
        # dead once no view is left. And the region message it holds.
        self._lease: weakref.ref[Any] | None = None
        self._lease_seq = 0
        self._lease_size = 0  # the data bytes of that message

    def encode(self, msg: Any) -> bytes | list[bytes | memoryview]:
        """The payload: bytes, or with buffers, parts (the caller's own buffers, not copies).

        Raises:
            Unsendable: The codec cannot carry ``msg``, or its buffers exceed
                ``max_buffer_bytes`` (nothing was written anywhere).
        """
        if self._lease is not None:  # views dropped since the last recv: give the region back
            self.release_views()
        try:
            return self._encode(msg)
        except RecursionError:  # the walks below and the encoders recurse, one call a level
            raise Unsendable("message nested too deeply to encode (or it holds itself)") from None

    def _encode(self, msg: Any) -> bytes | list[bytes | memoryview]:
        if self.codec is JSON:
            try:
                return json_probe(msg).encode()
            except HasBuffer:
                pass
            except (TypeError, ValueError) as e:  # (one that holds itself: RecursionError, below)
                raise Unsendable(f"message is not JSON-serialisable: {e}") from e
        elif not holds_buffer(msg):
            return self.codec.encode(msg)
        buffers: list[memoryview] = []
        skeleton = self.codec.encode(_extract(msg, buffers))
        total, budget = sum(b.nbytes for b in buffers), self.options.max_buffer_bytes
        if total > budget:
            raise Unsendable(
                f"{_size(total)} of buffers exceed max_buffer_bytes={_size(budget)}; not sent: "
                + self.options.knob("max_buffer_bytes")
            )
        return self._pack(skeleton, buffers)

    def may_read(self, kind: int, start: memoryview, size: int) -> bool:
        """Whether a frame of ``kind`` and ``size`` bytes that begins with ``start`` may be
        read now.

        Checked before any memory is set aside for it: a frame longer than ``max_frame``
        can only be a buffer message, whose head says how big its message part is and
        how many bytes of buffers follow. False: the head has not all arrived yet.

        Raises:
            ProtocolError: It announces more than the limits allow.
        """
        max_frame, budget = self.options.max_frame, self.options.max_buffer_bytes
        if size <= max_frame:
            return True
        if kind != MESSAGE or (start and start[0] != 0):  # not a buffer message: too big
            raise ProtocolError(f"peer announced a {size}-byte message; {max_frame=}")
        if len(start) < _HEAD.size:
            return False
        marker, _, count, _, skeleton_size = _HEAD.unpack_from(start)
        message = _HEAD.size + count * _LENGTH.size + skeleton_size
        if marker != 0 or message > max_frame:
            raise ProtocolError(f"a frame of {size} bytes whose message exceeds {max_frame=}")
        if size - message > budget:
            raise ProtocolError(
                f"peer announced {_size(size - message)} of buffers, over "
                f"max_buffer_bytes={_size(budget)}"
            )
        return True

    def decode(self, payload: bytes | bytearray | mmap.mmap, *, copy: bool = True) -> Any:
        """The message a payload carries: its buffers as copies, or (``copy=False``) as
        read-only views; ProtocolError for anything malformed."""
        if self._lease is not None:
            self.release_views()
        if not payload or payload[0] != 0:
            if len(payload) > self.options.max_frame:  # only buffers may take it past that
                raise ProtocolError(f"message of {len(payload)} bytes exceeds max_frame")
            return self.codec.decode(
                payload if isinstance(payload, bytes | bytearray) else bytes(payload)
            )
        return self._unpack(memoryview(payload), copy)

    # --8<-- [end:message_codec]

    # --8<-- [start:release_views]
    def release_views(self) -> None:
        """Free the region for the sender once no zero-copy view of the last message is left."""
        if self._lease is None or self._incoming is None:
            return
        if self._lease() is not None:  # a view (or a slice, an array made from one) is alive
            return  # still in use: the sender keeps sending inline meanwhile
        self._incoming.release(self._lease_seq)
        self._lease = None

    # --8<-- [end:release_views]

    def close(self) -> None:
        """Close the regions, and let go of the mapping the last message's views came from.

        Nothing is taken from a view: one still alive keeps that mapping (and the one
        descriptor of the memfd that Python's mmap holds) until the last such view goes.
        """
        self._lease = None
        for region in (self._outgoing, self._incoming):
            if region is not None:
                region.close()

    def _pack(self, skeleton: bytes, buffers: list[memoryview]) -> list[bytes | memoryview]:
        lengths = [b.nbytes for b in buffers]
        offsets = self._offsets_in_lease(buffers)
        if offsets is not None and self._incoming is not None:  # views of what we received
            head = _HEAD.pack(0, _RETURNED, len(buffers), self._lease_seq, len(skeleton))
            spans = b"".join(map(_LENGTH.pack, lengths)) + b"".join(map(OFFSET.pack, offsets))
            message = head + spans + skeleton
            if len(message) <= self.options.max_frame:  # (else send_frame refuses it)
                self._incoming.note_returned()  # before it is sent: see Region.is_free
                return [message]
        total = sum(aligned(n) for n in lengths)
        region = self._outgoing
        fits = region is not None and _REGION_MIN <= total <= region.max_size
        if region is not None and fits and region.is_free():
            data = region.claim(total)  # Unsendable over the budget: nothing is sent
            offset = 0
            for buffer, n in zip(buffers, lengths, strict=True):
                data[offset : offset + n] = buffer
                offset += aligned(n)
            data.release()
            head = _HEAD.pack(0, _IN_REGION, len(buffers), region.sent, len(skeleton))
            return [head + b"".join(_LENGTH.pack(n) for n in lengths) + skeleton]
        head = _HEAD.pack(0, _INLINE, len(buffers), 0, len(skeleton))
        return [head + b"".join(_LENGTH.pack(n) for n in lengths) + skeleton, *buffers]

    def _offsets_in_lease(self, buffers: list[memoryview]) -> list[int] | None:
        """Where the buffers lie in the last message received, if they are all views of it."""
        lease = None if self._lease is None else self._lease()  # held while we look, no longer
        return None if lease is None else offsets_in(lease, self._lease_size, buffers)

    def _unpack(self, payload: memoryview, copy: bool) -> Any:
        try:
            _, where, count, seq, skeleton_size = _HEAD.unpack_from(payload)
        except struct.error:
            raise ProtocolError("buffer message shorter than its header") from None
        lengths_end = _HEAD.size + count * _LENGTH.size
        start = lengths_end + (count * OFFSET.size if where == _RETURNED else 0)
        if where not in (_INLINE, _IN_REGION, _RETURNED) or start + skeleton_size > len(payload):
            raise ProtocolError("malformed buffer message header")
        if start + skeleton_size > self.options.max_frame:
            raise ProtocolError("a buffer message whose skeleton exceeds max_frame")
        lengths = [_LENGTH.unpack_from(payload, _HEAD.size + 8 * i)[0] for i in range(count)]
        if sum(lengths) > self.options.max_buffer_bytes:
            raise ProtocolError("a buffer message whose buffers exceed max_buffer_bytes")
        skeleton = bytes(payload[start : start + skeleton_size])
        if where == _RETURNED:  # views of our own region message (copied out if copy)
            views = returned_views(self._outgoing, payload, lengths_end, seq, lengths)
            return _restore(self.codec.decode(skeleton), views, "copy" if copy else "view")
        step: Callable[[int], int] = aligned
        if where == _INLINE:
            data, step = payload[start + skeleton_size :], _unaligned
        elif self._incoming is None:
            raise ProtocolError("peer sent a shared-memory message on a channel without a region")
        elif self._lease is not None:  # views of the last message are alive (see release_views)
            raise ProtocolError(
                f"peer wrote region message {seq} before message {self._lease_seq} was "
                "released: it broke the overwrite rule, and views of that message may have changed"
            )
        else:
            size = sum(aligned(n) for n in lengths)
            if copy:
                data = self._incoming.read(size)
            else:
                lease = self._incoming.lease(size)
                self._lease, self._lease_seq, self._lease_size = weakref.ref(lease), seq, size
                data = memoryview(lease).cast("B")[HEADER_SIZE:]
                del lease  # the views keep it alive, and nothing else may
        if sum(step(n) for n in lengths) > len(data):
            raise ProtocolError("buffer message announces more bytes than it carries")
        # A big TCP frame arrives in a bytearray of its own: arrays may keep its bytes.
        owned = where == _INLINE and isinstance(payload.obj, bytearray | mmap.mmap)
        mode = "view" if not copy else "owned" if owned else "copy"
        views, offset = [], 0
        for n in lengths:
            view = data[offset : offset + n]
            views.append(view if owned else view.toreadonly())
            offset += step(n)
        del data  # only the views (and what is made from them) may keep a mapping alive
        msg = _restore(self.codec.decode(skeleton), views, mode)
        if where == _IN_REGION and copy:  # all copied out: the sender may reuse the region
            self._incoming.release(seq)  # type: ignore[union-attr]
        return msg


def _unaligned(n: int) -> int:
    return n


def _extract(value: Any, buffers: list[memoryview]) -> Any:
    """The skeleton of ``value``: each buffer replaced by a placeholder, appended to ``buffers``."""
    if isinstance(value, dict):
        if PLACEHOLDER in value:
            raise Unsendable(f"a dict key {PLACEHOLDER!r} is reserved in messages with buffers")
        return {k: _extract(v, buffers) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_extract(v, buffers) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, str | int | float | bool | set | frozenset) or value is None:
        return value
    placeholder, view = describe(value)
    placeholder[PLACEHOLDER] = len(buffers)
    buffers.append(view)
    return placeholder


def _restore(skeleton: Any, views: list[memoryview], mode: str) -> Any:
    """Put the buffers back where their placeholders are (each shared part once, no recursion)."""

    def make(node: Any, items: list[Any]) -> Any:
        if type(node) is not dict:
            return items if type(node) is list else tuple(items)
        if PLACEHOLDER in node:
            return rebuild(node, views, mode)
        return dict(zip(node, items, strict=True))

    return bottom_up(skeleton, make)


def _size(n: int) -> str:
    """A byte count for a person: ``1.5 GiB``, ``640 KiB``, ``12 bytes``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3g} {unit}"
    return f"{n} bytes"
