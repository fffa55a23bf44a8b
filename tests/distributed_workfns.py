"""Work functions for the stage 4 tests: ranks that join a torch.distributed process group.

torch is imported here, at the top, on purpose: a node's server imports this module once
before it forks its workers, so the workers share that import (seconds each, otherwise).
"""

from __future__ import annotations

import os
import warnings

from miniray import Channel, NCCLConfig, join_process_group

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch
    import torch.distributed


def preflight_then_wait(handle: Channel) -> None:
    """Join the process group (the preflight's rank half), then wait for the end."""
    torch.set_num_threads(1)  # before any torch op in a forked worker
    config = NCCLConfig(**handle.recv())
    timeout = float(os.environ.get("MINIRAY_PREFLIGHT_TIMEOUT", "30"))
    join_process_group(handle, config, timeout=timeout)
    handle.send({"joined": torch.distributed.get_rank()})
    handle.recv()  # until the coordinator hangs up
