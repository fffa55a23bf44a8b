"""The work function for the quick start: the server imports it once, at start."""


def work_fn(handle):
    """Echo each request back until the client hangs up."""
    while True:
        msg = handle.recv()
        if msg["cmd"] != "echo":
            raise ValueError(f"unknown command {msg['cmd']!r}")
        handle.send(msg)
