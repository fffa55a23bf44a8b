# @2+
"""Who may talk to a WorkerServer: a shared secret, proven without being sent; and
a key for every frame after that.

Before a single frame is parsed, both sides prove they know the same secret with an
HMAC challenge-response (mutual: a client also knows it reached a real server). The
HMACs are keyed with K, the key ``secret.load_secret`` derives from the secret with
scrypt (the ``secret`` arguments below are that key):

    server -> client   MAGIC, READY, server_nonce                (41 bytes)
    client -> server   client_nonce, HMAC(K, "client" + Ns + Nc)  (64 bytes)
    server -> client   verdict, HMAC(K, "server" + verdict + Nc + Ns)  (33 bytes)

The verdict is ACCEPTED, FULL (no free worker slot) or BUSY (the server could not
start a worker just now), each carrying the server's proof, so a client believes
"full" only from a server that knows the secret; REJECTED (wrong secret) cannot carry
a proof the client could check, and is taken as an authentication failure.

Fresh random nonces make every proof single-use: a recorded handshake replays nowhere.
The secret itself never crosses the wire, but a proof is a verifier of it: whoever
records one (on the path, or by listening on the port a client dials) can test guesses
of the secret offline, one scrypt each. So use a random secret (``python -m
miniray.secret PATH``); the per-user file and a Cluster's secret are random already.

Both sides then hold a :class:`~.session.Session`: a key derived from K and
both nonces, with which every frame after the handshake is sealed (``frame_mac.py``).

What it does not do: encrypt. Anyone on the path can read the messages. Use it on
a private network or through an SSH tunnel (stage 3 launches over SSH).
"""

from __future__ import annotations

import hmac
import secrets
import socket
import time

from .errors import AuthenticationError, ProtocolError, ServerFull, ServerUnreachable
from .frame_mac import Session, derive

# --8<-- [start:handshake_format]
# @2-4: PROTOCOL = b"3"  # the wire's version (3: every frame has a MAC); bumped as it changes
PROTOCOL = b"4"  # the wire's version (4: a codec proposal follows the handshake; buffers)  # @5+
NAME = b"MINIRAY"  # what every MiniRay greeting starts with, whatever its version
MAGIC = NAME + PROTOCOL  # 8 bytes
NONCE_SIZE = MAC_SIZE = 32
READY = 0  # the greeting's status byte (the only one; anything else is a ProtocolError)
ACCEPTED, REJECTED, FULL, BUSY = 0, 1, 2, 3  # the server's verdict
GREETING_SIZE = len(MAGIC) + 1 + NONCE_SIZE  # 41
ANSWER_SIZE = NONCE_SIZE + MAC_SIZE  # 64: all the server ever reads before authentication
VERDICT_SIZE = 1 + MAC_SIZE  # 33
# --8<-- [end:handshake_format]
REJECTION = bytes([REJECTED]) + bytes(MAC_SIZE)  # no proof: the client could not check one


def greeting(server_nonce: bytes) -> bytes:
    """The server's first words on a new connection: MAGIC, READY, its nonce."""
    return MAGIC + bytes([READY]) + server_nonce


# --8<-- [start:check_answer]
def check_answer(secret: bytes, server_nonce: bytes, answer: bytes) -> Session:
    """Check a client's 64-byte answer to the greeting; return the session it opens.

    The answer is the client's nonce and its proof, HMAC(secret, "client" + Ns + Nc).
    The proof is compared with ``hmac.compare_digest`` (never ``==``, whose time tells
    an attacker how many leading bytes were right).

    Raises:
        AuthenticationError: The proof is wrong (the client does not know the secret).
    """
    client_nonce, proof = answer[:NONCE_SIZE], answer[NONCE_SIZE:]
    if not hmac.compare_digest(proof, derive(secret, b"client", server_nonce, client_nonce)):
        raise AuthenticationError("client failed the challenge (wrong secret)")
    return Session(secret, server_nonce, client_nonce)


# --8<-- [end:check_answer]


