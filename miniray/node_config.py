# @3+
"""NodeConfig: one machine of a cluster, and how to start its workers there.

A `Cluster` takes a list of NodeConfigs; a node's server is started from one (``launch``,
``cluster_node``), and the rank settings are numbered over them (``distributed``). The
Cluster's wire settings (`WireOptions`), with a node's own limits where it sets them, go to
that node's server on its command line and to each of its `ClusterWorker`s.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ConfigError
from .launch import LOCAL_HOSTS, is_shell_name
from .launchers import Launcher, get_launcher
from .process import check_env
from .settings import check_count, check_size
from .tcp import check_port
from .wire_options import WireOptions

MIN_FRAME = 1024  # bytes: a cluster's smaller max_frame could not carry a worker's error report
_FILES_PER_NODE = 3  # the launcher's pipes to a node's server (measured: 3 per node)


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
        env: Environment variables for the server and its workers (each value one line:
            the command line travels on the server's stdin, see ``launch.READ_COMMAND``).
        max_frame: This node's ``max_frame``, if not the Cluster's.
        max_buffer_bytes: This node's ``max_buffer_bytes``, if not the Cluster's.  # @5+
        launcher: How the server is started on the node (see ``launchers``): None (SSH,
            or a local shell for ``localhost``), a name (``"ssh"``, ``"local"``...), a
            template such as ``["kubectl", "exec", "-i", "{host}", "--"]``, or a `Launcher`.
        address: The address the node's server listens on, which the coordinator connects
            to (default: the launcher's choice, see `Launcher.bind`).
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
    max_frame: int | None = None
    max_buffer_bytes: int | None = None  # @5+
    launcher: str | Sequence[str] | Launcher | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        host = self.host
        # (split: no whitespace, and not empty)
        if not isinstance(host, str) or host.split() != [host] or host.startswith("-"):
            raise ConfigError(f"bad host name {host!r}")
        problem = _launch_problem(self)
        if problem is not None:
            raise ConfigError(f"node {host}: {problem}")
        limits = {"max_frame": (self.max_frame, MIN_FRAME)}
        limits["max_buffer_bytes"] = (self.max_buffer_bytes, 0)  # @5+
        try:
            check_count("num_workers", self.num_workers)
            for name, (value, least) in limits.items():
                if value is not None:  # None: the Cluster's own
                    check_size(name, value, least)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"node {self.host}: {e}") from None
        if self.base_port is not None:
            try:
                check_port(self.base_port, server=True)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"node {self.host}: base_port: {e}") from None
        self.get_launcher()

    @property
    def is_local(self) -> bool:
        """True if the server runs on this machine without SSH."""
        return self.host in LOCAL_HOSTS

    def wire_options(self, cluster: WireOptions) -> WireOptions:
        """The Cluster's wire settings, with this node's own limits where it sets them."""
        # @3-4: own = {"max_frame": self.max_frame}
        own = {"max_frame": self.max_frame, "max_buffer_bytes": self.max_buffer_bytes}  # @5+
        changes: dict[str, Any] = {name: v for name, v in own.items() if v is not None}
        return replace(cluster, **changes, set_on="NodeConfig") if changes else cluster

    def get_launcher(self) -> Launcher:
        """The `Launcher` that starts this node's server (`ConfigError` if none fits)."""
        return get_launcher(self.launcher, self.host)

    def with_launcher(self, launcher: str | Sequence[str] | Launcher | None) -> NodeConfig:
        """This node, with ``launcher`` unless it names its own (`ConfigError` if none fits)."""
        if launcher is None or self.launcher is not None:
            return self
        return replace(self, launcher=launcher)


