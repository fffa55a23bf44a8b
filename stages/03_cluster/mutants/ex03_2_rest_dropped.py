"""Returns nothing of what it read past the ready line: the first log lines, which came in
the same read, are lost."""


def read_ready_line(fd: int, timeout: float, already: bytes = b"") -> tuple[dict[str, Any], bytes]:
    deadline = time.monotonic() + timeout
    buffer = already
    while True:
        line, newline, rest = buffer.partition(b"\n")
        if newline and line.startswith(READY_PREFIX):
            break
        if newline:
            buffer = rest
            continue
        if len(buffer) > _MAX_LINE:
            raise ProtocolError(f"no newline in {_MAX_LINE} bytes: {buffer[:80]!r}")
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError(f"no ready line within {timeout} s")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise EOFError("the stream ended before the ready line")
        buffer += chunk
    try:
        ready = json.loads(line[len(READY_PREFIX) :])
        assert isinstance(ready["port"], int) and isinstance(ready["host"], str)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise ProtocolError(f"garbled ready line: {line[:200]!r}") from None
    return ready, b""
