"""Returns on a read error without calling on_end(): a lease whose pipe breaks is never
ended, and the server and its workers outlive their coordinator."""


def follow_lease(fd: int, on_interrupt: Callable[[], None], on_end: Callable[[], None]) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.strip() == b"interrupt":
                on_interrupt()
    on_end()
