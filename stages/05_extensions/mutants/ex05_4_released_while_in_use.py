"""Tells the sender the region is free even when a view (or an array made from one) still
uses it: the sender's next message overwrites bytes the receiver is still reading."""


def release_views(self) -> None:
    if self._lease is None or self._incoming is None:
        return
    # "the views will be gone by the time the sender writes again"
    self._incoming.release(self._lease_seq)
    self._lease = None
