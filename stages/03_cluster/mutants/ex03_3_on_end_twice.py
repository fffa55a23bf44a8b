"""Calls on_end() where the read fails and again after the loop: the lease ends twice."""


def follow_lease(fd: int, on_interrupt: Callable[[], None], on_end: Callable[[], None]) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            on_end()
            break
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.strip() == b"interrupt":
                on_interrupt()
    on_end()
