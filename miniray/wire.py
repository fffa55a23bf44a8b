"""The wire format: length-prefixed frames of JSON, and the three kinds of frame.

    +----------------------+---------+------------------+
    | length: 8 bytes (BE) | kind: 1 | payload: length  |
    +----------------------+---------+------------------+

* MESSAGE: a user's message, any JSON value.
* ERROR: the exception a work function raised:
  ``{"type", "message", "traceback", "pid", "host"}``.
* EXIT: ``{"code": n}``, the last frame a worker sends before it exits, with
  ``"message"`` too when the worker called ``sys.exit("some text")``.

A worker sends ERROR and EXIT, never receives them: on a worker's own handle they are a
ProtocolError, as is a report whose fields have the wrong types.

Every payload is JSON, so nothing that arrives from a socket is ever unpickled: a
peer can send us wrong data, but never code to run. ``channel.py`` moves the frames.
"""

from __future__ import annotations

import json
import json.encoder
import os
import socket
import struct
import traceback
from collections.abc import Callable
from typing import Any

from .errors import ProtocolError, RemoteError, Unsendable, WorkerDied, describe_returncode

# --8<-- [start:format]
HEADER = struct.Struct("!QB")  # payload length (8 bytes, big-endian), frame kind (1 byte)
MESSAGE, ERROR, EXIT = 0, 1, 2  # frame kinds
# Decoding costs more than the bytes: up to ~50x a frame's size in memory (for nested
# one-element lists; ~27x for a list of empty dicts) and ~0.3 s of CPU per MiB. 4 MiB
# caps the worst a peer can make us spend on one message near 200 MiB and 1.3 s
# (python benchmarks/amplification.py measures it); plain JSON data costs 2-15x.
DEFAULT_MAX_FRAME = 4 * 1024 * 1024  # bytes; pass max_frame= to change it
# --8<-- [end:format]

_DECODER = json.JSONDecoder()
_JSON_SPACE = " \t\n\r"  # the only characters JSON allows around a value


def compact_json_encoder(default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """A function that JSON-encodes a value without spaces: made once, for every message
    (``json.dumps`` with options makes a new encoder on every call).

    ``default`` is called for a value JSON has no form for, as in ``json.dumps``.
    """
    # check_circular=False: a message that holds itself then ends in RecursionError (as one
    # nested too deeply does), and no message pays for a table of every container it holds
    # (measured: a call's request, 3 containers, 3.9 -> 3.0 us to encode).
    encoder = json.JSONEncoder(separators=(",", ":"), check_circular=False, default=default)
    # JSONEncoder.encode makes json's C encoder anew for every value (measured: 1.1 of the
    # 2.8 us of a call's request); made here once, from the same settings. Without json's C
    # part (c_make_encoder is None), encode() is the pure-Python encoder anyway.
    make_c_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_c_encoder is None:
        return encoder.encode
    chunks = make_c_encoder(
        None,  # markers: no circular check
        encoder.default,
        json.encoder.encode_basestring_ascii,
        None,  # indent
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )
    return lambda value: "".join(chunks(value, 0))


_encode_json = compact_json_encoder()


def encode_message(msg: Any) -> bytes:
    """JSON-encode a user's message.

    Raises:
        Unsendable: ``msg`` holds something JSON cannot carry, or holds itself, or is
            nested too deeply for the encoder.
    """
    try:
        return _encode_json(msg).encode()
    except RecursionError:
        raise Unsendable("message nested too deeply to encode (or it holds itself)") from None
    except (TypeError, ValueError) as e:
        raise Unsendable(f"message is not JSON-serialisable: {e}") from e


def decode_json(text: str) -> Any:
    """The one JSON value ``text`` holds (JSON's spaces around it allowed); else ValueError."""
    value_text = text.strip(_JSON_SPACE)  # (what decode() matches twice, with a regex)
    value, end = _DECODER.raw_decode(value_text)
    if end != len(value_text):
        raise ValueError("extra data after the JSON value")
    return value


def decode_message(payload: bytes) -> Any:
    """Decode a payload; garbage (bad UTF-8, bad JSON, absurd nesting) is a ProtocolError."""
    try:
        return decode_json(payload.decode())  # json.loads(bytes) first sniffs the encoding
    except (ValueError, RecursionError) as e:  # bad UTF-8 and bad JSON are both ValueErrors
        raise ProtocolError(f"garbled message: {e}") from None


def encode_error(e: BaseException) -> bytes:
    """Describe an exception raised in this process, for the ERROR frame."""
    return encode_message(
        {
            "type": type(e).__qualname__,
            "message": safe_str(e),
            "traceback": "".join(traceback.format_exception(e)),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
    )


def decode_error(payload: bytes) -> RemoteError:
    """The RemoteError an ERROR frame describes; a malformed one is a ProtocolError."""
    info = decode_message(payload)
    fields = {"type": str, "message": str, "traceback": str, "pid": int, "host": str}
    if not isinstance(info, dict) or not all(_is(info.get(k), t) for k, t in fields.items()):
        raise ProtocolError(f"malformed error frame: {_preview(payload)}")
    return RemoteError(
        info["type"], info["message"], info["traceback"], pid=info["pid"], host=info["host"]
    )


def encode_exit(code: int, message: str | None = None) -> bytes:
    """The EXIT frame's payload; ``message`` is what ``sys.exit("...")`` said, if anything."""
    return encode_message({"code": code} if message is None else {"code": code, "message": message})


def decode_exit(payload: bytes, pid: int) -> WorkerDied:
    """The WorkerDied an EXIT frame from worker ``pid`` stands for."""
    info = decode_message(payload)
    if not (
        isinstance(info, dict)
        and _is(info.get("code"), int)
        and isinstance(info.get("message", ""), str)
    ):
        raise ProtocolError(f"malformed exit frame: {_preview(payload)}")
    code: int = info["code"]
    said = f" ({info['message']})" if info.get("message") else ""
    message = f"worker pid {pid} {describe_returncode(code)}{said}; no more messages"
    return WorkerDied(message, pid=pid, returncode=code)


# --8<-- [start:take_frame]
def take_frame(buffer: bytearray, max_frame: int) -> tuple[int, bytes] | None:
    """Cut the first complete frame off ``buffer``; None if it is not all here yet.

    Returns:
        ``(kind, payload)``, removed from the front of ``buffer``.

    Raises:
        ProtocolError: The header announces more than ``max_frame`` bytes.
    """
    if len(buffer) < HEADER.size:
        return None
    length, kind = HEADER.unpack_from(buffer)
    if length > max_frame:
        raise ProtocolError(f"peer announced a {length}-byte frame; max_frame={max_frame}")
    end = HEADER.size + length
    if len(buffer) < end:
        return None
    payload = bytes(buffer[HEADER.size : end])
    del buffer[:end]
    return kind, payload


# --8<-- [end:take_frame]


def _is(value: object, kind: type) -> bool:
    """``isinstance``, except that a bool is not an int (JSON true is not a pid)."""
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _preview(payload: bytes) -> str:
    return repr(payload[:100]) + ("..." if len(payload) > 100 else "")


def safe_str(e: BaseException) -> str:
    """``str(e)``, or a placeholder naming its type when ``str`` itself fails."""
    try:
        return str(e)
    except Exception:  # an exception whose __str__ fails must still be reported
        return f"<{type(e).__qualname__}: str() failed>"
