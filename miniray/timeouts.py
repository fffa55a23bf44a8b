"""Timeouts: one meaning for every ``timeout=`` argument, and waiting on descriptors.

Every public call that takes a timeout passes it through :func:`check_timeout` first:

* ``None`` waits as long as it takes;
* ``math.inf``, and anything longer than :data:`MAX_TIMEOUT` (about 24 days, the longest
  ``poll`` can wait), also means "no limit", rather than an ``OverflowError`` from deep
  inside a system call;
* NaN or a negative number is a mistake, refused at the call with a ``ValueError``,
  before anything is sent, received or closed.
"""

from __future__ import annotations

import math
import select
import time

MAX_TIMEOUT = (2**31 - 1) / 1000  # seconds; poll() takes a C int of milliseconds


def check_timeout(timeout: float | None) -> float | None:
    """Validate a ``timeout`` argument: return it, or ``None`` for "no limit".

    Raises:
        TypeError: ``timeout`` is not a number (nor ``None``).
        ValueError: ``timeout`` is NaN or negative.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be None or a number of seconds >= 0, not {timeout!r}")
    return None if timeout > MAX_TIMEOUT else timeout


# @2+ {
def check_seconds(setting: str, value: object, error: type[ValueError] = ValueError) -> float:
    """Validate a setting in seconds (a server's grace, a cluster's start timeout): unlike a
    call's ``timeout``, it must be a finite number, 0 or more; ``error`` names ``setting``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise error(f"{setting}={value!r}: a finite number of seconds >= 0, please")
    return float(value)


# @}
def deadline_after(timeout: float | None) -> float | None:
    """The ``time.monotonic()`` at which a (checked) timeout runs out; None for never."""
    return None if timeout is None else time.monotonic() + timeout


def seconds_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (never negative); None for no deadline."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def ms_until(deadline: float) -> int:
    """Milliseconds until ``deadline``, rounded up, for ``poll``."""
    return max(0, math.ceil((deadline - time.monotonic()) * 1000))


def wait_readable(fds: list[int], timeout: float | None) -> list[int]:
    """Return which of ``fds`` are readable, waiting up to ``timeout`` s (None: forever).

    ``poll``, not ``select``: select fails on descriptor numbers above 1023, and a
    process that imports torch easily has that many open.
    """
    timeout = check_timeout(timeout)
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll(None if timeout is None else math.ceil(timeout * 1000))]
