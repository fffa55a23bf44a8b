"""The shared secret and the HMAC handshake, tested without a server."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("tcp")


def handshake(server_secret: bytes, client_secret: bytes) -> tuple[object, object]:
    """Run both halves over a socketpair; return what each side raised (or None)."""
    from miniray.auth import client_handshake, server_handshake

    server_end, client_end = socket.socketpair()
    outcome: dict[str, object] = {}

    def serve() -> None:
        try:
            server_handshake(server_end, server_secret, timeout=5)
            outcome["server"] = None
        except Exception as e:
            outcome["server"] = e

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        client_handshake(client_end, client_secret, timeout=5)
        client: object = None
    except Exception as e:
        client = e
    thread.join(10)
    return outcome["server"], client


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


@pytest.mark.ex02_2
def test_the_secret_never_crosses_the_wire() -> None:
    from miniray.auth import client_handshake

    server_end, client_end = socket.socketpair()
    server_end.sendall(b"MINIRAY2" + b"\x00" + os.urandom(32))
    secret = b"a-very-recognisable-secret-value"
    thread = threading.Thread(target=lambda: _expect_failure(client_handshake, client_end, secret))
    thread.start()
    sent = server_end.recv(1000)
    server_end.sendall(b"\x01" + bytes(32))
    thread.join(10)
    assert len(sent) == 64 and secret not in sent


def _expect_failure(fn: object, *args: object) -> None:
    from miniray import AuthenticationError

    with pytest.raises(AuthenticationError):
        fn(*args, timeout=5)  # type: ignore[operator]


def test_the_per_user_secret_is_created_once_with_mode_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray.auth import default_secret_path, load_secret

    for name in ("MINIRAY_SECRET", "MINIRAY_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    first = load_secret()
    path = default_secret_path()
    assert path == tmp_path / "miniray" / "secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert load_secret() == first and len(first) >= 32


def test_a_secret_file_others_can_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray import AuthenticationError
    from miniray.auth import load_secret

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
    from miniray.auth import load_secret

    monkeypatch.setenv("MINIRAY_SECRET", "from-the-environment-123")
    assert load_secret() == b"from-the-environment-123"
    assert load_secret("given-explicitly-12345678") == b"given-explicitly-12345678"
    with pytest.raises(AuthenticationError, match="at least"):
        load_secret("short")
