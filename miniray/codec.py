# @5+
"""Codecs: how a message becomes bytes. JSON by default, or marshal when both ends agree.

A ``Channel`` encodes each MESSAGE frame with its codec:

* ``json`` (the default): portable and readable, but tuples
  arrive as lists, dict keys as strings, and bytes and sets cannot be sent at all;
* ``marshal``: Python's own format for plain data; faster, and it keeps tuples, bytes,
  sets, int keys and big ints. Both ends must be Python of the same version.

``marshal.loads`` is not safe on untrusted bytes: it builds code objects, and its own
documentation warns that crafted data can crash it. So a payload is *scanned* first
(`check_plain_marshal`): only the type codes of plain data are allowed, every count must
fit in the bytes that are left, and the value must end exactly at the payload's end.
Only then does ``marshal.loads`` see it. The scan also bounds what the value costs: its
depth, its back-references, and the hashing of its sets' and dicts' keys (see
``decode_limits.py``). Over TCP the codec is agreed on *after* the peer has authenticated,
so a stranger never reaches the decoder at all.
"""

from __future__ import annotations

import marshal
import re
import struct
from typing import Any, Protocol

from .decode_limits import MAX_DEPTH, as_marked_lists, check_depth, rebuild_hashed
from .errors import ProtocolError, Unsendable
from .wire import decode_json, encode_message

MARSHAL_VERSION = 4  # the format of Python 3.4 on; each Python reads the versions it writes
MAX_WEIGHT = 4  # a marshalled value, references counted out, weighs at most 4x its bytes


class Codec(Protocol):
    """Turns one message into bytes and back."""

    name: str

    def encode(self, msg: Any) -> bytes:
        """The message's bytes; `Unsendable` if it holds something the codec cannot carry."""
        ...

    def decode(self, payload: bytes | bytearray) -> Any:
        """The message; ProtocolError for anything that is not a valid payload."""
        ...


# --8<-- [start:codecs]
class JsonCodec:
    """JSON: any peer can read it; tuples arrive as lists, dict keys as strings."""

    name = "json"

    def encode(self, msg: Any) -> bytes:
        return encode_message(msg)  # the frames of stages 1-4 were JSON already

    def decode(self, payload: bytes | bytearray) -> Any:
        try:
            value = decode_json(payload.decode())
        except (ValueError, RecursionError) as e:  # bad UTF-8 and bad JSON are ValueErrors
            raise ProtocolError(f"garbled message: {e}") from None
        if payload.count(b"[") + payload.count(b"{") > MAX_DEPTH:  # else it cannot be deeper
            check_depth(value)
        return value


