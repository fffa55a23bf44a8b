"""The wire format: length-prefixed frames of JSON, and the three kinds of frame.

    +----------------------+---------+------------------+
    | length: 8 bytes (BE) | kind: 1 | payload: length  |
    +----------------------+---------+------------------+

* MESSAGE: a user's message, any JSON value.
* ERROR: the exception a work function raised:
  ``{"type", "message", "traceback", "pid", "host"}``.
* EXIT: ``{"code": n}``, the last frame a worker sends before it exits.

Every payload is JSON, so nothing that arrives from a socket is ever unpickled: a
peer can send us wrong data, but never code to run. ``channel.py`` moves the frames.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import traceback
from typing import Any

from .errors import ProtocolError, RemoteError, WorkerDied, describe_returncode

# --8<-- [start:format]
HEADER = struct.Struct("!QB")  # payload length (8 bytes, big-endian), frame kind (1 byte)
MESSAGE, ERROR, EXIT = 0, 1, 2  # frame kinds
# Decoding costs more than the bytes: up to ~50x a frame's size in memory (for nested
# one-element lists; ~27x for a list of empty dicts) and ~0.3 s of CPU per MiB. 4 MiB
# caps the worst a peer can make us spend on one message near 200 MiB and 1.3 s
# (python benchmarks/amplification.py measures it); plain JSON data costs 2-15x.
DEFAULT_MAX_FRAME = 4 * 1024 * 1024  # bytes; pass max_frame= to change it
# --8<-- [end:format]

# Made once: json.dumps(...) with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_DECODER = json.JSONDecoder()


def encode_message(msg: Any) -> bytes:
    """JSON-encode a user's message.

    Raises:
        TypeError: ``msg`` holds something JSON cannot carry.
    """
    try:
        return _ENCODER.encode(msg).encode()
    except (TypeError, ValueError) as e:
        raise TypeError(f"message is not JSON-serialisable: {e}") from e


def decode_message(payload: bytes) -> Any:
    """Decode a payload; garbage (bad UTF-8, bad JSON, absurd nesting) is a ProtocolError."""
    try:
        return _DECODER.decode(payload.decode())  # json.loads(bytes) first sniffs the encoding
    except (ValueError, RecursionError) as e:  # bad UTF-8 and bad JSON are both ValueErrors
        raise ProtocolError(f"garbled message: {e}") from None


def encode_error(e: BaseException) -> bytes:
    """Describe an exception raised in this process, for the ERROR frame."""
    return encode_message(
        {
            "type": type(e).__qualname__,
            "message": _safe_str(e),
            "traceback": "".join(traceback.format_exception(e)),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
    )


def decode_error(payload: bytes) -> RemoteError:
    """The RemoteError an ERROR frame describes."""
    info = decode_message(payload)
    try:
        return RemoteError(
            str(info["type"]),
            str(info["message"]),
            str(info["traceback"]),
            pid=int(info["pid"]),
            host=str(info["host"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(f"malformed error frame: {e!r}") from None


def encode_exit(code: int) -> bytes:
    """The EXIT frame's payload."""
    return encode_message({"code": code})


def decode_exit(payload: bytes, pid: int) -> WorkerDied:
    """The WorkerDied an EXIT frame from worker ``pid`` stands for."""
    info = decode_message(payload)
    if not isinstance(info, dict) or not isinstance(info.get("code"), int):
        raise ProtocolError("malformed exit frame")
    code: int = info["code"]
    message = f"worker pid {pid} {describe_returncode(code)}; no more messages"
    return WorkerDied(message, pid=pid, returncode=code)


def _safe_str(e: BaseException) -> str:
    try:
        return str(e)
    except Exception:  # an exception whose __str__ fails must still be reported
        return f"<{type(e).__qualname__}: str() failed>"