# --8<-- [start:client_handshake]
def client_handshake(
    sock: socket.socket, secret: bytes, timeout: float, *, peer: str = "the server"
) -> Session:
    """Answer the server's challenge, check its verdict and proof; return the session.

    The greeting is checked as its bytes arrive: the first byte that differs from MAGIC
    (or a hang-up before the whole greeting) means the peer is no MiniRay server.

    Args:
        sock: A connected socket; nothing has been read from it yet.
        secret: The handshake key: ``load_secret``'s, from the shared secret.
        timeout: Seconds for the whole handshake (one deadline, not one per read).
        peer: ``"host:port"``, to name the server in error messages.

    Raises:
        ServerUnreachable: ``"{peer} did not answer like a MiniRay server (got b'...')"``,
            quoting what it sent (``_recv_greeting`` raises it).
        ProtocolError: ``"{peer} speaks MiniRay protocol N and we speak M: ..."`` (a
            MiniRay server of another version), ``"{peer} sent an unknown status byte N"``
            (greeting not READY),
            or ``"{peer} sent an unknown verdict byte N"``.
        AuthenticationError: ``"the server rejected our secret"`` (REJECTED), or
            ``"{peer} could not prove it knows the secret"``: an ACCEPTED, FULL or BUSY
            verdict that differs from ``session.verdict(byte)``.
        ServerFull: A proven FULL (no free worker slot) or BUSY (it could not start a
            worker just now).
        TimeoutError: The handshake took longer than ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    greeted = _recv_greeting(sock, deadline, peer)
    if greeted[len(MAGIC)] != READY:
        raise ProtocolError(f"{peer} sent an unknown status byte {greeted[len(MAGIC)]}")
    session = Session(secret, greeted[len(MAGIC) + 1 :], secrets.token_bytes(NONCE_SIZE))
    proof = derive(secret, b"client", session.server_nonce, session.client_nonce)
    _send(sock, session.client_nonce + proof, deadline)
    verdict = _recv_exactly(sock, VERDICT_SIZE, deadline, peer)
    if verdict[0] == REJECTED:
        raise AuthenticationError("the server rejected our secret")
    if verdict[0] not in (ACCEPTED, FULL, BUSY):
        raise ProtocolError(f"{peer} sent an unknown verdict byte {verdict[0]}")
    if not hmac.compare_digest(verdict, session.verdict(verdict[0])):
        raise AuthenticationError(f"{peer} could not prove it knows the secret")
    if verdict[0] == FULL:
        raise ServerFull(f"{peer} is running as many workers as it allows (--workers)")
    if verdict[0] == BUSY:
        raise ServerFull(f"{peer} could not start a worker just now (out of processes?)")
    return session


# --8<-- [end:client_handshake]


def _send(sock: socket.socket, data: bytes, deadline: float) -> None:
    sock.settimeout(max(0.0, deadline - time.monotonic()))
    sock.sendall(data)


def _recv_greeting(sock: socket.socket, deadline: float, peer: str) -> bytes:
    """Read the 41-byte greeting, giving up at the first byte that is not MAGIC's."""
    data = b""
    while len(data) < GREETING_SIZE:
        if not MAGIC.startswith(data[: len(MAGIC)]):
            break
        chunk = _recv_some(sock, GREETING_SIZE - len(data), deadline, peer)
        if not chunk:
            break
        data += chunk
    version = data[len(NAME) : len(MAGIC)]
    if data.startswith(NAME) and len(version) == len(PROTOCOL) and version != PROTOCOL:
        theirs = version.decode("ascii", "replace")  # a MiniRay of another version
        raise ProtocolError(
            f"{peer} speaks MiniRay protocol {theirs} and we speak {PROTOCOL.decode()}: "
            "run the same MiniRay version on both ends"
        )
    if len(data) < GREETING_SIZE or not data.startswith(MAGIC):
        shown = repr(data[:32]) + ("..." if len(data) > 32 else "")
        raise ServerUnreachable(f"{peer} did not answer like a MiniRay server (got {shown})")
    return data


def _recv_exactly(sock: socket.socket, size: int, deadline: float, peer: str) -> bytes:
    """Read exactly ``size`` bytes before ``deadline`` (a slow trickle does not extend it)."""
    data = b""
    while len(data) < size:
        chunk = _recv_some(sock, size - len(data), deadline, peer)
        if not chunk:
            raise ConnectionResetError(f"{peer} hung up during the handshake")
        data += chunk
    return data


def _recv_some(sock: socket.socket, size: int, deadline: float, peer: str) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError(f"the handshake with {peer} timed out")
    sock.settimeout(remaining)
    try:
        return sock.recv(size)
    except TimeoutError:
        raise TimeoutError(f"the handshake with {peer} timed out") from None
