"""Returns the frame but does not cut it off the buffer: the same frame comes back forever."""


def take_frame(buffer: bytearray, max_frame: int) -> tuple[int, bytes] | None:
    if len(buffer) < HEADER.size:
        return None
    length, kind = HEADER.unpack_from(buffer)
    if length > max_frame:
        raise ProtocolError(f"peer announced a {length}-byte frame; max_frame={max_frame}")
    end = HEADER.size + length
    if len(buffer) < end:
        return None
    return kind, bytes(buffer[HEADER.size : end])
