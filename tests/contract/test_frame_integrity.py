"""Frames after the handshake are authenticated: a man in the middle can only break them.

A real TCP proxy sits between a RemoteWorker and a WorkerServer. It forwards the
handshake untouched (so both ends authenticate each other), then tampers with the
frames: it injects one of its own, replays one, or swaps two. Each end must take every
frame before the tampering and refuse the rest with a ProtocolError.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import adapters
import pytest
from testutil import ServerProcess, secret_env

pytestmark = pytest.mark.needs("tcp")
SECRET = "test-secret-0123456789abcdef"
FIRST = adapters.client_frames_before_messages()  # the index of the client's first message
HANDSHAKE = {"to worker": [64], "to client": [41, 33]}  # answer; greeting, verdict
Tamper = Callable[[str, int, bytes], list[bytes]]  # (direction, frame index, frame) -> out


def forged(payload: bytes) -> bytes:
    """The best a stranger can do: a well-formed frame with a made-up tag."""
    return adapters.frame(payload + os.urandom(adapters.frame_tag_size()))


class Proxy:
    """Forward one connection to ``port``, letting ``tamper`` rewrite the frames."""

    def __init__(self, port: int, tamper: Tamper) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._upstream, self._tamper = port, tamper
        self._sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()

    def _serve(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self._upstream))
        self._sockets += [client, server]
        for source, sink, direction in [
            (client, server, "to worker"),
            (server, client, "to client"),
        ]:
            threading.Thread(target=self._pump, args=(source, sink, direction), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        try:
            for size in HANDSHAKE[direction]:
                sink.sendall(_read(source, size))
            index = 0
            while True:
                header = _read(source, adapters.HEADER.size)
                length, _ = adapters.HEADER.unpack(header)
                for chunk in self._tamper(direction, index, header + _read(source, length)):
                    sink.sendall(chunk)
                index += 1
        except OSError:
            pass
        finally:  # end-of-file for the far end now: the other pump may still read from sink
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            sink.close()


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError
        data += chunk
    return data


@pytest.fixture
def through_proxy(tmp_path: Path) -> Iterator[Callable[[Tamper], object]]:
    """``through_proxy(tamper)`` -> a RemoteWorker to an echo server, via a tampering proxy."""
    from miniray import RemoteWorker

    server = ServerProcess("echo", env=secret_env(str(tmp_path), SECRET))
    made: list[tuple[Proxy, object]] = []

    def connect(tamper: Tamper) -> object:
        proxy = Proxy(server.port, tamper)
        worker = RemoteWorker("127.0.0.1", proxy.port, secret=SECRET, connect_timeout=5)
        made.append((proxy, worker))
        return worker

    yield connect
    for proxy, worker in made:
        worker.close(timeout=2)  # type: ignore[attr-defined]
        proxy.close()
    assert server.stop() == 0


def test_a_frame_injected_toward_the_worker_is_refused(through_proxy) -> None:  # type: ignore[no-untyped-def]
    from miniray import RemoteError

    def inject(direction: str, index: int, frame: bytes) -> list[bytes]:
        if direction == "to worker" and index == FIRST:
            return [frame, forged(b'{"cmd": "injected"}')]
        return [frame]

    worker = through_proxy(inject)
    worker.send({"n": 1})
    assert worker.recv(timeout=10) == {"n": 1}
    with pytest.raises(RemoteError) as caught:
        worker.recv(timeout=10)  # never the echo of {"cmd": "injected"}
    assert caught.value.remote_type == "ProtocolError"
    assert "integrity" in caught.value.remote_message


def test_a_frame_injected_toward_the_client_is_refused(through_proxy) -> None:  # type: ignore[no-untyped-def]
    from miniray import ProtocolError

    def inject(direction: str, index: int, frame: bytes) -> list[bytes]:
        if direction == "to client" and index == 1:  # after the hello and the first echo
            return [frame, forged(b'{"n": "forged"}')]
        return [frame]

    worker = through_proxy(inject)
    worker.send({"n": 1})
    worker.send({"n": 2})
    assert worker.recv(timeout=10) == {"n": 1}
    with pytest.raises(ProtocolError, match="integrity"):
        worker.recv(timeout=10)
    with pytest.raises(ProtocolError):
        worker.recv(timeout=10)  # the stream has ended: {"n": 2} is not taken either


@pytest.mark.parametrize("direction", ["to worker", "to client"])
def test_a_replayed_frame_is_refused(through_proxy, direction: str) -> None:  # type: ignore[no-untyped-def]
    from miniray import ProtocolError, RemoteError

    def replay(towards: str, index: int, frame: bytes) -> list[bytes]:
        first = FIRST if direction == "to worker" else 1  # the client's first message; the echo
        return [frame, frame] if towards == direction and index == first else [frame]

    worker = through_proxy(replay)
    worker.send({"n": 1})
    assert worker.recv(timeout=10) == {"n": 1}
    with pytest.raises(RemoteError if direction == "to worker" else ProtocolError) as caught:
        worker.recv(timeout=10)  # not the same message a second time
    assert "integrity" in str(caught.value)


def test_frames_delivered_out_of_order_are_refused(through_proxy) -> None:  # type: ignore[no-untyped-def]
    from miniray import RemoteError

    held: list[bytes] = []

    def swap(direction: str, index: int, frame: bytes) -> list[bytes]:
        if direction == "to worker" and index == FIRST:
            held.append(frame)
            return []
        if direction == "to worker" and index == FIRST + 1:
            return [frame, *held]
        return [frame]

    worker = through_proxy(swap)
    worker.send({"n": 1})
    worker.send({"n": 2})
    with pytest.raises(RemoteError) as caught:
        worker.recv(timeout=10)  # neither message is echoed: the first to arrive is wrong
    assert caught.value.remote_type == "ProtocolError"


@pytest.mark.parametrize("direction", ["to worker", "to client"])
def test_a_big_frame_altered_on_the_way_is_refused(through_proxy, direction: str) -> None:  # type: ignore[no-untyped-def]
    """A frame over 1 MiB: the size from which stage 5 reads a payload into its own buffer."""
    from miniray import ProtocolError, RemoteError

    big = "x" * (2 * 1024 * 1024)

    def flip_a_byte(towards: str, index: int, frame: bytes) -> list[bytes]:
        if towards == direction and len(frame) > len(big):
            middle = len(frame) // 2
            return [frame[:middle] + b"y" + frame[middle + 1 :]]
        return [frame]

    worker = through_proxy(flip_a_byte)
    worker.send({"n": 1})
    assert worker.recv(timeout=10) == {"n": 1}
    worker.send({"big": big})
    with pytest.raises(RemoteError if direction == "to worker" else ProtocolError) as caught:
        worker.recv(timeout=10)  # never the altered message
    assert "integrity" in str(caught.value)


def test_a_cut_frame_and_a_forged_report_of_the_worker_s_end_are_refused(through_proxy) -> None:  # type: ignore[no-untyped-def]
    """A worker killed mid-frame leaves half a frame, then the server's sealed report: the
    client looks for that report at the end of the stream. A forged one is not taken."""
    from miniray import ProtocolError

    exit_kind = 2  # wire.EXIT
    report = b'{"returncode": -9}' + os.urandom(adapters.frame_tag_size())

    def cut(direction: str, index: int, frame: bytes) -> list[bytes]:
        if direction == "to client" and index == 1:  # the first echo: half of it, a "report"
            return [frame[: len(frame) // 2], adapters.frame(report, kind=exit_kind)]
        if direction == "to client" and index == 2:
            raise ConnectionResetError  # the pump closes the client's end: end-of-file
        return [frame]

    worker = through_proxy(cut)
    worker.send({"n": 1, "pad": "x" * 200})
    worker.send({"n": 2})
    with pytest.raises(ProtocolError, match=r"mid-frame|integrity"):
        worker.recv(timeout=10)  # not WorkerDied: the report is not the server's
