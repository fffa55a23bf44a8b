# @2+
"""What a handshake leaves both ends: a session key, and a MAC on every frame after it.

Both ends derive the key, HMAC(K, "session" + Ns + Nc), from the two nonces of the
handshake and K, the key made of the shared secret (``secret.py``), so it is new for
every connection and never crosses the wire. Every frame after the handshake then
ends with a tag, a MAC keyed with it over

    direction + sequence number + kind + payload, 16 bytes

The sequence numbers are counted on both sides, never sent, so a frame that is forged,
altered, replayed, dropped, reordered or sent back the other way fails its check, and
the Channel that checks it ends its stream with a ProtocolError.

Sixteen bytes are plenty here: a forger has one guess per connection (the first wrong
tag ends it), with odds of one in 2**128.

Which MAC: the tag is paid on every frame, and two costs matter. A small frame's tag
costs what the calls cost: there keyed BLAKE2s (a MAC by design, RFC 7693) is the
cheapest in the standard library, about half of HMAC-SHA256. A big frame's tag costs
what hashing its bytes costs: there HMAC-SHA256 wins, since OpenSSL's SHA-256 runs on the
CPU's SHA instructions (measured here: ~1.4 GB/s, against ~0.25-0.5 GB/s for BLAKE2s).
So a payload under ``BULK`` bytes gets BLAKE2s and a longer one HMAC-SHA256, cut to 16
bytes. Both ends know the payload's length, so both pick the same; the length is
covered by the tag, so an attacker cannot make them pick differently.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Protocol  # @5+

from .errors import ProtocolError
from .wire import EXIT, HEADER, encode_exit

TAG_SIZE = 16  # bytes of tag that end every frame after the handshake
CLIENT, WORKER, SERVER = b"C", b"W", b"S"  # who sealed a frame: the direction in each tag
Buffer = bytes | bytearray | memoryview  # what a payload may be (collections.abc has it from 3.12)
BULK = 1024  # payload bytes from which HMAC-SHA256 costs less than BLAKE2s (measured)
_SEQUENCE_AND_KIND = struct.Struct("!QB")  # hashed after the direction, before the payload


# @5+ {
class Mac(Protocol):
    """A MAC being fed: hashlib's and hmac's objects both are."""

    def update(self, data: Buffer, /) -> None: ...

    def digest(self) -> bytes: ...


# @}
def derive(secret: bytes, label: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256(secret, label + parts): every proof and key of the handshake."""
    return hmac.new(secret, label + b"".join(parts), hashlib.sha256).digest()


class Session:
    """What a successful handshake leaves both sides: the nonces, and keys derived from them.

    The session key, HMAC(secret, "session" + Ns + Nc), is new for every connection
    and never crosses the wire. (``secret`` is the handshake key, ``load_secret``'s.)
    """

    def __init__(self, secret: bytes, server_nonce: bytes, client_nonce: bytes) -> None:
        self._secret = secret
        self.server_nonce, self.client_nonce = server_nonce, client_nonce
        self._key = derive(secret, b"session", server_nonce, client_nonce)

    def verdict(self, status: int) -> bytes:
        """The server's verdict: ``status`` and the proof that the server sent it."""
        proof = derive(
            self._secret, b"server" + bytes([status]), self.client_nonce, self.server_nonce
        )
        return bytes([status]) + proof

    def worker_frames(self) -> FrameMAC:
        """The ``frame_auth`` of the worker's end of the connection."""
        return FrameMAC(self._key, sends=WORKER, receives=CLIENT)

    def client_frames(self) -> FrameMAC:
        """The ``frame_auth`` of the client's end: it also takes the server's exit report."""
        return FrameMAC(self._key, sends=CLIENT, receives=WORKER, reports_from=SERVER)

    def exit_report(self, code: int) -> bytes:
        """The EXIT frame the server sends for a worker it reaped, sealed as the server's."""
        payload = encode_exit(code)
        sealed = _Keyed(self._key, SERVER).tag(0, EXIT, (payload,))
        return HEADER.pack(len(payload) + len(sealed), EXIT) + payload + sealed


