"""Many short pytest runs from one interpreter that has imported pytest once: a fork server.

The exercise check runs pytest about 115 times (each exercise's stub and mutants), each on
its own copy of a stage. A fresh ``python -m pytest`` spends about 0.45 s of CPU starting
the interpreter and importing pytest before it collects anything; a child forked from a
process that has done so once starts at once (measured: 0.7 -> 0.25 s of CPU a run; about
a minute of the 2-core CI's time in all).

    with ForkServer() as server:
        rc, output = server.run(["tests/...", "-m", "ex01_1"], cwd=root, env=env, timeout=300)

The server is a process of its own (``python -m tools.pytest_forks``), not the caller: it
has no threads when it forks, and has imported pytest, pytest's own plugins and hypothesis
(`_import_what_every_run_imports`: another 0.2 s of CPU a run) but neither ``miniray`` nor a
test module, so each child imports the copy of the stage it is given, as a fresh interpreter
would. Other plugins are loaded by each child (pytest rewrites their asserts on import).
Each child runs in a process group of its own, killed whole when it ends or times out:
nothing it started outlives it. The server ends when its stdin closes (the caller ended).

Requests and replies are JSON lines: ``{"id", "args", "cwd", "env", "out", "timeout"}`` in,
``{"id", "rc"}`` out (``rc`` null: the run timed out); the run's output is in the ``out`` file.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any


class ForkServer:
    """A client of one fork server; `run` may be called from several threads at once."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tools.pytest_forks"],
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()
        self._replies: dict[int, int | None] = {}
        self._arrived = threading.Condition(self._lock)
        self._next_id = 0
        self._outputs = tempfile.TemporaryDirectory(prefix="miniray-forks-")
        self._reader = threading.Thread(target=self._read_replies, daemon=True)
        self._reader.start()

    def run(
        self, args: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float | None
    ) -> tuple[int | None, str]:
        """``pytest ARGS`` in a forked child: (exit code, or None on timeout; its output)."""
        with self._lock:
            self._next_id += 1
            run_id = self._next_id
            out = Path(self._outputs.name) / f"{run_id}.out"
            request = {"id": run_id, "args": list(args), "cwd": str(cwd), "env": dict(env)}
            request |= {"out": str(out), "timeout": timeout}
            assert self._process.stdin is not None
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            while run_id not in self._replies:
                if self._process.poll() is not None:
                    raise RuntimeError("the pytest fork server ended")
                self._arrived.wait(timeout=1.0)
            rc = self._replies.pop(run_id)
        output = out.read_text(errors="replace") if out.is_file() else ""
        out.unlink(missing_ok=True)
        return rc, output

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self._process.pid

    def close(self) -> None:
        """End the server (it kills any run still going) and remove the outputs."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._outputs.cleanup()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _read_replies(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            reply = json.loads(line)
            with self._lock:
                self._replies[reply["id"]] = reply["rc"]
                self._arrived.notify_all()
        with self._lock:
            self._arrived.notify_all()  # the server ended: waiting callers see it


# --- the server ---------------------------------------------------------------------------


def serve() -> None:
    """Read requests on stdin, fork a child for each, answer on stdout as each one ends."""
    _import_what_every_run_imports()

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C ends the caller: then stdin closes

    running: dict[int, tuple[int, int, float | None]] = {}  # pidfd -> (pid, id, deadline)
    stdin, pending = sys.stdin.fileno(), b""
    while stdin >= 0 or running:
        deadlines = [d for _, _, d in running.values() if d is not None]
        wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        ready, _, _ = select.select([*running, *([stdin] if stdin >= 0 else [])], [], [], wait)
        if stdin >= 0 and stdin in ready:
            chunk = os.read(stdin, 1 << 16)
            if not chunk:  # the caller is gone: end what runs, then ourselves
                stdin = -1
                for pid, _, _ in running.values():
                    _kill_group(pid)
            *requests, pending = (pending + chunk).split(b"\n")
            for line in requests:
                request = json.loads(line)
                pid, timeout = _fork_run(request), request["timeout"]
                deadline = None if timeout is None else time.monotonic() + timeout
                running[os.pidfd_open(pid)] = (pid, request["id"], deadline)
        for pidfd, (pid, run_id, deadline) in list(running.items()):
            ended = pidfd in ready
            late = deadline is not None and time.monotonic() >= deadline
            if not (ended or late):
                continue
            _kill_group(pid)  # what the run left behind; on a timeout, the run itself
            _, status = os.waitpid(pid, 0)
            os.close(pidfd)
            del running[pidfd]
            rc = None if late and not ended else os.waitstatus_to_exitcode(status)
            print(json.dumps({"id": run_id, "rc": rc}), flush=True)


def _import_what_every_run_imports() -> None:
    """pytest, its own plugins, and hypothesis, which hypothesis's plugin imports as every
    run ends (to list the files it wrote): none of them is under test, so each child can
    have them from here. (Measured on a run that fails its first test: 0.41 s of CPU a
    child with pytest alone imported here, 0.21 s with these.)  Not the plugins that pytest
    rewrites (entry points, ``-p``, conftests): each child imports those itself."""
    import pytest  # noqa: F401
    from _pytest.config import default_plugins

    for name in default_plugins:
        importlib.import_module(f"_pytest.{name}")
    with contextlib.suppress(ImportError):  # installed with pytest's hypothesis plugin
        import hypothesis  # noqa: F401


def _fork_run(request: dict[str, Any]) -> int:
    """Fork a child that runs pytest as ``python -m pytest ARGS`` in ``cwd`` would."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setpgid(0, 0)  # a group of its own: whatever it starts is killed with it
        out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.closerange(3, 1 << 16)  # the server's pipes and its other children's pidfds
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[0] = request["cwd"]  # as ``python -m`` puts the working directory first
        import pytest

        code = int(pytest.main(request["args"]))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # a crash in the child must never run the server's loop
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing of it left
        os.killpg(pid, signal.SIGKILL)


if __name__ == "__main__":
    serve()
