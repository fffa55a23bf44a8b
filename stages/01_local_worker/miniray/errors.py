"""The errors MiniRay raises: one family, each saying what went wrong and where.

Every error derives from `MiniRayError`, so ``except MiniRayError`` catches
them all. A timeout is the builtin `TimeoutError`, as everywhere in Python.
"""

from __future__ import annotations

import signal


class MiniRayError(Exception):
    """Base class of every error MiniRay raises."""


class ProtocolError(MiniRayError):
    """A frame broke the wire format: too big, garbled, or cut short.

    An oversized or cut-short frame leaves the byte stream unusable, so the channel
    that saw it refuses further use instead of silently desynchronising.
    """


class ChannelClosed(MiniRayError, ConnectionError):
    """The other end closed the channel (or the channel was closed here)."""


class WorkerDied(ChannelClosed):
    """The worker process ended: nothing more will arrive from it.

    Attributes:
        pid: The worker's process id.
        returncode: Exit code; negative for a signal (as in ``subprocess``);
            ``None`` when it is not known.
    """

    def __init__(self, message: str, *, pid: int, returncode: int | None) -> None:
        super().__init__(message)
        self.pid = pid
        self.returncode = returncode


class RemoteError(MiniRayError):
    """The work function raised; this carries the exception from the worker.

    Its message says what and where (``ValueError: bad input (in worker pid 7 on
    node1)``). The worker's traceback is attached as the cause, a
    `RemoteTraceback`, as ``concurrent.futures`` does: left uncaught, the error
    prints it once, above its own traceback; caught, nothing is printed.

    Attributes:
        remote_type: Name of the exception type raised in the worker, e.g. ``"KeyError"``.
        remote_message: ``str()`` of that exception.
        remote_traceback: The formatted traceback, as the worker saw it.
        pid: The worker's process id.
        host: The worker's host name.
    """

    def __init__(
        self, remote_type: str, remote_message: str, remote_traceback: str, *, pid: int, host: str
    ) -> None:
        super().__init__(f"{remote_type}: {remote_message} (in worker pid {pid} on {host})")
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        self.pid = pid
        self.host = host
        self.__cause__ = RemoteTraceback(remote_traceback)


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, shown as a RemoteError's cause."""

    def __init__(self, remote_traceback: str) -> None:
        super().__init__(remote_traceback)
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        return f'\n"""\n{self.remote_traceback.rstrip()}\n"""'


def describe_returncode(returncode: int | None) -> str:
    """Say how a process ended, e.g. ``"exited with code 3"`` or ``"killed by SIGKILL"``."""
    if returncode is None:
        return "ended (exit status unknown)"
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"killed by {name}"