# --8<-- [start:frame_mac]
class FrameMAC:
    """Seal outgoing frames and check incoming ones: a Channel's ``frame_auth``.

    A frame's tag is a MAC of (direction + sequence number + kind + payload) keyed with
    the session key, ``TAG_SIZE`` bytes long: BLAKE2s for a payload under ``BULK`` bytes,
    else HMAC-SHA256. The sequence numbers are counted, never sent: a frame
    replayed, dropped, reordered or sent back the other way fails its check, and so
    does one an attacker made up without the key.

    Args:
        key: The session key.
        sends: The direction byte of frames sealed here.
        receives: The direction byte of frames checked here.
        reports_from: If set, one EXIT frame sealed with this direction byte (and
            sequence number 0) is also accepted: the server's report of how the worker
            ended, written after the worker could write nothing more.
    """

    tag_size = TAG_SIZE

    def __init__(
        self, key: bytes, *, sends: bytes, receives: bytes, reports_from: bytes | None = None
    ) -> None:
        # MACs already keyed and fed their direction byte, copied for every frame: copying
        # skips hashing the key again, which halves the cost of a small frame's tag.
        self._sealing, self._checking = _Keyed(key, sends), _Keyed(key, receives)
        self._reports = None if reports_from is None else _Keyed(key, reports_from)
        self._sent = self._received = 0

    def seal(self, kind: int, *payload: Buffer) -> bytes:
        """The tag of the next frame sent; ``payload`` may come in parts (hashed in order)."""
        self._sent += 1
        return self._sealing.tag(self._sent - 1, kind, payload)

    def check(self, kind: int, payload: Buffer, tag: bytes) -> None:
        """Accept the next frame received, or raise ProtocolError."""
        if hmac.compare_digest(tag, self._checking.tag(self._received, kind, (payload,))):
            self._received += 1
            return
        if self.is_report(kind, payload, tag):
            self._reports = None  # one report per session
            return
        # @2-4 {
        # raise ProtocolError(
        #     "a frame failed its integrity check (forged, replayed, reordered or altered "
        #     "on the way): the connection cannot be trusted"
        # )
        # @}
        # @5+ {
        raise _forged()

    def sealing(self, kind: int, size: int) -> StreamedTag:
        """The tag of the next frame sent, to be fed its ``size`` payload bytes as they go."""
        self._sent += 1
        return StreamedTag(self._sealing.start(self._sent - 1, kind, size))

    def checking(self, kind: int, size: int) -> StreamedTag:
        """The tag of the next frame received, to be fed its payload, then `check_streamed`."""
        return StreamedTag(self._checking.start(self._received, kind, size))

    def check_streamed(self, streamed: StreamedTag, tag: bytes) -> None:
        """Accept the frame whose payload ``streamed`` (from `checking`) was fed, or raise."""
        if not hmac.compare_digest(tag, streamed.tag()):
            raise _forged()
        self._received += 1

    # @}

    def is_report(self, kind: int, payload: Buffer, tag: bytes) -> bool:
        """Whether this is the server's sealed report of how the worker ended (if one may come)."""
        reports = self._reports
        if kind != EXIT or reports is None:
            return False
        return hmac.compare_digest(tag, reports.tag(0, EXIT, (payload,)))


# --8<-- [end:frame_mac]


class _Keyed:
    """Both MACs of one direction, keyed and fed the direction byte: the start of its tags."""

    def __init__(self, key: bytes, direction: bytes) -> None:
        self._small = hashlib.blake2s(direction, key=key, digest_size=TAG_SIZE)
        self._bulk = hmac.new(key, direction, "sha256")

    # @5+ {
    def start(self, sequence: int, kind: int, size: int) -> Mac:
        """A copy of the right MAC for a ``size``-byte payload, fed all that comes before it."""
        mac = self._small.copy() if size < BULK else self._bulk.copy()
        mac.update(_SEQUENCE_AND_KIND.pack(sequence, kind))
        return mac

    # @}
    def tag(self, sequence: int, kind: int, payload: tuple[Buffer, ...]) -> bytes:
        # (Parts are bytes-like with 1-byte items. One part, the usual case, skips sum(map()):
        # @2-4: # on a small frame that would cost about a third of the tag itself.)
        # @5+ {
        # on a small frame that would cost about a third of the tag itself. For the same
        # reason this does what `start` does inline: it runs for every small frame.)
        # @}
        size = len(payload[0]) if len(payload) == 1 else sum(map(len, payload))
        mac = self._small.copy() if size < BULK else self._bulk.copy()
        mac.update(_SEQUENCE_AND_KIND.pack(sequence, kind))
        for part in payload:  # separate updates: a big payload is never copied
            mac.update(part)
        return mac.digest()[:TAG_SIZE]  # (BLAKE2s makes TAG_SIZE bytes already)


# @5+ {
class StreamedTag:
    """The tag of one frame, fed its payload in pieces, as they go out or come in."""

    def __init__(self, mac: Mac) -> None:
        self._mac = mac

    def update(self, data: Buffer) -> None:
        """Hash the next bytes of the payload."""
        self._mac.update(data)

    def tag(self) -> bytes:
        """The tag, once every byte of the payload was fed."""
        return self._mac.digest()[:TAG_SIZE]


def _forged() -> ProtocolError:
    return ProtocolError(
        "a frame failed its integrity check (forged, replayed, reordered or altered "
        "on the way): the connection cannot be trusted"
    )


# @}
