"""Answers whatever arrives as if it were a call: a message that is not one crashes the
answer with a KeyError, instead of ending the worker with a ProtocolError that says so."""


def serve(handle: Channel, registry: Registry) -> None:
    while True:
        request = handle.recv()
        reply = _answer(request, registry)
        try:
            handle.send(reply)
        except TypeError as e:
            error = TypeError(f"{request.get('fn')!r} returned a value that cannot be sent: {e}")
            handle.send({"reply": reply["reply"], "error": _describe(error)})
