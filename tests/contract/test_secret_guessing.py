"""One recorded handshake must not make the shared secret cheap to guess.

A client's answer to the greeting is a verifier of its secret: anything listening on the
port the client dials gets one, and can test guesses offline. These tests record one
from a real client (a fake server that greets, keeps the answer, rejects it) and play
the attacker with the library's own derivation; and they check that the derivation is
paid once per process and secret, never per connection, and that the command writes a
strong secret file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("tcp")
MAX_GUESSES_PER_SECOND = 200  # before the KDF: ~500,000 a second on one core


def record_one_answer(secret: str) -> tuple[bytes, bytes]:
    """Have a RemoteWorker dial a fake server; return the server's nonce and the answer."""
    from miniray import AuthenticationError, RemoteWorker
    from miniray.auth import ANSWER_SIZE, REJECTION, greeting

    nonce = os.urandom(32)
    recorded: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def impostor() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                conn.sendall(greeting(nonce))
                answer = b""
                while len(answer) < ANSWER_SIZE:
                    chunk = conn.recv(ANSWER_SIZE - len(answer))
                    if not chunk:
                        break
                    answer += chunk
                recorded.append(answer)
                conn.sendall(REJECTION)

        thread = threading.Thread(target=impostor, daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        with pytest.raises(AuthenticationError):
            RemoteWorker("127.0.0.1", port, secret=secret, connect_timeout=10)
        thread.join(10)
    assert len(recorded) == 1 and len(recorded[0]) == ANSWER_SIZE, recorded
    return nonce, recorded[0]


def test_one_recorded_answer_makes_each_guess_of_the_secret_slow() -> None:
    from miniray.frame_mac import derive
    from miniray.secret import load_secret

    chosen = "miniray-cluster-2024"  # what a person picks for a cluster
    nonce, answer = record_one_answer(chosen)
    client_nonce, proof = answer[:32], answer[32:]

    def matches(guess: str) -> bool:
        """The attacker's test of one guess, with the library's own derivation."""
        return derive(load_secret(guess), b"client", nonce, client_nonce) == proof

    guesses = [f"miniray-cluster-{secrets.token_hex(4)}" for _ in range(5)]  # none cached
    start = time.perf_counter()
    found = [guess for guess in guesses if matches(guess)]
    rate = len(guesses) / (time.perf_counter() - start)
    assert not found
    assert matches(chosen), "the attack must be the right one: the true secret matches"
    assert rate < MAX_GUESSES_PER_SECOND, f"{rate:,.0f} guesses a second from one recorded answer"


def test_the_key_is_derived_once_per_process_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from miniray.secret import load_secret

    derived: list[bytes] = []
    scrypt = hashlib.scrypt

    def counted(password: bytes, **options: int | bytes) -> bytes:
        derived.append(password)
        return scrypt(password, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(hashlib, "scrypt", counted)
    one, other = (f"{secrets.token_hex(32)}" for _ in range(2))  # fresh: nothing cached yet
    keys = {load_secret(one) for _ in range(3)}
    assert len(keys) == 1 and derived == [one.encode()]
    record_one_answer(one)  # a connection: the key is there already
    record_one_answer(one)
    assert derived == [one.encode()], "a connection derived the key again"

    # Threads that ask for a new secret's key at once (a Cluster's nodes) share one scrypt.
    barrier = threading.Barrier(4, timeout=10)

    def ask() -> None:
        barrier.wait()
        load_secret(other)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert derived == [one.encode(), other.encode()]
    assert load_secret(one) != load_secret(other)


def test_a_short_secret_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    from miniray.secret import load_secret

    caplog.set_level(logging.WARNING, logger="miniray.secret")
    short = f"cluster-{secrets.token_hex(5)}"  # 18 characters, fresh
    load_secret(short)
    load_secret(short)
    load_secret(secrets.token_hex(32))  # a generated one: no warning
    warnings = [r.getMessage() for r in caplog.records if r.name == "miniray.secret"]
    assert len(warnings) == 1, warnings
    assert "the secret has 18 characters" in warnings[0]
    assert "python -m miniray.secret PATH" in warnings[0]


def new_secret_file(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "miniray.secret", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_command_writes_a_strong_private_secret_file_and_never_overwrites_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray.secret import find_secret

    path = tmp_path / "new" / "secret"  # the folder is made too, for the owner only
    made = new_secret_file(path)
    assert made.returncode == 0, made.stderr
    assert made.stderr == ""  # nothing else: runpy warned while the package imported it
    assert f"wrote a new secret to {path} (mode 0600)" in made.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert len(text.strip()) == 64 and int(text, 16) >= 0 and text.endswith("\n")
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no temporary file left

    again = new_secret_file(path)
    assert again.returncode == 2
    assert f"{path} exists: not overwritten" in again.stderr
    assert path.read_text() == text

    monkeypatch.delenv("MINIRAY_SECRET", raising=False)
    monkeypatch.setenv("MINIRAY_SECRET_FILE", str(path))
    assert find_secret() == text.strip().encode()  # a file load_secret accepts as it is
