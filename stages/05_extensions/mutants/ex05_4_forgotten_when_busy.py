"""Forgets the mapping when a view still uses it, instead of keeping it to try again: the
region is never given back, and every later buffer goes through the socket."""


def release_views(self) -> None:
    if self._pinned is None or self._incoming is None:
        return
    pinned, self._pinned = self._pinned, None
    try:
        pinned.close()
    except BufferError:
        return
    self._incoming.release(self._pinned_seq)
