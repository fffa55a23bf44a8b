"""The public contract every kind of worker keeps, and the base that keeps it once.

A worker of any kind (a local ``Worker``, a ``RemoteWorker``, a cluster's worker) is
reached through a `miniray.channel.Channel`. ``wait_any`` needs only two public
methods of it, the `Waitable` contract, like ``fileno()`` for ``select``:

* ``wait_fds()``: the descriptors that become readable when something arrives;
* ``poll()``: True when a message (or the end) is already there, so ``recv`` won't wait.

`ChannelHandle` provides them, and ``send``/``recv`` with the channel's errors
translated in one place. What differs between kinds is only how a closed stream is
explained (a local child's exit code, a server's exit report, a lost connection): that
is the hook ``_explain_closed``.
"""

from __future__ import annotations

from typing import Any, NoReturn, Protocol

from .channel import Channel
from .errors import ChannelClosed


class Waitable(Protocol):
    """Anything ``wait_any`` can wait on."""

    def wait_fds(self) -> list[int]:
        """Descriptors that become readable when a message or the end arrives."""
        ...

    def poll(self) -> bool:
        """True when a message or the end is already there: ``recv`` will not wait."""
        ...


class ChannelHandle:
    """Base of every worker handle: one channel, its errors explained by one hook."""

    _channel: Channel

    def send(self, msg: Any, timeout: float | None = None) -> None:
        """Send a message to the worker; a closed stream is explained by ``_explain_closed``."""
        try:
            self._channel.send(msg, timeout)
        except ChannelClosed as e:
            self._raise_explained(e, sending=True)

    # @1-4: def recv(self, timeout: float | None = None) -> Any:
    def recv(self, timeout: float | None = None, *, copy: bool = True) -> Any:  # @5+
        """Return the worker's next message; a closed stream is explained by the hook."""
        try:
            # @1-4: return self._channel.recv(timeout)
            return self._channel.recv(timeout, copy=copy)  # @5+
        except ChannelClosed as e:
            self._raise_explained(e, sending=False)

    def wait_fds(self) -> list[int]:
        """Descriptors that become readable when a message or the end arrives."""
        return self._channel.wait_fds()

    def poll(self) -> bool:
        """True when a message or the end is already there: ``recv`` will not wait."""
        return self._channel.poll()

    def _explain_closed(self, error: ChannelClosed, *, sending: bool) -> Exception:
        """The hook: the error to raise for a stream that ended under ``send``/``recv``.

        Return ``error`` itself to let it through unchanged. An explanation gets
        ``error`` as its ``__cause__`` unless it set one (``None`` included) itself.
        """
        raise NotImplementedError

    def _raise_explained(self, error: ChannelClosed, *, sending: bool) -> NoReturn:
        explained = self._explain_closed(error, sending=sending)
        if explained is error:
            raise error
        if explained.__cause__ is None and not explained.__suppress_context__:
            explained.__cause__ = error
        raise explained
