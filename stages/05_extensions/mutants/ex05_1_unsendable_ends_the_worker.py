"""Lets a TypeError from send end the worker: one function returning a value the codec
cannot carry kills the worker, and every call after it."""


def serve(handle: Channel, registry: Registry) -> None:
    while True:
        request = handle.recv()
        if not (isinstance(request, dict) and isinstance(request.get("call"), int)):
            raise ProtocolError(f"expected a call, got {request!r:.100}")
        handle.send(_answer(request, registry))
