"""Asks whether the pid exists (kill with signal 0): a child that exited but is not reaped
yet, a zombie, still exists, so it stays "alive" until someone waits for it."""


def is_alive(self) -> bool:
    if self._process.reaped:
        return False
    try:
        os.kill(self.pid, 0)
    except ProcessLookupError:
        return False
    return True
