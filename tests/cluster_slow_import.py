"""A module that takes 3 s to import: a node whose server is not ready in time."""

import time

time.sleep(3)


def work_fn(handle: object) -> None:
    """Never reached in the tests."""
