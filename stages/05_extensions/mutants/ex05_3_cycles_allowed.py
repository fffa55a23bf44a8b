"""Lets a reference point at a container that is still open: marshal.loads builds the
cycle (a list that holds itself), and whatever walks the message next never ends."""


def check_plain_marshal(payload: bytes | bytearray) -> None:
    data, end, pos = payload, len(payload), 0
    outer: list[tuple[int, int]] = []  # the open containers around the current one
    left, ref = 1, -1  # the outermost "container" holds the one value
    flagged = 0  # values numbered so far
    open_refs: set[int] = set()  # the numbers of the containers still open
    while True:
        if left == 0:  # the current container is complete
            open_refs.discard(ref)
            if not outer:
                break
            left, ref = outer.pop()
            continue
        if pos >= end:
            raise ProtocolError("marshal data ends in the middle of a value")
        code = data[pos]
        pos += 1
        if left > 0:
            left -= 1
        elif (code & ~_FLAG_REF) == _NULL:  # a dict's end
            left = 0
            continue
        number = -1
        flag, code = code & _FLAG_REF, code & ~_FLAG_REF
        kind = _KINDS[code]
        if flag and code not in _UNNUMBERED:
            number = flagged
            flagged += 1
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
            outer.append((left, ref))
            ref = number
            if number >= 0:
                open_refs.add(number)
            if code == _DICT:
                left = -1
            elif code == _TUPLE_8:
                left = data[pos] if pos < end else 0
                pos += 1
            else:
                left = _count(data, pos, end, item_size=1)
                pos += 4
        elif kind == _REFERENCE:
            pos += 4
        elif kind == _LONG:
            pos += 4 + 2 * abs(_count(data, pos, end, item_size=2, signed=True))
        else:
            raise ProtocolError(f"marshal type code {chr(code)!r} is not plain data; refused")
        if pos > end:
            raise ProtocolError("marshal data ends in the middle of a value")
    if pos != end:
        raise ProtocolError(f"{end - pos} bytes after the marshalled value")
