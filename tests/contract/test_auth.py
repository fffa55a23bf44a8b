"""The shared secret and the HMAC handshake, tested without a server."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from testutil import recv_exactly

pytestmark = pytest.mark.needs("tcp")


def handshake(server_secret: bytes, client_secret: bytes) -> tuple[object, object]:
    """Run both halves over a socketpair; return what each side raised (or None).

    The server's half is what the WorkerServer does in its poll loop: greet, read the
    64-byte answer, ``check_answer``, send the verdict.
    """
    from miniray.auth import client_handshake

    server_end, client_end = socket.socketpair()
    outcome: dict[str, object] = {}

    def serve() -> None:
        try:
            serve_one_handshake(server_end, server_secret)
            outcome["server"] = None
        except Exception as e:
            outcome["server"] = e

    thread = threading.Thread(target=serve, daemon=True)  # runs exercise 2.1's code
    thread.start()
    try:
        client_handshake(client_end, client_secret, timeout=5)
        client: object = None
    except Exception as e:
        client = e
    client_end.close()  # a server still waiting for an answer sees the hang-up at once
    thread.join(10)
    server_end.close()
    return outcome.get("server"), client


def serve_one_handshake(sock: socket.socket, secret: bytes, status: int | None = None) -> None:
    """The server's half, blocking: greet, check the answer, send the verdict ``status``."""
    from miniray import AuthenticationError
    from miniray.auth import ACCEPTED, REJECTION, check_answer, greeting

    nonce = os.urandom(32)
    sock.sendall(greeting(nonce))
    answer = recv_exactly(sock, 64)
    try:
        session = check_answer(secret, nonce, answer)
    except AuthenticationError:
        sock.sendall(REJECTION)
        raise
    sock.sendall(session.verdict(ACCEPTED if status is None else status))


def client_against(server: Callable[[socket.socket], None], secret: bytes = b"s" * 32) -> object:
    """Run client_handshake against a scripted server; return what it raised (or None)."""
    from miniray.auth import client_handshake

    server_end, client_end = socket.socketpair()

    def serve() -> None:
        with contextlib.suppress(OSError):  # the client may hang up at any point
            server(server_end)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client_handshake(client_end, secret, timeout=2, peer="10.0.0.1:10000")
        return None
    except Exception as e:
        return e
    finally:
        client_end.close()  # a scripted server still reading sees the hang-up at once
        thread.join(5)
        server_end.close()


@pytest.mark.ex02_1
@pytest.mark.ex02_2
def test_the_same_secret_passes_both_ways() -> None:
    assert handshake(b"s" * 32, b"s" * 32) == (None, None)


@pytest.mark.ex02_1
@pytest.mark.ex02_2
def test_a_different_secret_fails_on_both_sides() -> None:
    from miniray import AuthenticationError

    server, client = handshake(b"s" * 32, b"t" * 32)
    assert isinstance(server, AuthenticationError)
    assert isinstance(client, AuthenticationError)


@pytest.mark.ex02_1
def test_the_proof_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """``==`` stops at the first byte that differs, so its time tells an attacker how much of
    a forged proof was right; ``hmac.compare_digest`` takes as long whatever matches."""
    import hmac

    from miniray import AuthenticationError
    from miniray.auth import check_answer
    from miniray.frame_mac import derive

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    secret, server_nonce, client_nonce = b"s" * 32, os.urandom(32), os.urandom(32)
    proof = derive(secret, b"client", server_nonce, client_nonce)
    session = check_answer(secret, server_nonce, client_nonce + proof)
    assert (session.server_nonce, session.client_nonce) == (server_nonce, client_nonce)
    forged = proof[:-1] + bytes([proof[-1] ^ 1])  # right but for the last bit
    with pytest.raises(AuthenticationError):
        check_answer(secret, server_nonce, client_nonce + forged)
    assert any(proof in pair for pair in compared), "the proof was not compared in constant time"
    assert any(forged in pair for pair in compared), "the proof was not compared in constant time"


@pytest.mark.ex02_2
def test_the_secret_never_crosses_the_wire() -> None:
    from miniray import AuthenticationError
    from miniray.auth import greeting

    secret = b"a-very-recognisable-secret-value"
    received: list[bytes] = []

    def server(sock: socket.socket) -> None:
        sock.sendall(greeting(os.urandom(32)))
        received.append(recv_exactly(sock, 64))
        sock.sendall(b"\x01" + bytes(32))  # REJECTED

    error = client_against(server, secret)
    assert isinstance(error, AuthenticationError), error
    assert len(received[0]) == 64 and secret not in received[0]


@pytest.mark.ex02_2
@pytest.mark.parametrize("status", [1, 7, 255])
def test_a_greeting_with_an_unknown_status_is_a_protocol_error(status: int) -> None:
    """1 was an unauthenticated "full" in older servers: no stranger can say that now."""
    from miniray import ProtocolError
    from miniray.auth import MAGIC

    error = client_against(lambda sock: sock.sendall(MAGIC + bytes([status]) + os.urandom(32)))
    assert isinstance(error, ProtocolError), error
    assert f"10.0.0.1:10000 sent an unknown status byte {status}" in str(error)


