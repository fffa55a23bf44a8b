"""Sets every reply's value as the result, an error reply's too: a call that raised in the
worker returns None instead of raising RemoteError."""


def _read_replies(self, until: _OwnReply | None = None) -> None:
    while until is None or not until.done():
        reply = self._next_reply()
        reply_id = _reply_id(reply)
        with self.table_lock:
            future = None if reply_id is None else self.pending.pop(reply_id, None)
        if future is None:
            raise ProtocolError(f"a reply to no pending call: {reply!r:.100}")
        future.set_result(reply.get("value"))
