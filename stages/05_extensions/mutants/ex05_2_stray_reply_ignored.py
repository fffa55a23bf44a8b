"""Skips a reply to no pending call instead of ending with a ProtocolError: a peer that
breaks the protocol leaves every pending call waiting forever."""


def _read_replies(self, until: _OwnReply | None = None) -> None:
    while until is None or not until.done():
        reply = self._next_reply()
        reply_id = _reply_id(reply)
        with self.table_lock:
            future = None if reply_id is None else self.pending.pop(reply_id, None)
        if future is None:
            continue
        if "error" in reply:
            future.set_exception(self._remote_error(reply["error"]))
        else:
            future.set_result(reply.get("value"))
