"""Believes a FULL or BUSY verdict before checking its proof: anyone on the path can keep a
client away from its server by answering "full"."""


def client_handshake(
    sock: socket.socket, secret: bytes, timeout: float, *, peer: str = "the server"
) -> Session:
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
    if verdict[0] == FULL:
        raise ServerFull(f"{peer} is running as many workers as it allows (--workers)")
    if verdict[0] == BUSY:
        raise ServerFull(f"{peer} could not start a worker just now (out of processes?)")
    if verdict[0] != ACCEPTED:
        raise ProtocolError(f"{peer} sent an unknown verdict byte {verdict[0]}")
    if not hmac.compare_digest(verdict, session.verdict(verdict[0])):
        raise AuthenticationError(f"{peer} could not prove it knows the secret")
    return session
