"""Opens the session without checking the proof: any client that sends 64 bytes is in."""


def check_answer(secret: bytes, server_nonce: bytes, answer: bytes) -> Session:
    client_nonce = answer[:NONCE_SIZE]
    return Session(secret, server_nonce, client_nonce)
