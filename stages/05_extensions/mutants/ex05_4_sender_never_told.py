"""Forgets the lease once no view is left but never tells the sender: the region stays
claimed, and every later buffer goes through the socket."""


def release_views(self) -> None:
    if self._lease is None or self._incoming is None:
        return
    if self._lease() is not None:
        return
    self._lease = None
