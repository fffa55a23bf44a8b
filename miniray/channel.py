"""A Channel: one end of a socket that carries frames (see ``wire.py``).

Both ends of a worker hold a Channel: the parent's ``worker.send``/``worker.recv`` use
one, and the child's ``handle`` *is* one.

Three rules keep the stream honest:

* The length is checked against the limits (`WireOptions`) before a byte of payload is
  awaited or allocated; a bad length raises `ProtocolError` and the channel refuses further
  reads, since no later byte can be trusted to start a frame.
* Bytes are read into our own buffer, and every wait looks in the buffer first, so a
  message that has already arrived is never missed by a ``select``/``poll`` on the socket.
* A timeout raises `TimeoutError` and loses nothing: a half-received frame stays
  in the buffer for the next call.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from collections import deque
from typing import Any

from .big_frames import BigFrameReader, Payload, send_sealed  # @5+
from .errors import ChannelClosed, ProtocolError, Unsendable
from .frame_auth import FrameAuth
from .message_codec import MessageCodec  # @5+
from .timeouts import check_timeout, deadline_after, ms_until
from .timeouts import wait_readable as wait_readable  # re-exported: older imports use it
from .wire import (
    ERROR,
    EXIT,
    HEADER,
    MESSAGE,
    decode_error,
    decode_exit,
    # @1-4 {
    # decode_message,
    # encode_message,
    # @}
    take_frame,
)
from .wire_options import DEFAULT_OPTIONS, WireOptions

_RECV_SIZE = 64 * 1024  # bigger reads cost an mmap per call in malloc
_WATCH_INTERVAL = 0.1  # seconds between looks at a watched process during a blocking read
_SMALL_FRAME = 64 * 1024  # below this, header and payload go out in one send
_FRAME_COST = 100  # bytes a received frame costs beyond its payload (tuple, bytes object, slot)
# @2+ {
_MAX_REPORT = 4096  # bytes: a server's report of how a worker ended is far smaller
_REPORT_GRACE = 1.0  # seconds to wait for the end of the stream after a frame broke it
# @}


class Channel:
    """One end of a framed, JSON-speaking socket.

    Args:
        sock: A connected stream socket (a socketpair end or a TCP connection).
        options: The limits (``max_frame``...) of what it sends and accepts.
        watch_fd: Optional file descriptor that becomes readable when the peer process
            has exited (a pidfd); a wait then ends instead of hanging on a socket that a
            grandchild may still hold open.
        peer_pid: The peer's process id, used in error messages.
        frame_auth: Optional: every frame then ends with a tag it seals and checks; a
            frame that fails the check ends the stream with a ProtocolError.
        from_worker: True when the peer is a worker, the only side that sends ERROR and
            EXIT frames; on a worker's own handle (False) such a frame is a ProtocolError.
        codec: How messages become bytes (default: JSON, buffers inline).  # @5+
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        options: WireOptions = DEFAULT_OPTIONS,
        watch_fd: int | None = None,
        peer_pid: int = 0,
        frame_auth: FrameAuth | None = None,
        from_worker: bool = True,
        codec: MessageCodec | None = None,  # @5+
    ) -> None:
        self.options = options
        self.codec = MessageCodec(options=options) if codec is None else codec  # @5+
        self._frame_auth = frame_auth
        self._tag_size = 0 if frame_auth is None else frame_auth.tag_size
        self.peer_pid = peer_pid
        self.from_worker = from_worker
        self._sock = sock
        self._buffer = bytearray()
        # @1-4: self._frames: deque[tuple[int, bytes]] = deque()  # complete, not yet delivered
        self._frames: deque[tuple[int, Payload]] = deque()  # not yet delivered  # @5+
        self._frames_cost = 0  # bytes those frames take, _FRAME_COST each included
        self._end: _StreamEnd | None = None  # why no more frames will arrive, once known
        self._big = BigFrameReader(frame_auth)  # a big frame is read into its own buffer  # @5+
        self._send_broken = False
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        self._watch_fd = watch_fd
        if watch_fd is not None:
            self._poller.register(watch_fd, select.POLLIN)
            # A grandchild may hold the peer's end open after the peer died, so a blocking
            # read could wait forever: make it return every _WATCH_INTERVAL to check.
            interval = struct.pack("ll", 0, int(_WATCH_INTERVAL * 1_000_000))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, interval)

    # --8<-- [start:send]
    def send(self, msg: Any, timeout: float | None = None) -> None:
        # @1-4: """Send one JSON-serialisable message.
        """Send one message: plain data, and buffers (bytes, arrays, tensors) anywhere in it.  # @5+

        Raises:
            # @1-4: Unsendable: ``msg`` is not JSON-serialisable, or its encoding exceeds
            Unsendable: The codec cannot carry ``msg``, or it exceeds a limit (the encoding  # @5+
                # @1-4: ``max_frame``: nothing was sent, and the channel is as it was.
                ``max_frame``, its buffers ``max_buffer_bytes``): nothing was sent, and the  # @5+
                channel is as it was.  # @5+
            ChannelClosed: The peer is gone.
            TimeoutError: The peer did not take the bytes in time; since part of a frame
                may have gone out, the channel refuses further sends.
        """
        # @1-4: self.send_frame(MESSAGE, encode_message(msg), timeout)
        self.send_frame(MESSAGE, self.codec.encode(msg), timeout)  # @5+

    # @1-4: def send_frame(self, kind: int, payload: bytes, timeout: float | None = None) -> None:
    # @5+ {
    def send_frame(
        self, kind: int, payload: bytes | list[bytes | memoryview], timeout: float | None = None
    ) -> None:
        # @}
        """Send one frame of the given kind; see `send` for the errors."""
        timeout = check_timeout(timeout)
        # @1-4: size = len(payload)
        # @5+ {
        parts = (payload,) if isinstance(payload, bytes) else payload
        size = len(payload) if isinstance(payload, bytes) else sum(map(len, payload))
        encoded = len(parts[0])  # the message itself; raw buffers follow it (see message_codec)
        # @}
        if self._sock.fileno() < 0:
            raise ChannelClosed("the channel is closed")
        if self._send_broken:
            raise ProtocolError("an earlier send timed out mid-frame; the channel is unusable")
        # @1-4: encoded = size
        max_frame = self.options.max_frame
        if encoded > max_frame:
            knob = self.options.knob("max_frame")
            raise Unsendable(f"message of {encoded} bytes exceeds {max_frame=}; not sent: {knob}")
        # @1-4 {
        # tag = b"" if self._frame_auth is None else self._frame_auth.seal(kind, payload)
        # header = HEADER.pack(len(payload) + len(tag), kind)
        # @}
        # @5+ {
        auth = self._frame_auth
        header = HEADER.pack(size + self._tag_size, kind)
        # @}
        try:
            if timeout is not None:  # (settimeout costs two system calls: not on every send)
                self._sock.settimeout(timeout)
            # @1-4 {
            # if len(payload) < _SMALL_FRAME:
            #     self._sock.sendall(header + payload + tag)
            # else:  # separate sends, to avoid copying a big payload just to prepend 9 bytes
            #     self._sock.sendall(header)
            #     self._sock.sendall(payload)
            #     self._sock.sendall(tag)
            # @}
            # @5+ {
            if size < _SMALL_FRAME:
                tag = b"" if auth is None else auth.seal(kind, *parts)
                self._sock.sendall(b"".join((header, *parts, tag)))
            elif auth is None:  # separate sends: a big payload is not copied to follow a header
                for part in (header, *parts):
                    self._sock.sendall(part)
            else:  # hashed a chunk at a time as it goes: the receiver hashes meanwhile
                send_sealed(self._sock, header, parts, auth.sealing(kind, size))
            # @}
        except (TimeoutError, BlockingIOError):  # BlockingIOError: timeout=0, socket full
            self._send_broken = True  # part of the frame may be out: the next would land inside
            raise TimeoutError(f"send did not complete within {timeout} s") from None
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ChannelClosed(f"the peer closed the channel ({e.strerror})") from e
        finally:
            if timeout is not None and self._sock.fileno() >= 0:
                self._sock.settimeout(None)

    # --8<-- [end:send]

    # --8<-- [start:recv]
    # @1-4: def recv(self, timeout: float | None = None) -> Any:
    def recv(self, timeout: float | None = None, *, copy: bool = True) -> Any:  # @5+
        """Receive the next message, waiting at most ``timeout`` seconds (``None``: forever).

        Raises:
            TimeoutError: Nothing arrived in time; the channel stays usable.
            RemoteError: The peer's work function raised (raised again on every later call).
            WorkerDied: The peer reported its exit; every message before it was delivered.
            ChannelClosed: The peer closed the channel or its process ended.
            ProtocolError: A frame broke the wire format.
        """
        deadline = deadline_after(check_timeout(timeout))
        self.codec.release_views()  # before waiting: the peer may want its region back  # @5+
        try:
            kind, payload = self._next_frame(deadline)
        except TimeoutError:
            raise TimeoutError(f"no message from {self._peer_name()} within {timeout} s") from None
        if kind == MESSAGE:
            self._pop_frame()
            # @1-4: return decode_message(payload)
            return self.codec.decode(payload, copy=copy)  # @5+
        if kind == ERROR:  # stays at the head: a failed worker keeps saying why
            # @1-4: raise decode_error(payload)
            raise decode_error(bytes(payload))  # @5+
        if kind == EXIT:
            # @1-4: raise decode_exit(payload, self.peer_pid)
            raise decode_exit(bytes(payload), self.peer_pid)  # @5+
        self._pop_frame()
        raise ProtocolError(f"unknown frame kind {kind}")

    # --8<-- [end:recv]

    def poll(self) -> bool:
        """Return True if `recv` would return or raise without waiting."""
        try:
            self._next_frame(time.monotonic())
        except TimeoutError:
            return False
        except (ChannelClosed, ProtocolError):
            return True
        return True

    def final_error(self) -> Exception | None:
        """If the end of the stream has arrived, the error ``recv`` will raise there.

        That is the peer's error or exit report, or why the stream ended; ``None``
        while more messages may come. Messages buffered before it are not touched.
        """
        try:
            for kind, payload in self._frames:
                if kind == ERROR:
                    # @1-4: return decode_error(payload)
                    return decode_error(bytes(payload))  # @5+
                if kind == EXIT:
                    # @1-4: return decode_exit(payload, self.peer_pid)
                    return decode_exit(bytes(payload), self.peer_pid)  # @5+
        except ProtocolError as e:  # a malformed report: what recv will raise, too
            return e
        return None if self._end is None else self._end.error()

    def drain(self, *, deadline: float | None = None, max_backlog: int | None = None) -> None:
        """Read what has already arrived into the buffer, without waiting for more.

        A peer that sends without pause keeps the socket readable for ever, so this
        also stops once ``time.monotonic()`` passes ``deadline`` (after one read at
        least), or once `backlog` exceeds ``max_backlog`` bytes.
        """
        while self._end is None and not self.closed and self._socket_readable_now():
            if max_backlog is not None and self.backlog > max_backlog:
                return
            self._read_some()
            if deadline is not None and time.monotonic() >= deadline:
                return

    def discard_messages(self) -> None:
        """Drop the messages received but not yet delivered; a report of the end stays."""
        while self._frames and self._frames[0][0] == MESSAGE:
            self._pop_frame()

    @property
    def backlog(self) -> int:
        """Bytes of memory held for `recv`: frames not yet delivered, and a partial one."""
        # @1-4: return self._frames_cost + len(self._buffer)
        return self._frames_cost + len(self._buffer) + self._big.backlog  # @5+

    def fileno(self) -> int:
        """The socket's file descriptor (for ``select``)."""
        return self._sock.fileno()

    def wait_fds(self) -> list[int]:
        """Descriptors that become readable when this channel has news."""
        fds = [self._sock.fileno()]
        if self._watch_fd is not None:
            fds.append(self._watch_fd)
        return fds

    @property
    def ended(self) -> bool:
        """True once the incoming stream has ended (the peer hung up, or it broke)."""
        return self._end is not None

    @property
    def closed(self) -> bool:
        """True once `close` was called here."""
        return self._sock.fileno() < 0

    def close(self) -> None:
        """Close this end; the peer's ``recv`` then sees the channel closed."""
        if not self.closed:
            self._poller = select.poll()
            self._sock.close()
            self.codec.close()  # @5+

    def shutdown(self, how: int = socket.SHUT_WR) -> None:
        """Send end-of-file to the peer (SHUT_WR), or end a blocked read here (SHUT_RD)."""
        if not self.closed:
            self._sock.shutdown(how)

    def exit_code(self) -> int | None:
        """The code of an EXIT frame that has arrived but is not yet delivered (also behind
        an ERROR frame); None if there is none (or it is malformed: ``final_error`` says so).
        """
        for kind, payload in self._frames:
            if kind == EXIT:
                with contextlib.suppress(ProtocolError):
                    # @1-4: return decode_exit(payload, self.peer_pid).returncode
                    return decode_exit(bytes(payload), self.peer_pid).returncode  # @5+
        return None

    # --8<-- [start:next_frame]
    # @1-4: def _next_frame(self, deadline: float | None) -> tuple[int, bytes]:
    def _next_frame(self, deadline: float | None) -> tuple[int, Payload]:  # @5+
        """Return (without removing) the first complete frame, waiting until ``deadline``.

        The buffer is checked before the socket: a frame that has already arrived must
        not wait for the socket to become readable again (it may never).
        """
        while True:
            if self._frames:
                return self._frames[0]
            if self.closed:
                raise ChannelClosed("the channel is closed")
            if self._end is not None:
                raise self._end.error()
            if deadline is None:  # no deadline: a blocking read, no poll() per message
                self._read_some()
                continue
            ready = [fd for fd, _ in self._poller.poll(ms_until(deadline))]
            if not ready:
                raise TimeoutError("no message arrived in time")
            if self._sock.fileno() in ready:
                self._read_some()
            else:
                self._check_watched_process()

    # --8<-- [end:next_frame]

    def _read_some(self) -> None:
        """Read what the socket has and cut complete frames off it; blocks if it has nothing.

        With a watched process, the socket's receive timeout (SO_RCVTIMEO) ends a
        blocking read every ``_WATCH_INTERVAL`` s so we can look at that process.
        """
        # @5+ {
        if self._big.current is not None:
            self._read_big_frame()
            return
        # @}
        try:
            data = self._sock.recv(_RECV_SIZE)
        except BlockingIOError:  # the receive timeout expired: nothing arrived meanwhile
            self._check_watched_process()
            return
        except (ConnectionResetError, TimeoutError):  # TimeoutError: TCP keepalives gave up
            data = b""
        if not data:
            if self._buffer:
                self._end = _StreamEnd("the peer closed the channel mid-frame", fatal=True)
                self._salvage_report(bytes(self._buffer[-_MAX_REPORT:]), at_the_end=True)  # @2+
            else:
                self._end = _StreamEnd("the peer closed the channel", fatal=False)
            return
        self._buffer += data
        unchecked = b""  # @2+
        try:
            limit = self.options.max_frame + self._tag_size  # the payload's limit, and its tag
            limit += self.options.max_buffer_bytes  # raw buffers may follow it  # @5+
            while (frame := take_frame(self._buffer, limit)) is not None:
                unchecked = frame[1]  # @2+
                frame = self._checked(frame)  # authenticated before its kind means anything
                if frame[0] in (ERROR, EXIT) and not self.from_worker:
                    raise ProtocolError(
                        f"frame kind {frame[0]} is a worker's report: never sent to one"
                    )
                # @5+ {
                if frame[0] != MESSAGE and len(frame[1]) > self.options.max_frame:
                    raise ProtocolError(f"a report of {len(frame[1])} bytes exceeds max_frame")
                # @}
                self._frames.append(frame)
                self._frames_cost += len(frame[1]) + _FRAME_COST
            # @5+ {
            # if a big frame has begun, it takes over from here
            self._big.begin(self._buffer, self.codec.may_read)
            # @}
        except ProtocolError as e:
            self._end = _StreamEnd(str(e), fatal=True)
            last = unchecked[-_MAX_REPORT:] + self._buffer[-_MAX_REPORT:]  # @2+
            self._salvage_report(bytes(last))  # @2+

    # @5+ {
    def _read_big_frame(self) -> None:
        try:
            frame = self._big.read(self._sock)
        except BlockingIOError:  # the receive timeout expired: nothing arrived meanwhile
            self._check_watched_process()
            return
        except (EOFError, ProtocolError) as e:  # cut short, or it failed its MAC
            self._end = _StreamEnd(str(e), fatal=True)
            self._salvage_report(self._big.tail(_MAX_REPORT), at_the_end=isinstance(e, EOFError))
            return
        if frame is not None:
            self._frames.append(frame)
            self._frames_cost += len(frame[1]) + _FRAME_COST

    # @}
    # @2+ {
    def _salvage_report(self, tail: bytes, *, at_the_end: bool = False) -> None:
        """After the stream broke: deliver the server's report of the worker's end, if
        ``tail``, the last bytes received, ends with one.

        A worker killed in the middle of a frame leaves it unfinished; the report the server
        sends next then reads as the rest of that frame, which ends too early or fails its
        MAC. The report is sealed on its own (``frame_mac``'s ``reports_from``) and is the
        last thing the server sends, so it is found by its place: it ends the stream. Unless
        ``at_the_end`` (end-of-file was read), the rest of the stream is read first, for at
        most `_REPORT_GRACE` s; without an end-of-file nothing is delivered.
        """
        auth = self._frame_auth
        if auth is None or not self.from_worker:
            return
        if not at_the_end:
            rest = self._read_to_the_end()
            if rest is None:
                return
            tail = (tail + rest)[-_MAX_REPORT:]
        header, size = HEADER.size, self._tag_size
        for start in range(len(tail) - header - size, -1, -1):  # the shortest report first
            length, kind = HEADER.unpack_from(tail, start)
            if length != len(tail) - start - header:
                continue
            body = tail[start + header :]
            if auth.is_report(kind, body[:-size], body[-size:]):
                self._frames.append((EXIT, body[:-size]))
                self._frames_cost += len(body) + _FRAME_COST
                self._end = _StreamEnd("the peer closed the channel", fatal=False)
                return

    def _read_to_the_end(self) -> bytes | None:
        """What is left to read before end-of-file (at most `_MAX_REPORT` bytes, within
        `_REPORT_GRACE` s), or None if the stream goes on."""
        rest, deadline = bytearray(), time.monotonic() + _REPORT_GRACE
        while len(rest) <= _MAX_REPORT:
            if not wait_readable([self._sock.fileno()], max(0.0, deadline - time.monotonic())):
                return None
            try:
                data = self._sock.recv(_MAX_REPORT)
            except BlockingIOError:  # the receive timeout (SO_RCVTIMEO) expired
                continue
            except OSError:  # reset: what was in flight is lost
                return None
            if not data:
                return bytes(rest)
            rest += data
        return None

    # @}
    def _pop_frame(self) -> None:
        _, payload = self._frames.popleft()
        self._frames_cost -= len(payload) + _FRAME_COST

    def _checked(self, frame: tuple[int, bytes]) -> tuple[int, bytes]:
        """The frame without its tag, once ``frame_auth`` accepts it (else ProtocolError)."""
        if self._frame_auth is None:
            return frame
        kind, body = frame
        if len(body) < self._tag_size:
            raise ProtocolError("a frame too short to carry its tag")
        payload = body[: -self._tag_size]
        self._frame_auth.check(kind, payload, body[-self._tag_size :])
        return kind, payload

    def _check_watched_process(self) -> None:
        """End the stream if the watched process has exited (after reading all it sent)."""
        assert self._watch_fd is not None
        if wait_readable([self._watch_fd], 0) and not self._socket_readable_now():
            self._end = _StreamEnd("the peer process exited", fatal=False)

    def _socket_readable_now(self) -> bool:
        return any(fd == self._sock.fileno() for fd, _ in self._poller.poll(0))

    def _peer_name(self) -> str:
        role = "worker" if self.from_worker else "peer"
        return f"{role} pid {self.peer_pid}" if self.peer_pid else f"the {role}"


class _StreamEnd:
    """Why a channel will deliver no more frames: the peer left, or the stream broke."""

    def __init__(self, reason: str, *, fatal: bool) -> None:
        self.reason = reason
        self.fatal = fatal

    def error(self) -> Exception:
        """The exception a reader gets from now on."""
        return ProtocolError(self.reason) if self.fatal else ChannelClosed(self.reason)
