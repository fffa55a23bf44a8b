# @3+
"""Launching one node's server: the command line, the ssh process, and its ready line.

A node's server is started by one command line, run by the node's shell:

    cd /work/dir && exec env K=V /usr/bin/python3 -m miniray.cluster_server --work-fn ...

That line is not an argument of ``ssh``: every node runs the same `READ_COMMAND`, a shell
that reads the line from its stdin and runs it, so neither the line nor the ``env`` values
in it show in a process list here (``ps`` shows ``ssh``'s arguments to every local user,
for as long as the cluster runs). Over SSH, the real ``ssh`` client runs that shell (so
``~/.ssh/config``, keys, agents, jump hosts and ``known_hosts`` work as they do in a
terminal); for ``localhost`` it runs under ``/bin/sh -c``, without SSH.  Either way the
server's stdin, stdout and stderr are pipes to this process:

* stdin carries the command line, then the cluster's secret and a nonce (the server's first
  line), then control lines, and its end-of-file ends the server's lease;
* stdout carries the ``MINIRAY_READY`` line, then the workers' log lines; the ready line
  carries a MAC over the nonce, its address and its port (``ready_mac``), and a line without
  the right one (a login script's) is skipped;
* stderr carries what ssh and the server have to say, kept for error messages.

Set ``MINIRAY_SSH_COMMAND`` (like git's ``GIT_SSH_COMMAND``) to run another ssh command,
e.g. ``ssh -F /path/to/ssh_config``.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import select
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import ClusterError, ConfigError, ProtocolError

log = logging.getLogger("miniray.cluster")

READY_PREFIX = b"MINIRAY_READY "
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_LINE = 1 << 16  # a ready line longer than this is not one
_STDERR_LINES = 40  # of a node's stderr, kept for error messages
_SSH_FAILED = 255  # ssh's exit code for its own errors (the remote command's code otherwise)
_HINTS = [  # what ssh said -> what to check
    ("Permission denied", "the node refused our key (see identity_file, or run ssh-copy-id)"),
    ("Connection refused", "nothing listens for ssh there (is sshd running? the ssh port?)"),
    ("timed out", "the host did not answer (is it up? a firewall?)"),
    ("No route to host", "the host is not reachable from here"),
    ("Could not resolve", "unknown host name (a typo? an alias missing from ~/.ssh/config?)"),
    ("Host key verification failed", "unknown or changed host key: ssh to it once by hand"),
]


# --8<-- [start:remote_command]
def remote_command(
    python: str, args: Sequence[str], *, cwd: str, env: Mapping[str, str] | None = None
) -> str:
    """The shell command line that starts ``python *args`` in ``cwd`` with ``env`` added.

    Every word is quoted for a POSIX shell, so spaces, quotes, ``$`` or ``;`` in a path,
    an argument or a value arrive as they are and never run as shell code.

    Raises:
        ConfigError: An environment variable name that is not a shell name.
    """
    words = [python, *args]
    if env:
        for name in env:
            if not is_shell_name(name):
                raise ConfigError(f"environment variable name {name!r} is not a shell name")
        words = ["env", *(f"{name}={value}" for name, value in env.items()), *words]
    return f"cd {shlex.quote(cwd)} && exec " + " ".join(shlex.quote(w) for w in words)


# --8<-- [end:remote_command]

# What every launcher runs on a node: a POSIX shell that reads one line from its stdin, the
# command line (`remote_command`), and runs it; the server reads the next line. (``read``
# takes one byte at a time from a pipe, so it never takes a byte of the lines after.)
READ_COMMAND = "exec /bin/sh -c 'IFS= read -r command && eval \"$command\"'"


def command_line(command: str) -> bytes:
    """``command`` as `READ_COMMAND` reads it: one line.

    Raises:
        ConfigError: ``command`` holds a line break (an ``env`` value with one, say): the
            node would read the part before it only.
    """
    if "\n" in command:  # (the line is not shown: it holds the env values)
        raise ConfigError(
            "a line break cannot travel in a node's command line (in an env value, cwd, "
            "python or the work function's name)"
        )
    return command.encode() + b"\n"


def is_shell_name(name: str) -> bool:
    """Whether ``name`` can be an environment variable's name in a POSIX shell's ``env``."""
    return _ENV_NAME.fullmatch(name) is not None  # (match would let "A\n" through the $)


def ssh_command(
    host: str,
    command: str,
    *,
    user: str | None = None,
    port: int | None = None,
    identity_file: str | None = None,
    options: Sequence[str] = (),
    connect_timeout: float = 10.0,
) -> list[str]:
    """The ``ssh`` argument list that runs ``command`` on ``host``.

    BatchMode: never prompt (a missing key fails at once, it does not hang). No host-key
    option is set here: the user's ``known_hosts`` decides, as in a terminal.
    """
    argv = shlex.split(os.environ.get("MINIRAY_SSH_COMMAND") or "ssh")
    argv += ["-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(connect_timeout))}"]
    argv += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
    if user:
        argv += ["-l", user]
    if port:
        argv += ["-p", str(port)]
    if identity_file:
        argv += ["-i", identity_file]
    return [*argv, *options, host, command]


# --8<-- [start:ready_mac]
def ready_mac(secret: str, nonce: str, host: str, port: int) -> str:
    """The MAC a server's ready line carries: HMAC-SHA256, keyed by the cluster's secret,
    over the coordinator's nonce for this node and the address and port it reports."""
    message = f"miniray-ready {nonce} {host} {port}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


