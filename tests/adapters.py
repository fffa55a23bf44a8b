"""The seam between the tests and the code under test.

Tests reach ``miniray`` only through the public API or through these few functions,
so a learner's own implementation of a stage is tested unchanged as long as it keeps
the public API and these hooks working (compare CS336's adapters).
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import miniray
from miniray.wire_options import WireOptions

HEADER = struct.Struct("!QB")  # length, kind: the stage 1 wire format
MESSAGE_KIND = 0


def channel_pair(max_frame: int = 1 << 20) -> tuple[miniray.Channel, socket.socket]:
    """A Channel and the raw socket at its other end, for feeding it bytes."""
    ours, theirs = socket.socketpair()
    return miniray.Channel(ours, options=WireOptions(max_frame)), theirs


def frame(payload: bytes, kind: int = MESSAGE_KIND, length: int | None = None) -> bytes:
    """Encode one frame by hand; ``length`` may lie about the payload size."""
    return HEADER.pack(len(payload) if length is None else length, kind) + payload


def raw_socket(handle: Any) -> socket.socket:
    """The socket under a worker's handle, to write bytes that break the protocol."""
    sock: socket.socket = handle._sock
    return sock


def frame_tag_size() -> int:
    """Bytes of MAC that end every frame after a TCP handshake (0 where there is none)."""
    try:
        from miniray.frame_mac import TAG_SIZE
    except ImportError:  # a stage without frame MACs
        return 0
    return TAG_SIZE


def frames_from(handle: Any, payloads: list[bytes]) -> bytes:
    """MESSAGE frames for ``payloads``, sealed by ``handle``'s frame MAC if it has one.

    What ``handle.send`` would write, built in bulk: for tests that must outpace a reader.
    """
    frame_auth = getattr(handle, "_frame_auth", None)
    if frame_auth is None:
        return b"".join(frame(p) for p in payloads)
    return b"".join(frame(p + frame_auth.seal(MESSAGE_KIND, p)) for p in payloads)


def client_frames_before_messages() -> int:
    """Frames a RemoteWorker sends after the handshake, before the user's first message.

    From stage 5 on, the client proposes its codec in one frame (inside the MAC'd session).
    """
    return 1 if hasattr(miniray, "CodecRefused") else 0
