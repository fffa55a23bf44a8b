"""FrameAuth: what a Channel asks of the object that seals and checks its frames.

A Channel takes an optional ``frame_auth`` and calls it for every frame: ``seal`` for the tag
of a frame going out, ``check`` for one coming in. Stage 2's per-frame MAC (``frame_mac.py``)
is the one implementation; the protocol lives apart from both so that the channel and the
code that streams big frames (``big_frames.py``) can name it without importing each other.
"""

from __future__ import annotations

from typing import Protocol

from .frame_mac import StreamedTag  # @5+


class FrameAuth(Protocol):
    """Seals each frame sent and checks each frame received (stage 2's per-frame MAC)."""

    tag_size: int  # bytes of tag after each payload, counted in the frame's length

    # @1-4: def seal(self, kind: int, payload: bytes) -> bytes: ...  # the next frame's tag
    def seal(self, kind: int, *payload: bytes | memoryview) -> bytes: ...  # the next tag  # @5+

    # @1-4: def check(self, kind: int, payload: bytes, tag: bytes) -> None: ...  # or ProtocolError
    # @5+ {
    def check(self, kind: int, payload: bytes | bytearray, tag: bytes) -> None: ...  # or raise

    def sealing(self, kind: int, size: int) -> StreamedTag: ...  # the next tag, fed as it goes

    def checking(self, kind: int, size: int) -> StreamedTag: ...  # the next tag, fed as it comes

    def check_streamed(self, streamed: StreamedTag, tag: bytes) -> None: ...  # or raise

    # @}
    # @2+ {
    # whether a frame is the server's sealed report of the worker's end (see channel.py)
    def is_report(self, kind: int, payload: bytes, tag: bytes) -> bool: ...

    # @}