def _launch_problem(node: NodeConfig) -> str | None:
    """What in ``node``'s launch settings would fail, or do something else, once it starts
    (an env value made a str, ssh_options "-v" as "-" and "v"); None if nothing."""
    if not isinstance(node.env, Mapping):  # (its value is not shown: it may hold secrets)
        return f"env must be a dict of str to str, not a {type(node.env).__name__}"
    try:
        check_env(node.env)  # the rule of a local Worker's env
    except (TypeError, ValueError) as e:
        return f"env: {e}"
    for name, value in node.env.items():
        if not is_shell_name(name):  # it is set by the shell's `env` on the node
            return f"env: {name!r} is not a shell name"
        if "\n" in value:  # the command line travels as one line (launch.READ_COMMAND)
            return f"env: the value of {name} holds a line break"
    options = node.ssh_options
    if isinstance(options, str) or not isinstance(options, Sequence) or not _all_str(options):
        return f"ssh_options must be a list of str, not {options!r:.60}"
    for name in ("python", "cwd"):
        path = getattr(node, name)
        if not isinstance(path, str) or not path or "\n" in path:
            return f"{name} must be a path (of one line), not {path!r:.60}"
    for name in ("user", "identity_file"):
        value = getattr(node, name)
        if value is not None and not isinstance(value, str):
            return f"{name} must be a str or None, not {value!r:.60}"
    try:
        if node.ssh_port is not None:
            check_port(node.ssh_port)
    except (TypeError, ValueError) as e:
        return f"ssh_port: {e}"
    return None


def _all_str(items: Sequence[object]) -> bool:
    return all(isinstance(item, str) for item in items)


def server_args(wire: WireOptions) -> list[str]:
    """A node server's command-line options for ``wire``'s settings (``cluster_server``)."""
    # @3-4: return ["--max-frame", str(wire.max_frame)]
    # @5+ {
    return [
        *("--max-frame", str(wire.max_frame)),
        *("--max-buffer-bytes", str(wire.max_buffer_bytes)),
        *("--codecs", wire.codec),
    ]
    # @}


def checked_nodes(nodes: object) -> list[NodeConfig]:
    """The nodes a Cluster was given, as a list; `ConfigError` for anything else."""
    if isinstance(nodes, NodeConfig):
        raise ConfigError(f"a cluster takes a list of NodeConfigs, not one: [{nodes!r}]")
    if not isinstance(nodes, Sequence) or isinstance(nodes, str):
        raise ConfigError(f"a cluster takes a list of NodeConfigs, not {nodes!r:.100}")
    if not nodes:
        raise ConfigError("a cluster needs at least one node")
    for index, node in enumerate(nodes):
        if not isinstance(node, NodeConfig):
            raise ConfigError(
                f"node {index} is {node!r:.100}, not a NodeConfig: "
                f"NodeConfig({node!r:.60}, num_workers=...)"
            )
    _check_open_files(nodes)
    return list(nodes)


def total_workers(nodes: Sequence[NodeConfig]) -> int:
    """The workers of all ``nodes``: a cluster's world size."""
    return sum(node.num_workers for node in nodes)


def _check_open_files(nodes: Sequence[NodeConfig]) -> None:
    """Each worker holds a socket here, each node a few pipes: a count past this process's
    open-file limit could only fail partway, once the nodes had forked that many workers
    (a typo, ``slots=100000``, kept a node forking for minutes)."""
    workers = total_workers(nodes)
    needed = workers + _FILES_PER_NODE * len(nodes)
    limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limit != resource.RLIM_INFINITY and needed > limit:
        on = f"{len(nodes)} node{'s' * (len(nodes) > 1)}"
        raise ConfigError(
            f"{workers} workers on {on} need {needed} open files here; this process may open "
            f"{limit} (ulimit -n): fewer workers, or a higher limit"
        )


def work_fn_path(work_fn: object) -> str:
    """``work_fn`` as the import path each node loads; TypeError (with the path, where one
    can be named) for a function given itself: it cannot travel to another machine."""
    if isinstance(work_fn, str):
        return work_fn
    module, name = getattr(work_fn, "__module__", None), getattr(work_fn, "__qualname__", "")
    named = isinstance(module, str) and module != "__main__" and "<" not in str(name)
    hint = f": work_fn={f'{module}.{name}'!r}" if named else ""
    raise TypeError(
        "work_fn: the import path each node loads (module.fn or path/to/file.py:fn), "
        f"not {work_fn!r:.100}{hint}"
    )
