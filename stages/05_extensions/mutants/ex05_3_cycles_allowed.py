"""Lets a reference point at a container that is still open: marshal.loads builds the
cycle (a list that holds itself), and whatever walks the message next never ends."""


def check_plain_marshal(payload: bytes | bytearray) -> bytes | bytearray:
    """The library's walk, with one mistake (see the module docstring)."""
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
