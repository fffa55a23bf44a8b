"""Checks only the first type code, the outer value's: a code object inside a list passes,
and so does anything after the value."""


def check_plain_marshal(payload: bytes | bytearray) -> bytes | bytearray:
    if not payload:
        raise ProtocolError("marshal data ends in the middle of a value")
    code = payload[0] & ~_FLAG_REF
    if not _KINDS[code]:
        raise ProtocolError(f"marshal type code {chr(code)!r} is not plain data; refused")
    return payload
