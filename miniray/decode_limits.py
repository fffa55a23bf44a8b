# @5+
"""What a received message may cost: its depth, the hashing of its keys, the walks over it.

A peer chooses every byte of a message, so decoding must cost about what the bytes do.
Three things would let a small message cost much more:

* nesting: a walk that recurses meets Python's recursion limit. Both codecs refuse a
  message nested deeper than `MAX_DEPTH` (marshal's scanner as it reads, JSON after
  decoding, `check_depth`), and the walks here use a stack, not recursion;
* shared parts: marshal's back-references let a few bytes name one container many times,
  and a walk that visits each occurrence does exponential work. `bottom_up` visits each
  part once; marshal's scanner also refuses a value that, counted out, weighs much more
  than its bytes, so that the receiver's own walks stay cheap;
* colliding hashes: CPython hashes an int ``n`` as ``n mod (2**61 - 1)``, with no secret,
  so a peer can send a set of ints that all share one hash, and building it compares
  each with all before it: quadratic. (Strings and bytes are hashed with a per-process
  secret, unless ``PYTHONHASHSEED`` fixes it: a peer cannot make them collide.) So
  marshal's scanner has every set, frozenset and dict with another kind of key (a big
  int, a float, a tuple, a frozenset) decoded as a *marked list* (`as_marked_lists`), and
  `rebuild_hashed` makes it a set or dict only once `check_keys` has counted how many of
  its keys share a hash.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

from .errors import ProtocolError

MAX_DEPTH = 500  # containers inside containers: well within Python's recursion limit
SHARED_HASH_ALLOWANCE = 64  # comparisons between keys that share a hash, beyond one per key

_WALKED = frozenset({list, tuple, dict})
_JSON_CONTAINERS = frozenset({list, dict})
_FLAG_REF = 0x80
_LIST, _DICT, _SET = ord("["), ord("{"), ord("<")
_INT32 = struct.Struct("<i")


def bottom_up(value: Any, make: Callable[[Any, list[Any]], Any]) -> Any:
    """What ``make(node, items)`` makes of ``value``, called for every list, tuple and dict in
    it, children first; ``items`` are the node's items (a dict's values), each replaced by
    what was made of it.

    A part that occurs in several places (marshal's back-references) is made once, and the
    result is used wherever it occurs; so the walk costs what the distinct parts do, not
    what they would if each occurrence were a copy. A stack, not recursion: any depth.

    Raises:
        ProtocolError: A part contains itself.
    """
    if type(value) not in _WALKED:
        return value
    made: dict[int, Any] = {}  # id of a part (alive: its parents hold it) -> what it became
    entered: set[int] = set()  # parts whose children were pushed (made or on the stack)
    stack = [value]
    while stack:
        node = stack[-1]
        if id(node) in made:  # a shared part, met again
            stack.pop()
            continue
        items = node.values() if type(node) is dict else node
        nested = not _WALKED.isdisjoint(map(type, items))  # in C: a flat list is one pass
        if nested and id(node) not in entered:
            entered.add(id(node))
            todo = [x for x in items if type(x) in _WALKED and id(x) not in made]
            if any(id(x) in entered for x in todo):  # entered, not made: one of its parents
                raise ProtocolError("a message part contains itself")
            if todo:
                stack += todo
                continue
        stack.pop()
        made[id(node)] = make(
            node, [made[id(x)] if type(x) in _WALKED else x for x in items] if nested else [*items]
        )
    return made[id(value)]


def check_depth(value: Any) -> None:
    """Raise unless the lists and dicts of a decoded JSON value nest at most `MAX_DEPTH` deep.

    Level by level (each level: the containers inside the level before), so no recursion.
    """
    level = [value] if type(value) in _JSON_CONTAINERS else []
    for _ in range(MAX_DEPTH):
        level = [
            item
            for node in level
            for item in (node.values() if type(node) is dict else node)
            if type(item) in _JSON_CONTAINERS
        ]
        if not level:
            return
    raise ProtocolError(f"message nested deeper than {MAX_DEPTH}")


def as_marked_lists(data: bytes | bytearray, hashed: list[tuple[int, int, int]]) -> bytes:
    """``data`` with each of these sets, frozensets and dicts written as a marked list.

    ``hashed``: (where its type code is, where it ends, a dict's item count). The list is
    ``[..., code, *items]`` (Ellipsis, which plain data never holds, then the original type
    code; a dict's items are key, value, key, value...) and keeps the original's flag bit,
    so marshal numbers it as it would have numbered the original.
    """
    edits: list[tuple[int, int, bytes]] = []  # (where, bytes replaced, the new bytes)
    for start, end, dict_items in hashed:
        code = data[start] & ~_FLAG_REF
        if code == _DICT:  # '{' key value ... NULL: no count to keep
            count, replaced = dict_items, 1
            edits.append((end - 1, 1, b""))  # the NULL that ends it
        else:  # '<' or '>', then a 4-byte count: the layout of a list
            count, replaced = _INT32.unpack_from(data, start + 1)[0], 5
        header = bytes([_LIST | data[start] & _FLAG_REF]) + _INT32.pack(count + 2)
        edits.append((start, replaced, header + b".i" + _INT32.pack(code)))  # Ellipsis, code
    view, done = memoryview(data), 0
    parts: list[bytes | memoryview] = []
    for where, replaced, new in sorted(edits):
        parts += [view[done:where], new]
        done = where + replaced
    parts.append(view[done:])
    return b"".join(parts)


def rebuild_hashed(value: Any) -> Any:
    """``value``, loaded from `as_marked_lists`'s bytes, with each marked list made a set,
    frozenset or dict again, once `check_keys` accepts its keys."""
    return bottom_up(value, _unmarked)


def _unmarked(node: Any, items: list[Any]) -> Any:
    """A copy of ``node`` made of ``items``; a marked list becomes what it stands for."""
    if type(node) is dict:
        return dict(zip(node, items, strict=True))
    if type(node) is tuple:
        return tuple(items)
    if not items or items[0] is not Ellipsis:
        return items
    code, items = items[1], items[2:]
    keys = items[0::2] if code == _DICT else items
    check_keys(keys)
    if code == _DICT:
        return dict(zip(keys, items[1::2], strict=True))
    return set(items) if code == _SET else frozenset(items)


# --8<-- [start:check_keys]
def check_keys(keys: list[Any]) -> None:
    """Raise unless a set or dict of ``keys`` can be built in about linear time.

    Inserting a key compares it with every key before it that has the same hash; with
    groups of n keys sharing a hash, that is about the sum of n * n. Distinct values share
    a hash by chance almost never, so that sum may exceed one per key by only a little.
    """
    try:
        hashes = list(map(hash, keys))
    except TypeError as e:
        raise ProtocolError(f"a set item or dict key that cannot be hashed: {e}") from None
    if len(set(hashes)) == len(hashes):  # (a hash is an int, which hashes as itself)
        return
    shared = sum(n * n for n in Counter(hashes).values()) - len(hashes)
    if shared > len(hashes) + SHARED_HASH_ALLOWANCE:
        raise ProtocolError(
            f"the {len(keys)} items of a set or dict share hashes enough to cost {shared} "
            "comparisons (hash flooding); refused"
        )


# --8<-- [end:check_keys]
