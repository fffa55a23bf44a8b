# @2+
"""RemoteWorker: a worker on a WorkerServer, with the same API as the local Worker.

    worker = RemoteWorker("localhost", 10000)   # connect, authenticate, meet the worker
    worker.send({"cmd": "echo", "data": "hello"})
    print(worker.recv(timeout=5))
    worker.close()

The bytes on the socket are the same frames as in stage 1, each sealed with a MAC
(``session.FrameMAC``), so the same Channel reads them. What differs is how we learn that
the worker ended: a local Worker watches its child's pidfd, a RemoteWorker only sees
its TCP connection. So the worker sends an EXIT frame with its exit code; one that
could not (killed by a signal) gets it sent by the server, which reaps it and knows
the code. A connection that closes without an EXIT frame means the server went away.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from .auth import client_handshake
from .calls import Calls  # @5+
from .channel import Channel, wait_readable
from .codec import get_codec  # @5+
from .errors import (
    BacklogFull,
    ChannelClosed,
    CodecRefused,  # @5+
    MiniRayError,
    ProtocolError,
    RemoteError,
    WorkerDied,
    describe_returncode,
)
from .handle import ChannelHandle
from .message_codec import MessageCodec  # @5+
from .process import drop_in_children
from .tcp import connect
from .timeouts import check_seconds, check_timeout, deadline_after, seconds_left
from .wire import DEFAULT_MAX_FRAME
from .wire_options import (
    DEFAULT_MAX_BUFFER_BYTES,  # @5+
    WireOptions,
)

_MIN_BACKLOG = 1 << 20  # bytes of unread messages wait() may hold, whatever max_frame is
_LOOK_SECONDS = 0.05  # how long is_alive() may spend reading what has arrived


# @2-4: class RemoteWorker(ChannelHandle):
class RemoteWorker(ChannelHandle, Calls):  # @5+
    """A connection to one worker process forked for us by a WorkerServer.

    Args:
        host: The server's host name or address.
        port: The server's TCP port.
        secret: The shared secret; by default looked up as described in ``miniray.secret``.
        connect_timeout: Seconds allowed for connecting, the handshake and the hello,
            together.
        max_frame: Largest message, in encoded bytes, either side may send (default
            4 MiB). Decoding one can take up to ~50 times its size in memory (see
            ``wire.py``); ``wait`` keeps up to twice this of unread messages.
        max_buffer_bytes: Largest total of the buffers beside one message (default  # @5+
            1 GiB; see ``wire_options.py``).  # @5+
        codec: ``"json"`` (the default) or ``"marshal"``; the server must accept it.  # @5+
        wire: These settings as one object, in place of the arguments above (a  # @3+
            `Cluster` passes its own, or its `NodeConfig`'s).  # @3+

    Raises:
        ServerUnreachable: Nothing accepted the connection in time (is the server
            running?), or what answered is not a MiniRay server (the message quotes it).
        ServerFull: The server already runs ``--workers`` workers, or could not start
            one just now.
        AuthenticationError: The secrets differ, or the secret file is unsafe or missing.
        ProtocolError: The server broke the protocol (an unknown status, a bad hello).
        CodecRefused: The server does not speak ``codec``.  # @5+
        TimeoutError: The peer accepted but did not finish the handshake and hello
            within ``connect_timeout``.
        TypeError, ValueError: ``port`` is not a port number (1-65535), or
            ``connect_timeout`` not a finite number of seconds.
    """

    # --8<-- [start:remote_init]
    def __init__(
        self,
        host: str,
        port: int,
        *,
        secret: str | bytes | None = None,
        connect_timeout: float = 10.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        # @5+ {
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        codec: str = "json",
        # @}
        wire: WireOptions | None = None,  # @3+
    ) -> None:
        check_seconds("connect_timeout", connect_timeout)
        # @2-4: options = WireOptions(max_frame, set_on="RemoteWorker")
        options = WireOptions(max_frame, max_buffer_bytes, codec, set_on="RemoteWorker")  # @5+
        options = wire or options  # @3+
        codec = options.codec  # @5+
        message_codec = get_codec(codec)  # @5+
        self.host, self.port = host, port
        self.returncode: int | None = None
        self._max_backlog = max(2 * options.max_frame, _MIN_BACKLOG)
        from .secret import load_secret  # here: see WorkerServer.__init__

        key = load_secret(secret)
        deadline = time.monotonic() + connect_timeout
        self._sock = connect(host, port, connect_timeout)
        drop_in_children(self._sock)  # a forked copy would keep the worker from seeing EOF
        try:
            session = client_handshake(self._sock, key, _until(deadline), peer=f"{host}:{port}")
            self._sock.settimeout(None)
            frame_auth = session.client_frames()
            self._channel = Channel(self._sock, options=options, frame_auth=frame_auth)
            self._channel.send({"codec": message_codec.name})  # JSON until both agree  # @5+
            hello = self._channel.recv(timeout=_until(deadline))  # who is our worker?
            # @5+ {
            if isinstance(hello, dict) and "refused" in hello:
                raise _codec_refused(f"{host}:{port}", codec, hello)
            # @}
            if not (isinstance(hello, dict) and isinstance(hello.get("pid"), int)):
                raise ProtocolError(f"expected the worker's hello, got {hello!r:.100}")
            # @5+ {
            if hello.get("codec") != message_codec.name:
                raise ProtocolError(f"the server answered codec {hello.get('codec')!r}")
            self._channel.codec = MessageCodec(message_codec, options=options)
            # @}
            self.pid: int = hello["pid"]
            self.remote_host = str(hello.get("host"))
        except BaseException:
            self._sock.close()
            raise
        self._channel.peer_pid = self.pid

    # --8<-- [end:remote_init]

    def send(self, msg: Any, timeout: float | None = None) -> None:
        """Send a message to the worker.

        Raises:
            WorkerDied: The worker has ended, with its exit code when it was reported
                (as a local Worker's ``send`` says); a RemoteError it reported first
                is the ``__cause__``.
            ProtocolError: The stream from the server broke (e.g. a frame failed its MAC).
        """
        if self._channel.ended or self.returncode is not None:  # TCP would take it anyway
            raise self._send_refused()
        super().send(msg, timeout)

    # @2-4 {
    # def recv(self, timeout: float | None = None) -> Any:
    #     """Return the worker's next message; same errors as ``Worker.recv``."""
    #     return super().recv(timeout)
    # @}
    # @5+ {
    def recv(self, timeout: float | None = None, *, copy: bool = True) -> Any:
        """Return the worker's next message; same errors and ``copy`` as ``Worker.recv``."""
        self._refuse_if_calling()
        return super().recv(timeout, copy=copy)

    # @}

    def _explain_closed(self, error: ChannelClosed, *, sending: bool) -> Exception:
        if isinstance(error, WorkerDied):
            if not sending:
                self.returncode = error.returncode  # the exit report: nothing more to read
            return error
        if not sending:
            return self._lost()
        refused = self._send_refused()  # what the worker reported says more than EPIPE
        if refused.__cause__ is None:
            refused.__cause__ = None  # and EPIPE is not its cause
        return refused

    # --8<-- [start:remote_wait]
    def wait(self, timeout: float | None = None) -> int:
        """Wait for the worker to end and return its exit code.

        The exit report comes after every message the worker sent, so ``wait`` reads
        those messages and keeps them for ``recv``, but not without limit: once about
        ``2 * max_frame`` bytes of them wait unread (at least 1 MiB), it stops reading
        and raises `BacklogFull`; ``recv`` them, then wait again. ``timeout`` is
        one deadline for the whole call, however much keeps arriving; ``0`` reads what
        has arrived and answers at once.

        Raises:
            TimeoutError: Still running after ``timeout`` seconds.
            BacklogFull: The unread messages reached the limit first. Its message says
                how many bytes wait and to ``recv()`` them; it carries ``pid`` and
                ``unread_bytes``.
            RemoteError: The work function raised.
            WorkerDied: The connection ended without an exit code (killed, or server gone).
        """
        deadline = deadline_after(check_timeout(timeout))
        while (end := self._end(deadline)) is None:
            if self._channel.backlog > self._max_backlog:
                raise BacklogFull(
                    f"worker pid {self.pid} still running, with {self._channel.backlog} bytes "
                    "of unread messages: recv() them, then wait() again",
                    pid=self.pid,
                    unread_bytes=self._channel.backlog,
                )
            remaining = None if deadline is None else deadline - time.monotonic()
            if (remaining is not None and remaining <= 0) or not wait_readable(
                self._channel.wait_fds(), remaining
            ):
                raise TimeoutError(f"worker pid {self.pid} still running after {timeout} s")
        if isinstance(end, WorkerDied) and end.returncode is not None:
            self.returncode = end.returncode
            return end.returncode
        raise end if isinstance(end, (RemoteError, ProtocolError)) else self._lost()

    # --8<-- [end:remote_wait]

    def is_alive(self) -> bool:
        """True until the worker's end (exit report or closed connection) has been read.

        Reads what has arrived, for a moment at most; an end behind more unread
        messages than ``wait`` keeps is not seen until they are received.
        """
        return self._end(time.monotonic() + _LOOK_SECONDS) is None

    def close(self, timeout: float = 5.0) -> None:
        """Tell the worker we are done (EOF), wait up to ``timeout`` s for its end, hang up.

        Messages not yet received are discarded, as closing a local ``Worker`` does.
        ``timeout`` bounds the whole call, even while the worker keeps sending; an exit
        report that arrives in time sets ``returncode``. Never raises: a worker that
        ended badly, or not in time, is hung up on all the same, and the server stops a
        worker that outlasts its client by the server's ``--exit-grace``.
        """
        deadline = deadline_after(check_timeout(timeout))
        if self._channel.closed:
            return
        self._stop_calls(timeout)  # @5+
        try:
            self._channel.shutdown(socket.SHUT_WR)  # the worker's recv sees end-of-file
            while True:
                self._channel.discard_messages()  # no one will recv them: hold none
                try:
                    self.wait(seconds_left(deadline))
                except BacklogFull:
                    continue
                break
        except (OSError, MiniRayError):
            pass  # ended badly or not in time (TimeoutError is an OSError): we are done
        with contextlib.suppress(OSError, MiniRayError):
            self._end(time.monotonic())  # a reported exit sets returncode, as locally
        self._channel.close()

    def __enter__(self) -> RemoteWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteWorker pid={self.pid} on {self.host}:{self.port}>"

    def _end(self, deadline: float | None) -> Exception | None:
        """The end of the worker's stream, if it has arrived.

        Reads what is there first, until ``deadline`` or until the backlog is full.
        """
        if self._channel.closed:
            return ChannelClosed("the connection was closed by this process")
        self._channel.drain(deadline=deadline, max_backlog=self._max_backlog)
        if self.returncode is None:
            self.returncode = self._channel.exit_code()
        return self._channel.final_error()

    def _send_refused(self) -> Exception:
        """Why a send cannot go through: what the worker reported, if it did."""
        end = self._end(time.monotonic() + _LOOK_SECONDS)
        if self.returncode is None:
            return end if isinstance(end, ProtocolError) else self._lost()
        died = WorkerDied(
            f"worker pid {self.pid} on {self.host}:{self.port} "
            f"{describe_returncode(self.returncode)}",
            pid=self.pid,
            returncode=self.returncode,
        )
        died.__cause__ = end if isinstance(end, RemoteError) else None
        return died

    def _lost(self) -> WorkerDied:
        if self._channel.closed:
            return WorkerDied("this connection was closed here", pid=self.pid, returncode=None)
        return WorkerDied(
            f"lost worker pid {self.pid} on {self.host}:{self.port}: the connection closed "
            "without an exit report (the server stopped, or the connection was cut)",
            pid=self.pid,
            returncode=None,
        )


# @5+ {
def _codec_refused(peer: str, codec: str, refusal: dict[str, Any]) -> CodecRefused:
    """What to tell a client whose codec the server refused: what it speaks, what to do."""
    spoken = refusal.get("codecs")
    if not (isinstance(spoken, list) and spoken and all(isinstance(c, str) for c in spoken)):
        return CodecRefused(
            f"{peer} refused codec {codec!r}: {refusal.get('refused')!r:.100}",
            codec=codec,
            server_codecs=(),
        )
    both = ",".join(dict.fromkeys([*spoken, codec]))
    return CodecRefused(
        f"{peer} speaks only {', '.join(spoken)}, not {codec}: connect with "
        f"codec={spoken[0]!r}, or start the server with --codecs {both}",
        codec=codec,
        server_codecs=tuple(spoken),
    )


# @}
def _until(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
