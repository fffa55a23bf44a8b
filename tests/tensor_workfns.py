"""Work functions for arrays on a cluster: the node's server imports this module before it
forks its workers, so torch (or numpy) is imported once per node, not once per worker
(about 2.5 s of CPU each)."""

from __future__ import annotations

from typing import Any

try:
    import torch  # noqa: F401
except ImportError:
    import numpy  # noqa: F401

from cluster_workfns import echo


def echo_arrays(handle: Any) -> None:
    """echo in a program that uses torch (or numpy): a process receives tensors only if it
    has imported their module itself (a peer's placeholder never imports one)."""
    echo(handle)
