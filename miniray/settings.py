"""The rules for the numbers a user sets: a size in bytes, and a count.

One rule for each, so that every class that takes one (``Worker``, ``WorkerServer``,
``NodeConfig``, ``Cluster``...) says the same thing about a bad value, before anything
starts: a ``TypeError`` naming the setting for a value that is not an int (a bool is
none, though Python counts it as one), a ``ValueError`` for one too small. Settings in
seconds have theirs in ``timeouts.py``.
"""

from __future__ import annotations


def check_size(name: str, value: object, least: int) -> None:
    """A limit in bytes: an int, ``least`` or more.

    Raises:
        TypeError: ``value`` is not an int.
        ValueError: ``value`` is under ``least``.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, in bytes, not {value!r:.40}")
    if value < least:
        raise ValueError(f"{name}={value}: a size in bytes, {least} or more")


def check_count(name: str, value: object, least: int = 1) -> None:
    """A count (of workers, of nodes): an int, ``least`` or more.

    Raises:
        TypeError: ``value`` is not an int.
        ValueError: ``value`` is under ``least``.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r:.40}")
    if value < least:
        raise ValueError(f"{name}={value}: a count, {least} or more")
