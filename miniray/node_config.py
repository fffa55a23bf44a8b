# @3+
"""NodeConfig: one machine of a cluster, and how to start its workers there.

A `Cluster` takes a list of them; a node's server is started from one (``launch``,
``cluster_node``), and the rank settings are numbered over them (``distributed``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import ConfigError
from .launch import LOCAL_HOSTS


@dataclass(frozen=True)
class NodeConfig:
    """One machine of a cluster, and how to start its workers.

    Args:
        host: Name for ssh (an alias from ``~/.ssh/config`` works); ``localhost`` or
            ``127.0.0.1`` run the server here, without SSH.
        num_workers: Workers on this node.
        base_port: The server's TCP port; None lets the node pick a free one.
        user: Login name (default: ssh's choice, e.g. from ``~/.ssh/config``).
        ssh_port: SSH port (default: ssh's choice).
        identity_file: Private key file for ssh (``-i``).
        ssh_options: More ssh arguments, e.g. ``["-F", "my_ssh_config"]``.
        python: The node's Python, by absolute path (default: this interpreter's path).
        cwd: Working directory on the node (default: this process's).
        env: Environment variables for the server and its workers.
    """

    host: str
    num_workers: int = 1
    base_port: int | None = None
    user: str | None = None
    ssh_port: int | None = None
    identity_file: str | None = None
    ssh_options: Sequence[str] = ()
    python: str = sys.executable
    cwd: str = field(default_factory=os.getcwd)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.host or self.host.startswith("-"):
            raise ConfigError(f"bad host name {self.host!r}")
        if self.num_workers < 1:
            raise ConfigError(f"node {self.host}: num_workers must be at least 1")
        if self.base_port is not None and not 0 <= self.base_port < 65536:
            raise ConfigError(f"node {self.host}: base_port {self.base_port} is not a port")

    @property
    def is_local(self) -> bool:
        """True if the server runs on this machine without SSH."""
        return self.host in LOCAL_HOSTS
