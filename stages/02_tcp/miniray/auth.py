"""Who may talk to a WorkerServer: a shared secret, proven without being sent.

Before a single frame is parsed, both sides prove they know the same secret with an
HMAC challenge-response (mutual: a client also knows it reached a real server):

    server -> client   MAGIC, status, server_nonce               (41 bytes)
    client -> server   client_nonce, HMAC(secret, "client" + server_nonce + client_nonce)
    server -> client   verdict, HMAC(secret, "server" + client_nonce + server_nonce)

Fresh random nonces make every proof single-use: a recorded handshake replays nowhere.
The secret never crosses the wire and never appears on a command line.

What it does not do: encrypt. Anyone on the path can read the messages. Use it on
a private network or through an SSH tunnel (stage 3 launches over SSH).

The secret comes from, in order: the ``secret=`` argument, ``$MINIRAY_SECRET``,
the file named by ``$MINIRAY_SECRET_FILE``, or a per-user file created on first use
with mode 0600 (like Erlang's cookie): ``$XDG_CONFIG_HOME/miniray/secret``,
by default ``~/.config/miniray/secret``.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import secrets
import socket
import stat
import time
from pathlib import Path

from .errors import AuthenticationError, ProtocolError, ServerFull

# --8<-- [start:handshake_format]
MAGIC = b"MINIRAY2"
NONCE_SIZE = MAC_SIZE = 32
READY, FULL = 0, 1  # status in the server's greeting
ACCEPTED, REJECTED = 0, 1  # the server's verdict
# --8<-- [end:handshake_format]
_MIN_SECRET_CHARS = 16


# --8<-- [start:server_handshake]
def server_handshake(sock: socket.socket, secret: bytes, timeout: float) -> None:
    """Challenge a new client; return if it proves it knows ``secret``.

    Reads exactly 64 bytes, whatever the client sends, and parses nothing else.

    Raises:
        AuthenticationError: Wrong proof (the client is told, then the caller hangs up).
        TimeoutError: The whole handshake took longer than ``timeout`` seconds.
        ConnectionError: The client went away.
    """
    deadline = time.monotonic() + timeout
    server_nonce = secrets.token_bytes(NONCE_SIZE)
    _send(sock, MAGIC + bytes([READY]) + server_nonce, deadline)
    answer = _recv_exactly(sock, NONCE_SIZE + MAC_SIZE, deadline)
    client_nonce, client_mac = answer[:NONCE_SIZE], answer[NONCE_SIZE:]
    if not hmac.compare_digest(client_mac, _mac(secret, b"client", server_nonce, client_nonce)):
        _send(sock, bytes([REJECTED]) + bytes(MAC_SIZE), deadline)
        raise AuthenticationError("client failed the challenge (wrong secret)")
    _send(sock, bytes([ACCEPTED]) + _mac(secret, b"server", client_nonce, server_nonce), deadline)


# --8<-- [end:server_handshake]


# --8<-- [start:client_handshake]
def client_handshake(sock: socket.socket, secret: bytes, timeout: float) -> None:
    """Answer the server's challenge and check the server's own proof.

    Raises:
        ServerFull: The server refused us before the challenge: no free worker slot.
        AuthenticationError: The server rejected our secret, or could not prove its own.
        ProtocolError: The peer is not a MiniRay server.
        TimeoutError: The handshake took longer than ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    greeting = _recv_exactly(sock, len(MAGIC) + 1 + NONCE_SIZE, deadline)
    if greeting[: len(MAGIC)] != MAGIC:
        raise ProtocolError("the peer is not a MiniRay server (or a different version)")
    if greeting[len(MAGIC)] == FULL:
        raise ServerFull("the server is running as many workers as it allows (--workers)")
    server_nonce = greeting[len(MAGIC) + 1 :]
    client_nonce = secrets.token_bytes(NONCE_SIZE)
    proof = _mac(secret, b"client", server_nonce, client_nonce)
    _send(sock, client_nonce + proof, deadline)
    verdict = _recv_exactly(sock, 1 + MAC_SIZE, deadline)
    if verdict[0] != ACCEPTED:
        raise AuthenticationError("the server rejected our secret")
    if not hmac.compare_digest(verdict[1:], _mac(secret, b"server", client_nonce, server_nonce)):
        raise AuthenticationError("the server could not prove it knows the secret")


# --8<-- [end:client_handshake]


def refuse_full(sock: socket.socket) -> None:
    """Tell a client there is no free worker slot (best effort, never blocks)."""
    try:
        sock.setblocking(False)
        sock.send(MAGIC + bytes([FULL]) + bytes(NONCE_SIZE))
    except OSError:
        pass


