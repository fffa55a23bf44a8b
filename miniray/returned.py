# @5+
"""Views sent back by reference: an echo between local processes copies its bytes once.

A local Worker's child that answers with views of the message it received (say
``handle.send(handle.recv(copy=False))``) would copy their bytes into its own region,
though they lie in the parent's region, which the parent maps too. So when every buffer
of a message is a view of the last region message received, the message says where they
lie instead, and carries no bytes:

    0x00 | where=2 | count: 4 | seq: 8 | skeleton length: 4 | count x length: 8 |
    count x offset: 8 | skeleton

``seq`` is the region message they are part of, each offset counts from the start of its
data part. The sender of that message rebuilds them from its own mapping; its region stays
claimed while a reference is on its way or a view made from one lives (`Region.is_free`).

A buffer's address is read with numpy (``ctypes`` reads only writable buffers' addresses,
and the views are read-only): where numpy is not loaded, the buffers are copied back as
before. An empty buffer lies nowhere: it is carried as offset 0.
"""

from __future__ import annotations

import ctypes
import struct
import sys

from .errors import ProtocolError
from .region import HEADER_SIZE, Region

OFFSET = struct.Struct("!Q")


def offsets_in(
    lease: ctypes.Array[ctypes.c_ubyte], size: int, buffers: list[memoryview]
) -> list[int] | None:
    """Receiver: where each buffer lies in the first ``size`` data bytes of ``lease``, or
    None unless they all do (and at least one is not empty).

    The caller holds ``lease``, so its mapping (and nothing else) stays at those addresses
    while we look.
    """
    numpy = sys.modules.get("numpy")
    if numpy is None or not any(buffer.nbytes for buffer in buffers):
        return None
    start = ctypes.addressof(lease) + HEADER_SIZE
    offsets = []
    for buffer in buffers:
        if not buffer.nbytes:
            offsets.append(0)
            continue
        offset = numpy.frombuffer(buffer, numpy.uint8).ctypes.data - start
        if not 0 <= offset <= size - buffer.nbytes:
            return None
        offsets.append(offset)
    return offsets


def returned_views(
    region: Region | None,
    payload: memoryview,
    at: int,
    seq: int,
    lengths: list[int],
) -> list[memoryview]:
    """Sender: read-only views of the buffers a reference names (offsets from ``at`` on),
    made from a new lease, which keeps our region from being overwritten while any of them
    (or a copy of them still under way) lives.

    Raises:
        ProtocolError: The channel has no region of ours, or the reference is to another
            message than the one the region holds, or to bytes outside it.
    """
    if region is None:
        raise ProtocolError("peer sent back a reference to a region, on a channel without one")
    offsets = [OFFSET.unpack_from(payload, at + OFFSET.size * i)[0] for i in range(len(lengths))]
    data = region.take_back(seq, list(zip(offsets, lengths, strict=True)))
    return [data[o : o + n].toreadonly() for o, n in zip(offsets, lengths, strict=True)]
