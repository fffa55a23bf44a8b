"""WireOptions: how one channel's messages travel, as one object from where the user sets
them (a ``Worker``'s arguments, say) down to each `Channel`, instead of one argument per
setting per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import check_size
from .wire import DEFAULT_MAX_FRAME

# @5+ {
# Two limits guard different things. max_frame bounds the encoded message, whose decoding
# can cost many times its size (see wire.py): the amplification guard, small on purpose.
# max_buffer_bytes bounds the raw buffers (bytes, arrays, tensors) beside one message, one
# byte in for one byte out: 1 GiB carries real work (a model's shard, a big batch) and still
# stops one message from filling this machine's memory. A peer's announced size is checked
# before anything is allocated, and a big message's memory is taken from the kernel as its
# bytes arrive, not when it is announced (big_frames.py).
DEFAULT_MAX_BUFFER_BYTES = 1 << 30
# @}


@dataclass(frozen=True)
class WireOptions:
    """How a channel's messages travel.

    Args:
        max_frame: Largest message, in encoded bytes, either way.
        max_buffer_bytes: Largest total of raw buffers beside one message.  # @5+
        codec: What messages are encoded with: ``"json"`` or ``"marshal"``.  # @5+
        set_on: The class whose arguments the user sets these with, named in the
            errors that a limit raises (``"Worker"``, ``"Cluster"``...).
    """

    max_frame: int = DEFAULT_MAX_FRAME
    max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES  # @5+
    codec: str = "json"  # @5+
    set_on: str = "Worker"

    def __post_init__(self) -> None:
        check_size("max_frame", self.max_frame, 1)
        check_size("max_buffer_bytes", self.max_buffer_bytes, 0)  # @5+

    def knob(self, name: str) -> str:
        """How the user raises the limit ``name``, for an error message."""
        where = f"pass {name}= to {self.set_on}(...)"
        if self.set_on == "WorkerServer":  # (also started by its command line)  # @2+
            where += f" or --{name.replace('_', '-')} to python -m miniray.worker_server"  # @2+
        return where


DEFAULT_OPTIONS = WireOptions()  # (frozen: one object can be every default)