@pytest.mark.ex02_2
def test_full_and_busy_are_believed_only_with_the_servers_proof() -> None:
    from miniray import AuthenticationError, ServerFull
    from miniray.auth import BUSY, FULL, MAC_SIZE

    def forge(sock: socket.socket, status: int) -> None:
        from miniray.auth import greeting

        sock.sendall(greeting(os.urandom(32)))
        recv_exactly(sock, 64)
        sock.sendall(bytes([status]) + bytes(MAC_SIZE))  # a stranger's "full": no proof

    for status in (FULL, BUSY):
        told = client_against(lambda sock, s=status: serve_one_handshake(sock, b"s" * 32, s))
        assert isinstance(told, ServerFull), told
        forged = client_against(lambda sock, s=status: forge(sock, s))
        assert isinstance(forged, AuthenticationError), forged


@pytest.mark.ex02_2
def test_an_unknown_verdict_is_a_protocol_error() -> None:
    from miniray import ProtocolError

    error = client_against(lambda sock: serve_one_handshake(sock, b"s" * 32, status=9))
    assert isinstance(error, ProtocolError) and "unknown verdict byte 9" in str(error), error


def test_frame_tags_bind_key_direction_order_and_kind() -> None:
    from miniray import ProtocolError
    from miniray.frame_mac import Session

    nonces = os.urandom(32), os.urandom(32)
    client = Session(b"s" * 32, *nonces).client_frames()
    worker = Session(b"s" * 32, *nonces).worker_frames()
    stranger = Session(b"s" * 32, os.urandom(32), nonces[1]).worker_frames()
    first, second = client.seal(0, b"first"), client.seal(0, b"second")
    for kind, payload, tag in [
        (0, b"second", second),  # out of order
        (0, b"first", bytes(16)),  # made up
        (1, b"first", first),  # another kind
        (0, b"First", first),  # altered
    ]:
        with pytest.raises(ProtocolError, match="integrity"):
            worker.check(kind, payload, tag)
    with pytest.raises(ProtocolError):
        stranger.check(0, b"first", first)  # another session's key
    worker.check(0, b"first", first)
    with pytest.raises(ProtocolError):
        worker.check(0, b"first", first)  # replayed
    worker.check(0, b"second", second)
    with pytest.raises(ProtocolError):
        client.check(0, b"first", first)  # reflected back to its sender


def test_the_servers_exit_report_is_taken_once_and_only_by_the_client() -> None:
    from miniray import ProtocolError
    from miniray.frame_mac import Session

    nonces = os.urandom(32), os.urandom(32)
    report = Session(b"s" * 32, *nonces).exit_report(-9)
    kind, payload, tag = report[8], report[9:-16], report[-16:]
    with pytest.raises(ProtocolError):
        Session(b"s" * 32, *nonces).worker_frames().check(kind, payload, tag)
    client = Session(b"s" * 32, *nonces).client_frames()
    client.check(kind, payload, tag)
    with pytest.raises(ProtocolError):
        client.check(kind, payload, tag)


def test_a_channel_with_frame_auth_refuses_an_injected_frame() -> None:
    import adapters

    from miniray import Channel, ProtocolError
    from miniray.frame_mac import Session

    nonces = os.urandom(32), os.urandom(32)
    ours, theirs = socket.socketpair()
    client = Channel(ours, frame_auth=Session(b"s" * 32, *nonces).client_frames())
    worker = Channel(theirs, frame_auth=Session(b"s" * 32, *nonces).worker_frames())
    worker.send({"n": 1})
    assert client.recv(timeout=5) == {"n": 1}
    theirs.sendall(adapters.frame(b'{"cmd": "injected"}' + bytes(16)))
    worker.send({"n": 2})
    with pytest.raises(ProtocolError, match="integrity"):
        client.recv(timeout=5)
    with pytest.raises(ProtocolError):
        client.recv(timeout=5)  # the channel has ended: nothing after the forgery is taken
    client.close()
    worker.close()


def test_the_per_user_secret_is_created_once_with_mode_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray.secret import default_secret_path, find_secret

    for name in ("MINIRAY_SECRET", "MINIRAY_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    first = find_secret()
    path = default_secret_path()
    assert path == tmp_path / "miniray" / "secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert find_secret() == first and len(first) == 64 and int(first, 16) >= 0


def test_a_secret_file_others_can_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray import AuthenticationError
    from miniray.secret import load_secret

    path = tmp_path / "secret"
    path.write_text("x" * 40)
    path.chmod(0o644)
    monkeypatch.delenv("MINIRAY_SECRET", raising=False)
    monkeypatch.setenv("MINIRAY_SECRET_FILE", str(path))
    with pytest.raises(AuthenticationError, match="chmod 600"):
        load_secret()


def test_explicit_and_environment_secrets_win_and_short_ones_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from miniray import AuthenticationError
    from miniray.secret import find_secret

    monkeypatch.setenv("MINIRAY_SECRET", "from-the-environment-123")
    assert find_secret() == b"from-the-environment-123"
    assert find_secret("given-explicitly-12345678") == b"given-explicitly-12345678"
    with pytest.raises(AuthenticationError, match="at least"):
        find_secret("short")
