"""Checks the announced length against max_frame only once the whole payload is here.

A peer that announces 2**63 bytes then never gets its ProtocolError: the reader waits (and
buffers) for a payload that no limit ever stops.
"""


def take_frame(buffer: bytearray, max_frame: int) -> tuple[int, bytes] | None:
    if len(buffer) < HEADER.size:
        return None
    length, kind = HEADER.unpack_from(buffer)
    end = HEADER.size + length
    if len(buffer) < end:
        return None
    if length > max_frame:
        raise ProtocolError(f"peer announced a {length}-byte frame; max_frame={max_frame}")
    payload = bytes(buffer[HEADER.size : end])
    del buffer[:end]
    return kind, payload
