"""Asks for PR_SET_PDEATHSIG but does not check whether the parent is already gone: a child
whose parent died between fork and prctl lives on, since the signal never comes."""


def die_with_parent(parent_pid: int) -> None:
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")