class MarshalCodec:
    """marshal: plain Python data, types kept; the bytes are checked before they are loaded."""

    name = "marshal"

    def encode(self, msg: Any) -> bytes:
        try:
            payload = marshal.dumps(msg, MARSHAL_VERSION)
        except ValueError as e:  # "unmarshallable object", or nested too deeply
            raise Unsendable(f"message is not plain data for marshal: {e}") from e
        return payload  # a code object inside is refused by the peer, on decode

    def decode(self, payload: bytes | bytearray) -> Any:
        loadable = check_plain_marshal(payload)
        try:
            value = marshal.loads(loadable)
        except (ValueError, EOFError, TypeError) as e:  # TypeError: an unhashable set item
            raise ProtocolError(f"garbled marshal message: {e}") from None
        return value if loadable is payload else rebuild_hashed(value)


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
def check_plain_marshal(payload: bytes | bytearray) -> bytes | bytearray:
    """Raise unless ``payload`` is exactly one marshalled value made of plain data; return
    the bytes to give ``marshal.loads``.

    Plain data: None, bools, ints, floats, str, bytes, and tuples, lists, dicts, sets and
    frozensets of them. Code objects, complex numbers, Ellipsis and anything else are
    refused by type code, before ``marshal.loads`` would build them.

    The value must cost about what its bytes do (see ``decode_limits.py``): counted with
    each back-reference to a container as that container's bytes again, it may weigh at
    most ``MAX_WEIGHT`` times the payload (plus 1 MiB). A set, frozenset or dict with a
    key whose hash a peer can choose (anything but a string, bytes, a small int, None or
    a bool) is written as a marked list in the bytes returned, for `rebuild_hashed` to
    check and build; without one, the payload itself is returned.

    Raises:
        ProtocolError: Not plain data, truncated, a count larger than the bytes left,
            nested deeper than ``MAX_DEPTH``, too heavy, or bytes after the value.
    """
    # The walk uses a stack, not recursion. The container being read is (left, ref, keys_at,
    # chosen): its items left (for a dict, which ends with a NULL code: -1 minus the items
    # read), its back-reference number, where it starts if it is a set, frozenset or dict
    # (else -1), and whether one of its keys has a hash that a peer can choose.
    # marshal numbers a value whose type code has _FLAG_REF set, so that later bytes can
    # refer back to it; a reference to a container still open would make a cycle. The
    # numbering must be marshal's own: None, True, False and references take no number
    # even when flagged, and counting them would aim the open-container check elsewhere.
    data, end, pos = payload, len(payload), 0
    outer: list[tuple[int, int, int, bool]] = []  # the open containers around the current one
    left, ref, keys_at, chosen = 1, -1, -1, False  # the outermost "container" holds the value
    flagged = 0  # values numbered so far
    open_refs: dict[int, tuple[int, int]] = {}  # open containers: number -> (start, extra)
    weights: dict[int, int] = {}  # a numbered container's bytes, references counted out
    extra = 0  # what the references read so far add to the bytes, counted out
    choosable: set[int] = set()  # the numbers of values whose hash a peer can choose
    hashed: list[tuple[int, int, int]] = []  # sets and dicts with such keys: as_marked_lists
    dict_items = 0  # the item count of the dict that ended last
    while True:
        if left == 0:  # the current container is complete
            if ref >= 0:
                begun, extra_then = open_refs.pop(ref)
                weights[ref] = pos - begun + extra - extra_then
            if chosen:
                hashed.append((keys_at, pos, dict_items))
            if not outer:
                break
            left, ref, keys_at, chosen = outer.pop()
            continue
        if pos >= end:
            raise ProtocolError("marshal data ends in the middle of a value")
        code = data[pos]
        pos += 1
        if left > 0:
            left -= 1
        elif (code & ~_FLAG_REF) == _NULL:  # a dict's end
            if left % 2 == 0:  # an odd number of items: marshal would drop the last key
                raise ProtocolError("marshal data has a dict key without a value")
            left, dict_items = 0, -1 - left
            continue
        else:
            left -= 1
        number = -1
        flag, code = code & _FLAG_REF, code & ~_FLAG_REF
        kind = _KINDS[code]
        if flag and code not in _UNNUMBERED:
            number = flagged
            flagged += 1
            if code in _CHOOSABLE:
                choosable.add(number)
        if keys_at >= 0 and code in _CHOOSABLE and (left >= 0 or left % 2 == 0):
            chosen = True  # a key (a dict's keys are its even items) with a chosen hash
        if kind == _SHORT_STR:
            pos += 1 + (data[pos] if pos < end else 0)
        elif kind == _FIXED:
            size = _FIXED_SIZES[code]
            pos += size
            run = _RUNS.get(code) if left > 0 else None
            if run is not None and (match := run.match(data, pos)):  # a run, skipped in C
                count = min((match.end() - pos) // (1 + size), left)  # each: code and size
                pos += count * (1 + size)
                left -= count
        elif kind == _SIZED:
            pos += 4 + _count(data, pos, end, item_size=1)
        elif kind == _CONTAINER:
            if len(outer) >= MAX_DEPTH:
                raise ProtocolError(f"marshal data nested deeper than {MAX_DEPTH}")
            outer.append((left, ref, keys_at, chosen))
            ref, keys_at, chosen = number, pos - 1 if code in _HASHED else -1, False
            if number >= 0:
                open_refs[number] = (pos - 1, extra)
            if code == _DICT:
                left = -1
            elif code == _TUPLE_8:
                left = data[pos] if pos < end else 0
                pos += 1
            else:
                left = _count(data, pos, end, item_size=1)
                pos += 4
        elif kind == _REFERENCE:
            index = _INT32.unpack_from(data, pos)[0] if pos + 4 <= end else -1
            if index in open_refs:
                raise ProtocolError("marshal data refers to a container inside itself")
            if index in weights:  # a container, named again: its bytes count again
                extra += weights[index]
                if extra > (MAX_WEIGHT - 1) * end + _WEIGHT_ALLOWANCE:
                    raise ProtocolError(f"marshal data weighs over {MAX_WEIGHT}x its bytes")
            if keys_at >= 0 and index in choosable and (left >= 0 or left % 2 == 0):
                chosen = True  # the same, named by reference
            pos += 4
        elif kind == _LONG:
            pos += 4 + 2 * abs(_count(data, pos, end, item_size=2, signed=True))
        else:
            raise ProtocolError(f"marshal type code {chr(code)!r} is not plain data; refused")
        if pos > end:
            raise ProtocolError("marshal data ends in the middle of a value")
    if pos != end:
        raise ProtocolError(f"{end - pos} bytes after the marshalled value")
    return as_marked_lists(payload, hashed) if hashed else payload


# --8<-- [end:check_plain_marshal]

_FLAG_REF = 0x80  # set on a type code when later parts of the stream may refer back to it
_NULL, _DICT, _TUPLE_8 = ord("0"), ord("{"), ord(")")
_WEIGHT_ALLOWANCE = 1 << 20  # what references may add to any payload, however small
_HASHED = frozenset(b"<>{")  # set, frozenset, dict: marshal.loads hashes their keys
# Keys whose hash a peer can choose: big ints and floats (hashed mod 2**61 - 1, no
# secret), and tuples and frozensets (hashed from their items). A small int ('i') is its
# own hash, and str and bytes hashes have a per-process secret.
_CHOOSABLE = frozenset(b"lg()>")
_INT32 = struct.Struct("<i")
# What each type code is, by how the walk steps over it; 0 (refused) for anything else.
_SHORT_STR, _FIXED, _SIZED, _CONTAINER, _REFERENCE, _LONG = range(1, 7)
_KINDS = bytearray(128)
for _codes, _kind in [
    (b"zZ", _SHORT_STR),  # short ASCII strings: a 1-byte length, then the characters
    (b"NFTig", _FIXED),  # None, False, True: nothing follows; int: 4 bytes; float: 8
    (b"stuaA", _SIZED),  # bytes and strings: a 4-byte length, then that many bytes
    (b"()[<>{", _CONTAINER),  # tuples (a 4- or 1-byte count), list, set, frozenset, dict
    (b"r", _REFERENCE),  # a 4-byte index: a value seen before
    (b"l", _LONG),  # a big int: a signed 4-byte count of 2-byte digits
]:
    for _code in _codes:
        _KINDS[_code] = _kind
_UNNUMBERED = frozenset(b"NFTr")  # marshal's reader gives these no number, flag or not
_FIXED_SIZES = {ord("N"): 0, ord("F"): 0, ord("T"): 0, ord("i"): 4, ord("g"): 8}
# The common case of big messages, lists of floats or ints: a run of them is skipped in C.
_RUNS = {
    ord("g"): re.compile(rb"(?:g.{8})+", re.DOTALL),
    ord("i"): re.compile(rb"(?:i.{4})+", re.DOTALL),
}


def _count(
    data: bytes | bytearray, pos: int, end: int, *, item_size: int, signed: bool = False
) -> int:
    """A 4-byte count at ``pos``, checked against the bytes that are left."""
    if pos + 4 > end:
        raise ProtocolError("marshal data ends in the middle of a count")
    count: int = _INT32.unpack_from(data, pos)[0]
    if count < 0 and not signed:
        raise ProtocolError(f"negative count {count} in marshal data")
    if abs(count) * item_size > end - pos - 4:
        raise ProtocolError(f"marshal data announces {abs(count)} items; too few bytes left")
    return count
