# @2+
"""The shared secret: where it is found, the key the handshake keys its proofs with, and
a command that writes a strong one.

    python -m miniray.secret ~/cluster-secret     # 64 random hex digits, mode 0600
    miniray-secret ~/cluster-secret               # the same, installed

The secret comes from, in order: the ``secret=`` argument, ``$MINIRAY_SECRET``,
the file named by ``$MINIRAY_SECRET_FILE``, or a per-user file created on first use
with mode 0600 (like Erlang's cookie): ``$XDG_CONFIG_HOME/miniray/secret``,
by default ``~/.config/miniray/secret``.

**Why the key is slow to make.** The handshake never sends the secret, but it sends a
proof, an HMAC over two nonces that anyone on the path, or anything listening on the port
a client dials, can record. Whoever holds one proof can test guesses of the secret
offline, as fast as they can compute HMACs: half a million a second on one core (a
secret a person chose, ``miniray-cluster-2024``, was among 200,000 guesses tested in
0.4 s). So the proofs are keyed not with the secret but with ``scrypt(secret)``: about
65 ms and 16 MiB of memory for every guess, whatever the attacker runs it on. Each
process derives it once per secret (``secret_key``) and keeps it, so a connection pays
nothing for it.

A random secret needs none of this (2**256 guesses are out of reach however cheap each
is), and one from this module's command, the per-user file, or a Cluster is random. The
key is still derived for every secret: one path, and a human-chosen one is covered
without anyone deciding that it is one. What scrypt buys for a weak secret is time, not
safety: a secret in a list of common passwords still falls. Use a generated one.

The salt is fixed (``KDF_SALT``): both ends derive the key with no round trip before
the handshake, and a salt per server would need one (the client would have to learn the
salt first, and the greeting has no room for it in this protocol). What a fixed salt
gives up: an attacker can precompute the keys of a list of passwords once for every
MiniRay deployment, instead of once per server. With a memory-hard KDF such a list is
costly, and a generated secret is in nobody's list.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import logging
import os
import secrets
import stat
import sys
import tempfile
import threading
from pathlib import Path

from .errors import AuthenticationError

_log = logging.getLogger(__name__)
_MIN_SECRET_CHARS = 16  # shorter is refused
_STRONG_SECRET_CHARS = 32  # shorter gets a warning: 64 hex digits are written here


# --8<-- [start:load_secret]
def load_secret(secret: str | bytes | None = None) -> bytes:
    """Find the shared secret and return the key it stands for: ``secret_key(secret)``.

    Raises:
        AuthenticationError: A secret file is missing or unsafe (see
            ``_read_secret_file``), or the secret is too short to be one.
        TypeError: ``secret`` is not a str, bytes or None.
    """
    return secret_key(find_secret(secret))


def find_secret(secret: str | bytes | None = None) -> bytes:
    """The shared secret itself (see the module docstring for where it is looked up).

    Raises:
        AuthenticationError: As `load_secret`.
    """
    if secret is None:
        secret = os.environ.get("MINIRAY_SECRET")
    if secret is None:
        path = os.environ.get("MINIRAY_SECRET_FILE")
        secret = _read_secret_file(Path(path)) if path else _default_secret()
    if not isinstance(secret, str | bytes):  # (its value is never shown: it may be the secret)
        raise TypeError(f"the secret is a str or bytes, not {type(secret).__name__}")
    value = secret.encode() if isinstance(secret, str) else secret
    if len(value.strip()) < _MIN_SECRET_CHARS:
        raise AuthenticationError(f"the secret must be at least {_MIN_SECRET_CHARS} characters")
    return value.strip()


def default_secret_path() -> Path:
    """Where the per-user secret lives: ``$XDG_CONFIG_HOME/miniray/secret``."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(config) / "miniray" / "secret"


def _default_secret() -> bytes:
    """Read the per-user secret, creating it on first use."""
    path = default_secret_path()
    if not os.path.lexists(path):  # a symlink there is not ours to replace: read refuses it
        with contextlib.suppress(FileExistsError):  # one beside us made it first: use that
            write_secret_file(path)
    return _read_secret_file(path)


# --8<-- [end:load_secret]


# --8<-- [start:secret_key]
KDF_SALT = b"MiniRay handshake key v1"  # fixed: both ends derive the key with no round trip
_keys: dict[bytes, bytes] = {}
_keys_lock = threading.Lock()  # threads that start at once derive a secret's key once


def secret_key(secret: bytes) -> bytes:
    """The key the handshake uses for ``secret``: scrypt of it, derived once per process.

    Anyone who records one handshake can test guesses of the secret offline; scrypt makes
    each guess cost what deriving this key costs, in time and in memory.
    """
    with _keys_lock:
        key = _keys.get(secret)
        if key is None:
            if len(secret) < _STRONG_SECRET_CHARS:
                _log.warning(
                    "the secret has %d characters: if a person chose it, one recorded "
                    "handshake lets an attacker guess it offline; generate a strong one "
                    "with: python -m miniray.secret PATH",
                    len(secret),
                )
            # n=2**14, r=8: ~65 ms and 16 MiB (128 * r * n bytes) a guess; maxmem leaves room
            key = hashlib.scrypt(
                secret, salt=KDF_SALT, n=2**14, r=8, p=1, maxmem=32 * 2**20, dklen=32
            )
            _keys[secret] = key
    return key


# --8<-- [end:secret_key]


def _new_lock_in_child() -> None:
    """A child forked while another thread held the lock would wait for it for ever."""
    global _keys_lock
    _keys_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


# --8<-- [start:write_secret_file]
def write_secret_file(path: Path) -> None:
    """Write a new random secret, 64 hex digits, to ``path``, readable by its owner only.

    The folder is created (mode 0700) if missing. The secret goes into a temporary file
    created with mode 0600 (never written first and restricted later), which is then
    linked into place: ``os.link`` never replaces a file, so a reader never sees half a
    secret, and two processes racing to create the same file agree on one.

    Raises:
        FileExistsError: ``path`` exists; it is left as it was.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        os.link(temporary, path)
    finally:
        os.unlink(temporary)


# --8<-- [end:write_secret_file]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m miniray.secret PATH``, ``miniray-secret PATH``)."""
    parser = argparse.ArgumentParser(
        prog="python -m miniray.secret" if __name__ == "__main__" else "miniray-secret",
        description="Write a new random shared secret (32 bytes, as 64 hex digits) to PATH, "
        "readable by you only (mode 0600). An existing file is never overwritten.",
        epilog="Use it with MINIRAY_SECRET_FILE=PATH, or write it to "
        "~/.config/miniray/secret; copy it (mode 0600) to every machine that shares it.",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="the file to create")
    args = parser.parse_args(argv)
    try:
        write_secret_file(args.path)
    except FileExistsError:
        parser.exit(2, f"{parser.prog}: error: {args.path} exists: not overwritten\n")
    except OSError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    print(f"wrote a new secret to {args.path} (mode 0600)")
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
