"""Checks the proof, then opens the session with the two nonces swapped: the keys and the
verdict's proof are not the ones the client derives, so it cannot trust the server."""


def check_answer(secret: bytes, server_nonce: bytes, answer: bytes) -> Session:
    client_nonce, proof = answer[:NONCE_SIZE], answer[NONCE_SIZE:]
    if not hmac.compare_digest(proof, derive(secret, b"client", server_nonce, client_nonce)):
        raise AuthenticationError("client failed the challenge (wrong secret)")
    return Session(secret, client_nonce, server_nonce)
