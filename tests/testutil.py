"""Small process helpers the tests share (not part of the seam: no miniray inside)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


def process_exists(pid: int) -> bool:
    """True if ``pid`` is a live process. A zombie counts as gone, and so does a dead one the
    kernel is still releasing (state X: with SIGCHLD ignored it reaps the child itself, and
    the child's pidfd can say "exited" a moment before its ``/proc`` entry goes)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X", "x")
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
        return False


def wait_until_gone(pids: list[int], seconds: float = 5) -> list[int]:
    """Return the pids still running after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while any(process_exists(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [p for p in pids if process_exists(p)]


@contextlib.contextmanager
def exclusive_port(port: int, timeout: float = 300.0) -> Iterator[None]:
    """Hold the machine-wide lock on ``port`` for the tests that must use that exact port.

    The original design's examples name fixed ports (10000), and ``make test`` runs two
    pytest steps at once: two stages' runs of the same example would race for the port.
    A lock file in the temporary folder makes them take turns (a holder that dies lets go).
    """
    path = Path(tempfile.gettempdir()) / f"miniray-tests-port-{port}.lock"
    deadline = time.monotonic() + timeout
    with open(path, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another test run held port {port} {timeout} s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_parent(body: str, *, stderr: int | None = None) -> subprocess.Popen[str]:
    """Start a Python "parent" program that has ``miniray``, ``workfns`` and ``time`` imported.

    ``PYTHONPATH`` (set by conftest to the stage under test) is kept, with tests/ added.
    Its stdout is a pipe; pass ``stderr=subprocess.PIPE`` to read its stderr too.
    """
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    pythonpath = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), tests_dir]))
    code = "import time\nfrom miniray import *\nimport workfns\n" + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tests_dir,  # `-c` puts the working directory first on sys.path: not the repo
        stdout=subprocess.PIPE,  # root, whose own miniray/ would shadow the stage under test
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONPATH": pythonpath},
    )


WORKFNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workfns.py")
READY_PREFIX = "MINIRAY_READY "


class ServerProcess:
    """A real ``python -m miniray.worker_server`` in a subprocess, for tests.

    Serves ``tests/workfns.py:<work_fn>`` on a free loopback port; the secret comes
    from ``env`` (set ``MINIRAY_SECRET_FILE`` or ``MINIRAY_SECRET`` there).
    """

    def __init__(
        self,
        work_fn: str,
        *args: str,
        env: dict[str, str],
        timeout: float = 20,
        run_as: Sequence[str] = (),
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        """``run_as`` prefixes the command (e.g. setpriv); ``preexec_fn`` runs before it."""
        command = [*run_as, sys.executable, "-m", "miniray.worker_server", "--port", "0"]
        command += ["--work-fn", f"{WORKFNS}:{work_fn}", *args]
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (a file, not a pipe: a full pipe blocks)
        self.proc = subprocess.Popen(  # cwd: `-m` puts it first on sys.path, and the repo
            command,  # root has its own miniray/, which must not shadow the stage under test
            cwd=os.path.dirname(WORKFNS),
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            preexec_fn=preexec_fn,
        )
        self.port = self._read_ready_line(timeout)["port"]

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM the server and return its exit code (it must stop its workers).

        A server still running after ``timeout`` is killed before TimeoutExpired goes up:
        the test fails, and no server outlives it (a learner's wrong code can make one
        that never stops)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()

    def stderr(self) -> str:
        """Everything the (stopped) server logged."""
        assert self.proc.poll() is not None, "stop() the server first"
        self._log.seek(0)
        return self._log.read()

    def _read_ready_line(self, timeout: float) -> dict[str, int]:
        import json
        import select

        assert self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            self.proc.kill()
            raise TimeoutError("the server printed no ready line")
        line = self.proc.stdout.readline()
        if not line.startswith(READY_PREFIX):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"no ready line; got {line!r}; stderr: {self.stderr()}")
        ready: dict[str, int] = json.loads(line[len(READY_PREFIX) :])
        return ready


def secret_env(directory: str, secret: str = "test-secret-0123456789abcdef") -> dict[str, str]:
    """An environment whose MiniRay secret is a fresh 0600 file in ``directory``."""
    path = os.path.join(directory, "secret")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return {**os.environ, "MINIRAY_SECRET_FILE": path}


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes from ``sock``; the peer hanging up first fails the test."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "hung up"
        data += chunk
    return data
