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
workers, local or remote. A ``call_remote`` made while no other call is in flight reads
its own reply in its own thread (the reader waits meanwhile), which spares two thread
switches per call. Once calls have started, ``recv`` refuses, since it would steal
replies. When the worker ends, every pending future fails with `WorkerDied`; so does every
later ``submit``.
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
            TypeError: ``name`` is not a str (nothing was sent).
        """
        call = self._start_call(name, args, kwargs, own=None)
        assert isinstance(call, Future)
        return call

    def _start_call(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, own: _OwnReply | None
    ) -> Future[Any] | _OwnReply:
        """Register and send one call; return what its reply will be given to.

        With ``own``: if no other call is in flight, this thread reads the reply itself
        (see `_CallState.read_own_reply`), and ``own`` is returned; otherwise a Future.
        """
        if not isinstance(name, str):  # the worker would answer UnknownFunction, a round trip later
            raise TypeError(f"a function's name is a str, not {name!r:.100}")
        state = self._call_state()
        with state.table_lock:
            if state.ended is not None:
                raise state.ended
            call_id = state.next_id
            state.next_id += 1
            inline = own is not None and not state.pending and not state.reading
            if inline:  # the reader thread waits meanwhile: only one thread reads
                assert own is not None
                waiter: Future[Any] | _OwnReply = own
                state.reading = True
            else:
                waiter = Future()
                waiter.set_running_or_notify_cancel()  # in flight at once: no cancelling it
                if not state.pending:  # else the reader is already busy with replies
                    state.turn.notify()  # the reader thread has a reply to wait for
            state.pending[call_id] = waiter
        request = {"call": call_id, "fn": name, "args": args, "kwargs": kwargs}
        try:
            with state.send_lock:  # not the table's lock: the reader must go on meanwhile
                self._channel.send(request)
        except BaseException as e:
            with state.table_lock:
                state.pending.pop(call_id, None)
            if inline:
                state.stop_reading()
            if isinstance(e, ChannelClosed) and not isinstance(e, WorkerDied):
                raise WorkerDied(
                    f"worker pid {self.pid} is gone: {e}", pid=self.pid, returncode=None
                ) from e
            raise
        return waiter

    # --8<-- [end:submit]

    def call_remote(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``name(*args, **kwargs)`` on the worker and return its result.

        To wait at most some seconds, use ``submit(...).result(timeout)``.

        Raises:
            RemoteError: The function raised there (type, message and traceback inside).
            UnknownFunction: No function of that name is registered there.
            WorkerDied: The worker ended before it answered.
        """
        own = _OwnReply()
        call = self._start_call(name, args, kwargs, own=own)
        if call is own:
            # No other call was in flight: this thread reads the reply itself. Handing it
            # over from the reader thread (and a Future) cost two thread switches a call.
            self._call_state().read_own_reply(own)
        return call.result()

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
        with self._calls.turn:  # a reader waiting for work ends now; else at the worker's end
            self._calls.stopping = True
            self._calls.turn.notify()
        reader = self._calls.reader
        for how in (socket.SHUT_WR, socket.SHUT_RD):  # EOF to the worker; then, if need be, to us
            with contextlib.suppress(OSError):  # already disconnected: the reader sees it too
                self._channel.shutdown(how)
            reader.join(timeout)
            if not reader.is_alive():
                return


class _CallState:
    """The pending calls of one worker, and who reads their replies.

    One thread at a time reads the channel (``reading``): a ``call_remote`` made while no
    other call is in flight reads its own reply, in its own thread; otherwise the reader
    thread does, for as long as calls are pending.
    """

    def __init__(self, channel: Channel, pid: int, host: str) -> None:
        self.table_lock = threading.Lock()  # around next_id, pending, ended and reading
        self.turn = threading.Condition(self.table_lock)  # the reader waits for work here
        self.send_lock = threading.Lock()  # one request at a time on the socket
        self.next_id = 1
        self.pending: dict[int, Future[Any] | _OwnReply] = {}
        self.ended: WorkerDied | None = None
        self.reading = False  # a thread is reading the channel (the reader, or a caller)
        self.reader_reads = False  # ... and it is the reader thread, which keeps the turn
        self.stopping = False  # close(): the reader ends once nothing is pending
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
    def _read_replies(self, until: _OwnReply | None = None) -> None:
        """Give each reply to its call's future, until ``_next_reply`` raises (the end), or
        ``until``, the reply a caller reads for itself, has arrived."""
        while until is None or not until.done():
            reply = self._next_reply()
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

    def _next_reply(self) -> Any:
        """The next reply from the channel, read by the thread whose turn it is.

        A caller reading its own reply (`read_own_reply`) just reads. The reader thread
        waits until calls are pending and no caller reads; it ends (ChannelClosed) when the
        calls have ended or are stopped. It keeps the turn while more replies are due (a
        call made meanwhile gets a Future), so a stream of replies costs no wait and no
        wake-up each; it gives the turn back with the last reply due, before that call's
        caller hears of it, so that caller's next ``call_remote`` can read its own.
        """
        if threading.get_ident() != self.reader.ident:
            return self._channel.recv()
        if not self.reader_reads:  # (only this thread sets it)
            with self.turn:
                while not self.pending or self.reading:
                    if self.ended is not None or (self.stopping and not self.pending):
                        raise ChannelClosed("the calls have ended")
                    self.turn.wait()
                self.reader_reads = self.reading = True
        try:
            reply = self._channel.recv()
        except BaseException:
            self.stop_reading()
            raise
        with self.table_lock:
            if len(self.pending) <= 1:  # this reply is the last one due
                self.reader_reads = self.reading = False
        return reply

    def read_own_reply(self, own: _OwnReply) -> None:
        """In ``call_remote``'s thread: read replies until its own, ``own``, has arrived."""
        try:
            self._read_replies(until=own)
        except Exception as e:  # the worker's end, or a broken protocol: as the reader would
            self._fail_all(e)
        finally:  # KeyboardInterrupt too: the reader thread takes over what is pending
            self.stop_reading()

    def stop_reading(self) -> None:
        """Give up the turn to read; the reader thread reads next if calls are pending."""
        with self.turn:
            self.reading = self.reader_reads = False
            if self.pending:  # else the reader thread sleeps on: waking it costs a switch
                self.turn.notify()

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
            if self.ended is None:  # the first end found, by the reader or a caller
                self.ended = ended
            pending, self.pending = self.pending, {}
            self.turn.notify()  # a waiting reader thread ends
        for future in pending.values():
            future.set_exception(ended)

    def _remote_error(self, info: Any) -> Exception:
        try:
            kind, message, trace = str(info["type"]), str(info["message"]), str(info["traceback"])
        except (KeyError, TypeError):
            return ProtocolError(f"malformed error reply: {info!r:.100}")
        error_class = UnknownFunction if kind == UNKNOWN_FUNCTION else RemoteError
        return error_class(kind, message, trace, pid=self._pid, host=self._host)


class _OwnReply:
    """The reply to a call whose caller reads it itself: a Future without the locks, as
    only that thread sets it (or, once it has stopped reading, whoever reads next)."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def set_result(self, value: Any) -> None:
        self._done, self._value = True, value

    def set_exception(self, error: BaseException) -> None:
        self._done, self._error = True, error

    def done(self) -> bool:
        return self._done

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


def _reply_id(reply: Any) -> int | None:
    if isinstance(reply, dict) and isinstance(reply.get("reply"), int):
        return int(reply["reply"])
    return None
