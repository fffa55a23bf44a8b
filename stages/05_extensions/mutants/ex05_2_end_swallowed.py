"""Catches the exception that ends the replies and returns quietly: the worker's end (its
exit code, or the error it reported) is lost, and the waiting calls fail without saying
how it ended."""


def _read_replies(self, until: _OwnReply | None = None) -> None:
    while until is None or not until.done():
        try:
            reply = self._next_reply()
        except Exception:
            return
        reply_id = _reply_id(reply)
        with self.table_lock:
            future = None if reply_id is None else self.pending.pop(reply_id, None)
        if future is None:
            raise ProtocolError(f"a reply to no pending call: {reply!r:.100}")
        if "error" in reply:
            future.set_exception(self._remote_error(reply["error"]))
        else:
            future.set_result(reply.get("value"))
