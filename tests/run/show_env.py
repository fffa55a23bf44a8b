"""Print, as JSON, what a script sees of how it was started: argv, __file__, sys.path[0],
its module, the launcher's variables, and whether MASTER_PORT is already held for rank 0's
store (torchrun's agent listens on it; no one else may take it meanwhile)."""

import json
import os
import socket
import sys


def port_taken(port: str | None) -> bool:
    """Whether a plain socket (no SO_REUSEADDR) is refused this port: someone holds it."""
    with socket.socket() as sock:
        try:
            sock.bind(("", int(port or 0)))
        except OSError:
            return True
    return False


NAMES = [
    "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
    "ROLE_NAME", "ROLE_WORLD_SIZE", "GROUP_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
    "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING", "OMP_NUM_THREADS",
]  # fmt: skip
seen = {
    "argv": sys.argv,
    "file": __file__,
    "path0": sys.path[0],
    "name": __name__,
    "main_is_me": sys.modules["__main__"].__dict__ is globals(),
    "env": {name: os.environ.get(name) for name in NAMES},
    "miniray_loaded": "miniray" in sys.modules,
    "master_port_taken": port_taken(os.environ.get("MASTER_PORT")),
    "fds_hidden": not any(k.startswith("MINIRAY_") and k.endswith("_FD") for k in os.environ),
}
print("SEEN " + json.dumps(seen), flush=True)
