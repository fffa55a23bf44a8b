"""Splits each read into lines on its own: an "interrupt" line cut in two by the pipe
("interr", then "upt" and its newline) is never seen."""


def follow_lease(fd: int, on_interrupt: Callable[[], None], on_end: Callable[[], None]) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            break
        for line in chunk.split(b"\n"):
            if line.strip() == b"interrupt":
                on_interrupt()
    on_end()