# --8<-- [end:ready_mac]


# --8<-- [start:read_ready_line]
def read_ready_line(fd: int, timeout: float, already: bytes = b"") -> tuple[dict[str, Any], bytes]:
    """Read from ``fd`` until the server's ``MINIRAY_READY {json}`` line; return it parsed.

    Lines before it (a login script's chatter) are skipped. Returns the JSON object and
    the bytes read past the line (the start of the log stream). ``already``: bytes read
    from ``fd`` before, searched first (what an earlier call returned past its line).

    Raises:
        TimeoutError: No ready line within ``timeout`` seconds.
        EOFError: The stream ended first (the server, or ssh, exited).
        ProtocolError: A line too long to be the ready line, or a garbled one.
    """
    deadline = time.monotonic() + timeout
    buffer = already
    while True:
        line, newline, rest = buffer.partition(b"\n")
        if newline and line.startswith(READY_PREFIX):
            break
        if newline:
            buffer = rest  # not our line: skip it
            continue
        if len(buffer) > _MAX_LINE:
            raise ProtocolError(f"no newline in {_MAX_LINE} bytes: {buffer[:80]!r}")
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError(f"no ready line within {timeout} s")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise EOFError("the stream ended before the ready line")
        buffer += chunk
    try:
        ready = json.loads(line[len(READY_PREFIX) :])
    except ValueError:  # not JSON (or not UTF-8)
        ready = None
    # Checked by hand, not with assert (gone under -O): the line comes from the node.
    fields = ready if isinstance(ready, dict) else {}
    if not (isinstance(fields.get("port"), int) and isinstance(fields.get("host"), str)):
        raise ProtocolError(f"garbled ready line: {line[:200]!r}")
    return fields, rest


# --8<-- [end:read_ready_line]


