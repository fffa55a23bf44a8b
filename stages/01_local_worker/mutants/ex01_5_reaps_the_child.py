"""Asks waitid without WNOWAIT: the status is consumed, and wait() can no longer get the code."""


def is_alive(self) -> bool:
    if self._process.reaped:
        return False
    try:
        exited = os.waitid(os.P_PIDFD, self._process.pidfd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        return False
    return exited is None
