# @5+
"""Calling registered functions: ``call_remote`` and ``submit``, with futures.

`Calls` is mixed into ``Worker`` and ``RemoteWorker`` (so a Cluster's
workers have it too). The worker must serve a `registry.Registry`.

    future = worker.submit("train_step", batch)    # returns at once: a Future
    result = future.result(timeout=10)             # the value, or the remote error
    worker.call_remote("train_step", batch)        # the same, waiting

The first call starts one reader thread per worker. ``submit`` sends the request and
returns; the reader matches each reply to its future by the call's id. So many calls are
in flight on one worker at once (they *pipeline*: the worker never waits for the network
between two calls), and ``concurrent.futures.wait`` and ``as_completed`` work across
workers, local or remote. While calls are active, the reader owns the channel: ``recv``
refuses, since it would steal replies. When the worker ends, every pending future fails
with `WorkerDied`; so does every later ``submit``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from concurrent.futures import Future
from typing import Any

from .channel import Channel
from .errors import (
    CallsActive,
    ChannelClosed,
    ProtocolError,
    RemoteError,
    UnknownFunction,
    WorkerDied,
)
from .registry import UNKNOWN_FUNCTION

_JOIN_TIMEOUT = 5.0  # seconds close() waits for the reader to see the worker's end
_START_LOCK = threading.Lock()  # around the lazy start of a worker's reader (held briefly)


class Calls:
    """``call_remote`` and ``submit``, for a class with ``_channel``, ``pid`` and ``host``."""

    _channel: Channel
    pid: int
    _calls: _CallState | None = None
    remote_host: str = socket.gethostname()  # where the worker runs (RemoteWorker: its host)

    # --8<-- [start:submit]
    def submit(self, name: str, /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Start ``name(*args, **kwargs)`` on the worker; return its Future at once.

        The future's ``result()`` is the function's return value; its exception is a
        `RemoteError` (the function raised), `UnknownFunction`, or `WorkerDied`.

        Raises:
            WorkerDied: The worker has already ended.
            Unsendable: The arguments cannot be sent (nothing was sent).
        """
        state = self._call_state()
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()  # in flight at once: it cannot be cancelled
        with state.table_lock:
            if state.ended is not None:
                raise state.ended
            call_id = state.next_id
            state.next_id += 1
            state.pending[call_id] = future
        request = {"call": call_id, "fn": name, "args": args, "kwargs": kwargs}
        try:
            with state.send_lock:  # not the table's lock: the reader must go on meanwhile
                self._channel.send(request)
        except BaseException as e:
            with state.table_lock:
                state.pending.pop(call_id, None)
            if isinstance(e, ChannelClosed) and not isinstance(e, WorkerDied):
                raise WorkerDied(
                    f"worker pid {self.pid} is gone: {e}", pid=self.pid, returncode=None
                ) from e
            raise
        return future

    # --8<-- [end:submit]

    def call_remote(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``name(*args, **kwargs)`` on the worker and return its result.

        To wait at most some seconds, use ``submit(...).result(timeout)``.

        Raises:
            RemoteError: The function raised there (type, message and traceback inside).
            UnknownFunction: No function of that name is registered there.
            WorkerDied: The worker ended before it answered.
        """
        return self.submit(name, *args, **kwargs).result()

    def _call_state(self) -> _CallState:
        if self._calls is None:
            with _START_LOCK:  # threads making their first calls at once share one reader
                if self._calls is None:
                    self._calls = _CallState(self._channel, self.pid, self.remote_host)
        return self._calls

    def _refuse_if_calling(self) -> None:
        """In ``recv``: replies belong to the reader thread once calls have started."""
        if self._calls is not None and threading.current_thread() is not self._calls.reader:
            raise CallsActive("this worker serves calls: use submit/call_remote, not recv")

    def _stop_calls(self, timeout: float | None = _JOIN_TIMEOUT) -> None:
        """In ``close``: say end-of-file, let the reader see the worker's end, join it."""
        if self._calls is None or self._channel.closed:
            return
        reader = self._calls.reader
        for how in (socket.SHUT_WR, socket.SHUT_RD):  # EOF to the worker; then, if need be, to us
            with contextlib.suppress(OSError):  # already disconnected: the reader sees it too
                self._channel.shutdown(how)
            reader.join(timeout)
            if not reader.is_alive():
                return


class _CallState:
    """The pending calls of one worker, and the thread that reads their replies."""

    def __init__(self, channel: Channel, pid: int, host: str) -> None:
        self.table_lock = threading.Lock()  # around next_id, pending and ended
        self.send_lock = threading.Lock()  # one request at a time on the socket
        self.next_id = 1
        self.pending: dict[int, Future[Any]] = {}
        self.ended: WorkerDied | None = None
        self._channel, self._pid, self._host = channel, pid, host
        self.reader = threading.Thread(target=self._run, name=f"miniray-calls-{pid}", daemon=True)
        self.reader.start()

    def _run(self) -> None:
        """The reader thread: replies until the worker's end; then fail what still waits."""
        try:
            self._read_replies()
            cause: Exception = ProtocolError("the reply reader stopped")
        except Exception as e:  # the worker ended, broke the protocol, or a bug: never hang
            cause = e
        self._fail_all(cause)

    # --8<-- [start:read_replies]
    def _read_replies(self) -> None:
        """Give each reply to its call's future, until ``recv`` raises (the worker's end)."""
        channel = self._channel
        while True:
            reply = channel.recv()
            reply_id = _reply_id(reply)
            with self.table_lock:
                future = None if reply_id is None else self.pending.pop(reply_id, None)
            if future is None:
                raise ProtocolError(f"a reply to no pending call: {reply!r:.100}")
            if "error" in reply:
                future.set_exception(self._remote_error(reply["error"]))
            else:
                future.set_result(reply.get("value"))

    # --8<-- [end:read_replies]

    def _fail_all(self, cause: Exception) -> None:
        pid = self._pid
        if isinstance(cause, WorkerDied):
            ended = WorkerDied(str(cause), pid=pid, returncode=cause.returncode)
        elif isinstance(cause, ProtocolError):  # it may live on, but no reply can be trusted
            message = f"worker pid {pid} broke the protocol ({cause}): its calls are abandoned"
            ended = WorkerDied(message, pid=pid, returncode=None)
        elif isinstance(cause, ChannelClosed | RemoteError | OSError):
            ended = WorkerDied(f"worker pid {pid} ended: {cause}", pid=pid, returncode=None)
        else:
            ended = WorkerDied(
                f"worker pid {pid}: calls failed: {cause!r}", pid=pid, returncode=None
            )
        ended.__cause__ = cause
        with self.table_lock:
            self.ended = ended
            pending, self.pending = self.pending, {}
        for future in pending.values():
            future.set_exception(ended)

    def _remote_error(self, info: Any) -> Exception:
        try:
            kind, message, trace = str(info["type"]), str(info["message"]), str(info["traceback"])
        except (KeyError, TypeError):
            return ProtocolError(f"malformed error reply: {info!r:.100}")
        error_class = UnknownFunction if kind == UNKNOWN_FUNCTION else RemoteError
        return error_class(kind, message, trace, pid=self._pid, host=self._host)


def _reply_id(reply: Any) -> int | None:
    if isinstance(reply, dict) and isinstance(reply.get("reply"), int):
        return int(reply["reply"])
    return None
