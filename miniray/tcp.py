# @2+
"""The TCP details both ends share: connecting with clear errors, and socket options.

Loopback hides two things a real network does: small writes wait for more (Nagle's
algorithm), and a host that loses power sends no goodbye. ``tune`` answers both.
"""

from __future__ import annotations

import socket

from .errors import ServerUnreachable


def connect(host: str, port: int, timeout: float) -> socket.socket:
    """Open a tuned TCP connection, or say plainly why not.

    Raises:
        ServerUnreachable: Refused (is the server running?), timed out, or no route.
        TypeError, ValueError: ``host`` is not a name, or ``port`` not a port number (see
            `check_host`, `check_port`).
    """
    check_host(host)
    check_port(port)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise ServerUnreachable(
            f"connection to {host}:{port} refused: is the WorkerServer running on that port?"
        ) from None
    except TimeoutError:
        raise ServerUnreachable(f"no answer from {host}:{port} within {timeout} s") from None
    except OSError as e:
        raise ServerUnreachable(f"cannot connect to {host}:{port}: {e}") from None
    tune(sock)
    return sock


def check_host(host: object, *, server: bool = False) -> None:
    """Refuse, at the call, what is not a host name or address: ``None`` would mean this
    machine to the socket calls, and an int their own TypeError. A server may bind ``""``,
    every address of this machine; a client must name one."""
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {host!r:.50}")
    if not host and not server:
        raise ValueError("host is empty: name the server's host or address")


def check_port(port: object, *, server: bool = False) -> None:
    """Refuse, at the call, what is not a port number: the socket calls would fail with an
    unrelated message ("Servname not supported", an OverflowError), or, for ``True``,
    use port 1. A server may ask for port 0, any free one; a client may not."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, not {port!r:.50}")
    lowest = 0 if server else 1
    if not lowest <= port <= 65535:
        free = " (0: any free port)" if server else ""
        raise ValueError(f"port {port} is not in {lowest}-65535{free}")


# --8<-- [start:tune]
def tune(sock: socket.socket) -> None:
    """No Nagle delay on small messages; keepalives, so a vanished peer is noticed.

    Without keepalives a ``recv()`` with no timeout waits forever on a peer whose host
    lost power: no FIN or RST ever arrives. With these, the kernel gives up after about
    20 s of silence, and the connection ends like any other (``WorkerDied`` for a client;
    for the server, a client that left).
    """
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)  # seconds of silence
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)  # between probes
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5)  # unanswered probes


# --8<-- [end:tune]
