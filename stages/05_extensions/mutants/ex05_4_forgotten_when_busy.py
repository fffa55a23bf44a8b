"""Forgets the lease when a view still uses it, instead of keeping it to try again: the
region is never given back, and every later buffer goes through the socket."""


def release_views(self) -> None:
    if self._lease is None or self._incoming is None:
        return
    lease, self._lease = self._lease, None
    if lease() is not None:
        return
    self._incoming.release(self._lease_seq)
