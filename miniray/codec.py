"""Codecs: how a message becomes bytes. JSON by default, or marshal when both ends agree.

New in this stage. A ``Channel`` encodes each MESSAGE frame with its codec:

* ``json`` (the default, as in every earlier stage): portable and readable, but tuples
  arrive as lists, dict keys as strings, and bytes and sets cannot be sent at all;
* ``marshal``: Python's own format for plain data; faster, and it keeps tuples, bytes,
  sets, int keys and big ints. Both ends must be Python of the same version.

``marshal.loads`` is not safe on untrusted bytes: it builds code objects, and its own
documentation warns that crafted data can crash it. So a payload is *scanned* first
(`check_plain_marshal`): only the type codes of plain data are allowed, every count must
fit in the bytes that are left, and the value must end exactly at the payload's end.
Only then does ``marshal.loads`` see it. Over TCP the codec is agreed on *after* the
peer has authenticated, so a stranger never reaches the decoder at all.
"""

from __future__ import annotations

import json
import marshal
import re
import struct
from typing import Any, Protocol

from .errors import MiniRayError, ProtocolError

MARSHAL_VERSION = 4  # the format of Python 3.4 on; each Python reads the versions it writes
MAX_DEPTH = 1000  # containers inside containers, like the JSON decoder's recursion limit


class CodecRefused(MiniRayError):
    """The server does not speak the codec this client asked for (see its ``codecs``).

    Attributes:
        codec: The codec the client asked for.
        server_codecs: The codecs the server speaks (empty if it did not say).
    """

    def __init__(self, message: str, *, codec: str, server_codecs: tuple[str, ...]) -> None:
        super().__init__(message)
        self.codec = codec
        self.server_codecs = server_codecs


class Codec(Protocol):
    """Turns one message into bytes and back."""

    name: str

    def encode(self, msg: Any) -> bytes:
        """The message's bytes; TypeError if it holds something the codec cannot carry."""
        ...

    def decode(self, payload: bytes | bytearray) -> Any:
        """The message; ProtocolError for anything that is not a valid payload."""
        ...


# --8<-- [start:codecs]
class JsonCodec:
    """JSON: any peer can read it; tuples arrive as lists, dict keys as strings."""

    name = "json"
    _encoder = json.JSONEncoder(separators=(",", ":"))  # made once: dumps() builds one a call
    _decoder = json.JSONDecoder()

    def encode(self, msg: Any) -> bytes:
        try:
            return self._encoder.encode(msg).encode()
        except (TypeError, ValueError) as e:
            raise TypeError(f"message is not JSON-serialisable: {e}") from e

    def decode(self, payload: bytes | bytearray) -> Any:
        try:
            return self._decoder.decode(payload.decode())
        except (ValueError, RecursionError) as e:  # bad UTF-8 and bad JSON are ValueErrors
            raise ProtocolError(f"garbled message: {e}") from None


class MarshalCodec:
    """marshal: plain Python data, types kept; the bytes are checked before they are loaded."""

    name = "marshal"

    def encode(self, msg: Any) -> bytes:
        try:
            payload = marshal.dumps(msg, MARSHAL_VERSION)
        except ValueError as e:  # "unmarshallable object"
            raise TypeError(f"message is not plain data for marshal: {e}") from e
        return payload  # a code object inside is refused by the peer, on decode

    def decode(self, payload: bytes | bytearray) -> Any:
        check_plain_marshal(payload)
        try:
            return marshal.loads(payload)
        except (ValueError, EOFError, TypeError) as e:  # TypeError: an unhashable set item
            raise ProtocolError(f"garbled marshal message: {e}") from None


# --8<-- [end:codecs]

JSON = JsonCodec()
MARSHAL = MarshalCodec()
CODECS: dict[str, Codec] = {"json": JSON, "marshal": MARSHAL}


def get_codec(name: str) -> Codec:
    """The codec called ``name``; ValueError (listing the known ones) for any other."""
    try:
        return CODECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown codec {name!r}; known: {', '.join(CODECS)}") from None


# --8<-- [start:check_plain_marshal]
def check_plain_marshal(payload: bytes | bytearray) -> None:
    """Raise unless ``payload`` is exactly one marshalled value made of plain data.

    Plain data: None, bools, ints, floats, str, bytes, and tuples, lists, dicts, sets and
    frozensets of them. Code objects, complex numbers, Ellipsis and anything else are
    refused by type code, before ``marshal.loads`` would build them.

    Raises:
        ProtocolError: Not plain data, truncated, a count larger than the bytes left,
            nested deeper than ``MAX_DEPTH``, or bytes after the value.
    """
    _scan(memoryview(payload).cast("B"))


