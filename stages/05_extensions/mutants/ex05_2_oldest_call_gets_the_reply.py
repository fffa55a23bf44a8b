"""Gives each reply to the oldest pending call instead of the one its id names: a reply to
no pending call is taken for someone else's result."""


def _read_replies(self, until: _OwnReply | None = None) -> None:
    while until is None or not until.done():
        reply = self._next_reply()
        with self.table_lock:
            oldest = min(self.pending, default=None)
            future = None if oldest is None else self.pending.pop(oldest)
        if future is None:
            raise ProtocolError(f"a reply to no pending call: {reply!r:.100}")
        if "error" in reply:
            future.set_exception(self._remote_error(reply["error"]))
        else:
            future.set_result(reply.get("value"))
