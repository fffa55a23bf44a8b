"""Compares the proof with ``==``, whose time tells an attacker how many leading bytes of a
forged proof were right; hmac.compare_digest takes the same time whatever matches."""


def check_answer(secret: bytes, server_nonce: bytes, answer: bytes) -> Session:
    client_nonce, proof = answer[:NONCE_SIZE], answer[NONCE_SIZE:]
    if proof != derive(secret, b"client", server_nonce, client_nonce):
        raise AuthenticationError("client failed the challenge (wrong secret)")
    return Session(secret, server_nonce, client_nonce)