# --8<-- [start:load_secret]
def load_secret(secret: str | bytes | None = None) -> bytes:
    """Find the shared secret (see the module docstring for where it is looked up).

    Raises:
        AuthenticationError: A secret file is missing or unsafe (see
            ``_read_secret_file``), or the secret is too short to be one.
    """
    if secret is None:
        secret = os.environ.get("MINIRAY_SECRET")
    if secret is None:
        path = os.environ.get("MINIRAY_SECRET_FILE")
        secret = _read_secret_file(Path(path)) if path else _default_secret()
    value = secret.encode() if isinstance(secret, str) else secret
    if len(value.strip()) < _MIN_SECRET_CHARS:
        raise AuthenticationError(f"the secret must be at least {_MIN_SECRET_CHARS} characters")
    return value.strip()


def default_secret_path() -> Path:
    """Where the per-user secret lives: ``$XDG_CONFIG_HOME/miniray/secret``."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(config) / "miniray" / "secret"


def _default_secret() -> bytes:
    """Read the per-user secret, creating it (mode 0600) on first use."""
    path = default_secret_path()
    if not os.path.lexists(path):  # a symlink there is not ours to replace: read refuses it
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".secret.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(temporary, path)  # atomic, and never overwrites a racing creator's file
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return _read_secret_file(path)


# --8<-- [end:load_secret]


def _read_secret_file(path: Path) -> bytes:
    """Read a secret file that no other user can read, change or replace.

    Refused, each with a message that says how to fix it: a symbolic link, anything
    but a regular file, a file not owned by this user or that others can access, and
    a file in a folder that another user owns or can write (they could swap the file;
    a sticky folder like ``/tmp`` stops them). The folder and the file are opened once
    (``O_NOFOLLOW``) and checked with ``fstat`` on those descriptors, so what is
    checked is what is read: nothing can be swapped in between.
    """
    folder = path.parent
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise AuthenticationError(f"secret file {path} does not exist") from None
    try:
        _refuse_unsafe_folder(os.fstat(folder_fd), folder, path)
        try:  # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat refuses it next
            fd = os.open(path.name, _SECRET_OPEN_FLAGS, dir_fd=folder_fd)
        except FileNotFoundError:
            raise AuthenticationError(f"secret file {path} does not exist") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise AuthenticationError(
                    f"secret file {path} is a symbolic link, which could point anywhere; "
                    "name the file itself"
                ) from None
            raise
    finally:
        os.close(folder_fd)
    with os.fdopen(fd, "rb") as f:
        _refuse_unsafe_file(os.fstat(fd), path)
        return f.read(_MAX_SECRET_FILE)


_SECRET_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_MAX_SECRET_FILE = 64 * 1024


def _refuse_unsafe_folder(info: os.stat_result, folder: Path, path: Path) -> None:
    """Refuse a secret file's folder in which another user could replace the file."""
    if info.st_uid not in (os.geteuid(), 0):
        raise AuthenticationError(
            f"secret file {path} is in {folder}, which belongs to uid {info.st_uid}, who "
            "could replace the file; keep the secret in a folder of your own"
        )
    writable_by_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable_by_others and not info.st_mode & stat.S_ISVTX:  # sticky: only owners rename
        raise AuthenticationError(
            f"secret file {path} is in {folder}, which other users can write "
            f"(mode {oct(info.st_mode & 0o777)}), so they could replace the file; "
            f"run: chmod go-w {folder}"
        )


def _refuse_unsafe_file(info: os.stat_result, path: Path) -> None:
    """Refuse a secret file that is not a small regular file of ours, private to us."""
    if not stat.S_ISREG(info.st_mode):
        raise AuthenticationError(f"secret file {path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise AuthenticationError(
            f"secret file {path} belongs to uid {info.st_uid}, not to you "
            f"(uid {os.geteuid()}); a secret file must be yours alone"
        )
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthenticationError(
            f"secret file {path} is accessible by other users "
            f"(mode {oct(info.st_mode & 0o777)}); run: chmod 600 {path}"
        )
    if info.st_size > _MAX_SECRET_FILE:
        raise AuthenticationError(f"secret file {path} has {info.st_size} bytes: not a secret")


def _mac(secret: bytes, role: bytes, *nonces: bytes) -> bytes:
    return hmac.new(secret, role + b"".join(nonces), hashlib.sha256).digest()


def _send(sock: socket.socket, data: bytes, deadline: float) -> None:
    sock.settimeout(max(0.0, deadline - time.monotonic()))
    sock.sendall(data)


def _recv_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    """Read exactly ``size`` bytes before ``deadline`` (a slow trickle does not extend it)."""
    data = bytearray()
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("handshake timed out")
        sock.settimeout(remaining)
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("the peer hung up during the handshake")
        data += chunk
    return bytes(data)
