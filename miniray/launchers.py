# @3+
"""Launchers: how a node's server is started on its host, with its stdio attached to us.

A launcher is one small contract: given a node and a shell command, the argument list that
runs that command on the node with the command's stdin, stdout and stderr as pipes to this
process. The command is always ``launch.READ_COMMAND``, a shell that reads the real command
line (``launch.remote_command``) from stdin: no launcher's arguments hold a path, an
``env`` value or anything else of the node's. Everything else (the command line, the secret
and nonce on stdin, the ready line and logs on stdout, the stdin lease) travels through
those pipes, whatever carries them:

* ``local``: ``/bin/sh -c COMMAND`` here (nodes named ``localhost`` or ``127.0.0.1``);
* ``ssh``: ``ssh ... HOST COMMAND`` (every other node, unless told otherwise);
* ``srun``: ``srun --nodes=1 --ntasks=1 -w HOST --overlap /bin/sh -c COMMAND``, inside a  # @6+
  SLURM allocation: no SSH keys needed;  # @6+
* a template, any argument list with ``{host}`` in it, then ``/bin/sh -c COMMAND``:
  ``["kubectl", "exec", "-i", "{host}", "--"]``, ``["docker", "exec", "-i", "{host}"]``,
  ``["ip", "netns", "exec", "{host}"]``.

An engine that owns its processes' lifetimes overrides ``popen``: it returns a
process-like object whose pipes it relays itself (Ray's, see ``ray_cluster``).  # @6+
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any, Protocol

from .errors import ConfigError
from .launch import LOCAL_HOSTS, READ_COMMAND, command_line, ssh_command


class LaunchedNode(Protocol):
    """What a launcher reads of a `node_config.NodeConfig` (a protocol: no import cycle)."""

    @property
    def host(self) -> str: ...
    @property
    def user(self) -> str | None: ...
    @property
    def ssh_port(self) -> int | None: ...
    @property
    def identity_file(self) -> str | None: ...
    @property
    def ssh_options(self) -> Sequence[str]: ...


class Launcher:
    """Starts a command on a node, its stdin, stdout and stderr pipes to this process.

    Attributes:
        name: The launcher's name, for messages.
        bind: What the node's server listens on when ``NodeConfig.address`` is not given:
            ``auto`` (the address the ssh connection arrived at), ``hostname`` (the address
            the node's host name resolves to: a SLURM node's, a pod's, a container's) or an
            address.
        via_ssh: Whether exit code 255 is ssh's own failure (for the error's hint).
    """

    name = "launcher"
    bind = "hostname"
    via_ssh = False

    def argv(self, node: LaunchedNode, command: str, timeout: float) -> list[str]:
        """The argument list that runs the shell ``command`` on ``node``."""
        raise NotImplementedError

    def popen(self, argv: list[str], **options: Any) -> Any:
        """Start ``argv`` (`subprocess.Popen`'s arguments); the process, with its pipes."""
        return subprocess.Popen(argv, **options)

    def run(self, argv: list[str], timeout: float, stdin: bytes = b"") -> tuple[bytes, bytes]:
        """Run ``argv`` to its end, given ``stdin``; its stdout and stderr.

        Raises:
            subprocess.TimeoutExpired: It ran longer than ``timeout`` seconds (killed).
        """
        done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False)
        return done.stdout, done.stderr

    def run_command(self, node: LaunchedNode, command: str, timeout: float) -> tuple[bytes, bytes]:
        """Run the shell ``command`` on ``node`` to its end (as `READ_COMMAND` reads it, so
        it shows in no process list); its stdout and stderr. Raises as `run` does, and
        ConfigError for a command of more than one line."""
        return self.run(self.argv(node, READ_COMMAND, timeout), timeout, command_line(command))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class LocalLauncher(Launcher):
    """The command runs here, under ``/bin/sh -c``; its server listens on 127.0.0.1."""

    name, bind = "local", "127.0.0.1"

    def argv(self, node: LaunchedNode, command: str, timeout: float) -> list[str]:
        return ["/bin/sh", "-c", command]


# --8<-- [start:ssh_launcher]
class SshLauncher(Launcher):
    """The command runs on the node through the real ``ssh`` client (``launch.ssh_command``)."""

    name, bind, via_ssh = "ssh", "auto", True

    def argv(self, node: LaunchedNode, command: str, timeout: float) -> list[str]:
        return ssh_command(
            node.host,
            command,
            user=node.user,
            port=node.ssh_port,
            identity_file=node.identity_file,
            options=node.ssh_options,
            connect_timeout=timeout,
        )


# --8<-- [end:ssh_launcher]


class CommandLauncher(Launcher):
    """An argument-list prefix with ``{host}`` in it, then ``/bin/sh -c COMMAND``.

    Args:
        template: E.g. ``["kubectl", "exec", "-i", "{host}", "--"]``; each ``{host}`` in a
            word becomes the node's host name (no other braces are read).
        name: For messages (default: the template's first word).

    Raises:
        ConfigError: An empty template.
    """

    def __init__(self, template: Sequence[str], name: str | None = None) -> None:
        words = isinstance(template, Sequence) and not isinstance(template, str)
        if not words or not template or not all(isinstance(w, str) for w in template):
            raise ConfigError(f"a launcher template is a non-empty list of words: {template!r}")
        self.template = list(template)
        self.name = name or self.template[0]

    def argv(self, node: LaunchedNode, command: str, timeout: float) -> list[str]:
        words = [word.replace("{host}", node.host) for word in self.template]
        return [*words, "/bin/sh", "-c", command]


_NAMED: dict[str, Launcher] = {"local": LocalLauncher(), "ssh": SshLauncher()}
# @6+ {
# --8<-- [start:srun]
SRUN = CommandLauncher(
    # One task on the named node of the current allocation; --overlap: it shares the
    # node's CPUs with the job's other steps (the coordinator's, if it runs in one).
    ["srun", "--nodes=1", "--ntasks=1", "-w", "{host}", "--overlap", "--quiet"],
    name="srun",
)
# --8<-- [end:srun]
_NAMED["srun"] = SRUN
# @}


def get_launcher(spec: str | Sequence[str] | Launcher | None, host: str) -> Launcher:
    """The launcher a node uses: ``spec`` as given to ``NodeConfig``/``Cluster``.

    None: ``local`` for ``localhost``/``127.0.0.1``, else ``ssh``. A name: ``local``,
    ``ssh`` (or ``srun``, from stage 6). A list of words: a `CommandLauncher` template. A
    `Launcher`: itself.

    Raises:
        ConfigError: An unknown name, or an empty template.
    """
    if spec is None:
        return _NAMED["local" if host in LOCAL_HOSTS else "ssh"]
    if isinstance(spec, Launcher):
        return spec
    if isinstance(spec, str):
        if spec not in _NAMED:
            known = ", ".join(sorted(_NAMED))
            raise ConfigError(f"unknown launcher {spec!r} (known: {known}, or a list of words)")
        return _NAMED[spec]
    return CommandLauncher(spec)