# --8<-- [end:check_plain_marshal]

_FLAG_REF = 0x80  # set on a type code when later parts of the stream may refer back to it
_FIXED = {ord("N"): 0, ord("F"): 0, ord("T"): 0, ord("i"): 4, ord("g"): 8, ord("r"): 4}
_SIZED_32 = frozenset(b"stuaA")  # 4-byte length, then that many bytes
_SIZED_8 = frozenset(b"zZ")  # 1-byte length (short ASCII strings)
_TUPLE_32, _TUPLE_8, _DICT = ord("("), ord(")"), ord("{")
_COLLECTIONS_32 = frozenset(b"[<>")  # list, set, frozenset: 4-byte count
_LONG, _NULL, _REF, _FLOAT = ord("l"), ord("0"), ord("r"), ord("g")
_INT32 = struct.Struct("<i")
_FLOAT_RUN = re.compile(rb"(?:g.{8})+", re.DOTALL)  # the common case: many floats in a row


def _scan(data: memoryview) -> None:
    """Walk the marshal stream's type codes, with an explicit stack (no recursion).

    Each open container is ``[items left (-1: a dict, until its end code), its ref index]``.
    ``refs`` follows marshal's table of objects that later bytes may refer back to: a
    reference to a container that is still open would make a cycle, which is refused.
    """
    end = len(data)
    pos = 0
    refs: list[bool] = []  # per back-reference index: True while that container is open
    stack: list[list[int]] = [[1, -1]]
    while stack:
        top = stack[-1]
        if top[0] == 0:
            _close(stack.pop(), refs)
            continue
        if pos >= end:
            raise ProtocolError("marshal data ends in the middle of a value")
        flagged, code = data[pos] & _FLAG_REF, data[pos] & ~_FLAG_REF
        pos += 1
        if top[0] > 0:
            top[0] -= 1
        elif code == _NULL:  # a dict's end
            _close(stack.pop(), refs)
            continue
        ref_index = -1
        if flagged:
            ref_index = len(refs)
            refs.append(False)
        if code in _FIXED:
            if code == _REF:
                index = _INT32.unpack_from(data, pos)[0] if pos + 4 <= end else -1
                if 0 <= index < len(refs) and refs[index]:
                    raise ProtocolError("marshal data refers to a container inside itself")
            pos += _FIXED[code]
            if code == _FLOAT and top[0] > 0:  # skip a run of floats in C, not in Python
                run = _FLOAT_RUN.match(data, pos)
                if run:
                    count = min((run.end() - pos) // 9, top[0])
                    pos += 9 * count
                    top[0] -= count
        elif code in _SIZED_32:
            pos += 4 + _count(data, pos, end, item_size=1)
        elif code in _SIZED_8:
            pos += 1 + (data[pos] if pos < end else 0)
        elif code == _LONG:
            pos += 4 + 2 * abs(_count(data, pos, end, item_size=2, signed=True))
        elif code in (_TUPLE_32, _TUPLE_8, _DICT) or code in _COLLECTIONS_32:
            if len(stack) > MAX_DEPTH:
                raise ProtocolError(f"marshal data nested deeper than {MAX_DEPTH}")
            if ref_index >= 0:
                refs[ref_index] = True
            if code == _DICT:
                stack.append([-1, ref_index])
            elif code == _TUPLE_8:
                stack.append([data[pos] if pos < end else 0, ref_index])
                pos += 1
            else:
                stack.append([_count(data, pos, end, item_size=1), ref_index])
                pos += 4
        else:
            raise ProtocolError(f"marshal type code {chr(code)!r} is not plain data; refused")
        if pos > end:
            raise ProtocolError("marshal data ends in the middle of a value")
    if pos != end:
        raise ProtocolError(f"{end - pos} bytes after the marshalled value")


def _close(container: list[int], refs: list[bool]) -> None:
    if container[1] >= 0:
        refs[container[1]] = False


def _count(data: memoryview, pos: int, end: int, *, item_size: int, signed: bool = False) -> int:
    """A 4-byte count at ``pos``, checked against the bytes that are left."""
    if pos + 4 > end:
        raise ProtocolError("marshal data ends in the middle of a count")
    count: int = _INT32.unpack_from(data, pos)[0]
    if count < 0 and not signed:
        raise ProtocolError(f"negative count {count} in marshal data")
    if abs(count) * item_size > end - pos - 4:
        raise ProtocolError(f"marshal data announces {abs(count)} items; too few bytes left")
    return count