class NodeProcess:
    """One node's server, started by ``ssh`` (or ``/bin/sh -c`` for localhost).

    Args:
        argv: The command to run (see ``ssh_command`` and ``remote_command``).
        secret: Written to the server's stdin with a fresh nonce, then the pipe stays
            open: the lease. The ready line must carry a MAC over that nonce.
        label: The node's name, for messages.
        on_stderr: Called with each stderr line once ``forward_stderr()`` was called.
        via_ssh: Whether ``argv`` runs ssh (exit code 255 is then ssh's own failure);
            None: unless it is ``/bin/sh -c``.
        popen: Starts ``argv`` (`subprocess.Popen`'s signature): a launcher's own, for
            an engine that relays the server's pipes itself (see ``launchers``).
        command: The command line that `READ_COMMAND` in ``argv`` reads, written to
            stdin before the secret; None: ``argv`` runs the server itself.
    """

    def __init__(
        self,
        argv: list[str],
        secret: str,
        label: str,
        on_stderr: Callable[[str], None],
        *,
        via_ssh: bool | None = None,
        popen: Callable[..., Any] = subprocess.Popen,
        command: str | None = None,
    ) -> None:
        first = b"" if command is None else command_line(command)  # before anything starts
        self.label = label
        self._on_stderr = on_stderr
        self._secret, self._nonce = secret, secrets.token_hex(16)
        self.via_ssh = argv[:2] != ["/bin/sh", "-c"] if via_ssh is None else via_ssh
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._forwarding = False
        self._lock = threading.Lock()
        # A session of its own: a Ctrl-C in the coordinator's terminal is the
        # coordinator's to handle (see Cluster), it must not kill ssh behind its back.
        # A Popen, or a look-alike with the same pipes from a launcher's own popen:
        self.proc: subprocess.Popen[bytes] = popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.stdout_fd = self.proc.stdout.fileno()
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, name=f"miniray-stderr-{label}", daemon=True
        )
        self._stderr_thread.start()
        try:
            self.proc.stdin.write(first + f"{secret} {self._nonce}\n".encode())
            self.proc.stdin.flush()
        except OSError:
            pass  # it died already; wait_ready says why
        os.set_blocking(self.proc.stdin.fileno(), False)  # control lines never block us

    def wait_ready(self, timeout: float) -> tuple[dict[str, Any], bytes]:
        """The server's ready line (see ``read_ready_line``); `ClusterError` if none comes.

        A ready line without the right MAC (see ``ready_mac``) is not the server's: it is
        skipped, with a warning, and never decides where the workers connect.
        """
        deadline = time.monotonic() + timeout
        rest = b""
        try:
            while True:
                left = max(0.0, deadline - time.monotonic())
                ready, rest = read_ready_line(self.stdout_fd, left, rest)
                if self._is_genuine(ready):
                    return ready, rest
                said = json.dumps(ready)[:200]
                log.warning("node %s: skipped a ready line without our MAC: %s", self.label, said)
        except TimeoutError:
            problem = f"the server did not report ready within {timeout} s"
        except EOFError:
            code = self.proc.wait(timeout=5)
            problem = f"the server did not start (exit code {code})"
            if code == _SSH_FAILED and self.via_ssh:
                problem = f"ssh failed (exit code {code}){self._hint()}"
        except ProtocolError as e:
            problem = str(e)
        raise ClusterError(self.describe(problem))

    def _is_genuine(self, ready: dict[str, Any]) -> bool:
        mac, host = ready.get("mac"), ready["host"]
        if not (isinstance(mac, str) and mac.isascii() and host.isascii()):
            return False  # ours is hex over an address (and a lone surrogate cannot encode)
        expected = ready_mac(self._secret, self._nonce, host, ready["port"])
        return hmac.compare_digest(mac, expected)

    def describe(self, problem: str) -> str:
        """``problem``, naming the node, with the last lines of its stderr."""
        self._stderr_thread.join(timeout=0.5 if self.proc.poll() is not None else 0)
        with self._lock:
            said = "\n".join("    " + line for line in self._stderr_tail)
        return f"node {self.label}: {problem}" + (f"; its stderr:\n{said}" if said else "")

    def _hint(self) -> str:
        with self._lock:
            said = "\n".join(self._stderr_tail)
        for clue, hint in _HINTS:
            if clue in said:
                return f": {hint}"
        return ""

    def forward_stderr(self) -> None:
        """From now on, pass each stderr line (server warnings) to ``on_stderr``."""
        with self._lock:
            self._forwarding = True

    def send_control(self, line: str) -> bool:
        """Write one control line to the server's stdin; False if it could not be sent."""
        assert self.proc.stdin is not None
        try:
            return os.write(self.proc.stdin.fileno(), line.encode() + b"\n") > 0
        except (OSError, ValueError):  # full, closed or gone
            return False

    def end_lease(self) -> None:
        """Close the server's stdin: it stops its workers and exits."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def stop(self, timeout: float = 5.0) -> int:
        """End the lease, wait up to ``timeout`` s for the server to exit, else kill ssh."""
        self.end_lease()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        self._stderr_thread.join(timeout=1.0)
        return code

    def close_pipes(self) -> None:
        """Close our ends of its stdout and stderr (after ``stop``, once they are read)."""
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def kill(self) -> None:
        """SIGKILL ssh (the remote server then reads end-of-file) or the local server."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self._lock:
                self._stderr_tail.append(line)
                forward = self._forwarding
            if forward:
                self._on_stderr(line)
