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


class Unsendable(MiniRayError, TypeError):
    """``send`` refused a message before a byte of it went out: the channel is as it was.

    The codec cannot carry the message (an object it has no form for, or nesting too deep
    to encode), or, encoded, it is bigger than ``max_frame``. Nothing was written, so the
    next ``send`` goes out as if this one had not been tried. It is a TypeError too, as
    ``json.dumps`` raises for what it cannot encode.
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


# @2+ {
class AuthenticationError(MiniRayError):
    """The peer did not prove it knows the shared secret (or we could not prove it)."""


class ServerFull(MiniRayError, ConnectionError):
    """The WorkerServer runs as many workers as it may (``--workers``), or cannot fork one now.

    The server says so only after the client has authenticated, with its own proof.
    """


class ServerUnreachable(MiniRayError, ConnectionError):
    """No WorkerServer answered at that address.

    The connection was refused or not made in time, or what answered does not speak
    MiniRay (the message quotes its first bytes).
    """


class BacklogFull(MiniRayError):
    """``RemoteWorker.wait`` stopped reading: too many of the worker's messages wait unread.

    ``wait`` reads the connection to find the worker's exit report, which comes after
    every message the worker sent, and keeps those messages for ``recv``. It keeps at
    most about ``2 * max_frame`` bytes of them (at least 1 MiB) and then raises this,
    instead of holding a sender's output without limit. Nothing is lost: ``recv`` the
    messages, then ``wait`` again, or ``close`` to discard them.

    Attributes:
        pid: The worker's process id.
        unread_bytes: Memory held for ``recv`` when reading stopped.
    """

    def __init__(self, message: str, *, pid: int, unread_bytes: int) -> None:
        super().__init__(message)
        self.pid = pid
        self.unread_bytes = unread_bytes


class WorkFnNotFound(MiniRayError, ValueError):
    """A ``--work-fn`` spec names no importable function."""


# @}
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


# @3+ {
class ClusterError(MiniRayError):
    """A node could not be started: unreachable, key refused, server failed or too slow.

    The message names the host and quotes what ssh or the server said on stderr.
    """


class ConfigError(MiniRayError, ValueError):
    """A ``NodeConfig`` value that cannot work (say, a host name starting with "-")."""


# @}


# @4+ {
class DistributedConfigError(MiniRayError, ValueError):
    """A distributed configuration that cannot work (a rank out of range, a bad port...)."""


class PreflightError(MiniRayError):
    """Not every rank joined the process group and finished an all_reduce in time.

    Attributes:
        missing: The ranks that did not finish, in order.
    """

    def __init__(self, message: str, *, missing: list[int]) -> None:
        super().__init__(message)
        self.missing = missing


# @}


# @5+ {
class CodecRefused(MiniRayError):
    """The server does not speak the codec this client asked for (see its ``codecs``).

    Attributes:
        codec: The codec the client asked for.
        server_codecs: The codecs the server speaks (empty if it did not say).
    """

    def __init__(self, message: str, *, codec: str, server_codecs: tuple[str, ...]) -> None:
        super().__init__(message)
        self.codec = codec
        self.server_codecs = server_codecs


class UnknownFunction(RemoteError, LookupError):
    """The worker has no function registered under that name (the message lists its names)."""


class CallsActive(MiniRayError):
    """``recv`` was called on a worker whose replies belong to ``submit``'s reader thread."""


# @}


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
