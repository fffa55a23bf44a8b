"""Returns a frame as soon as its header is here, with whatever part of the payload came."""


def take_frame(buffer: bytearray, max_frame: int) -> tuple[int, bytes] | None:
    if len(buffer) < HEADER.size:
        return None
    length, kind = HEADER.unpack_from(buffer)
    if length > max_frame:
        raise ProtocolError(f"peer announced a {length}-byte frame; max_frame={max_frame}")
    end = min(HEADER.size + length, len(buffer))
    payload = bytes(buffer[HEADER.size : end])
    del buffer[:end]
    return kind, payload
