"""``miniray run`` as a test starts it: a subprocess of its own, in tests/, its output read
by threads as it comes, every wait with a deadline, the test's tag in its environment."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import IO

from sshhosts import TESTS_DIR

LOCAL_2x2 = ["--hosts", "localhost,127.0.0.1", "--nproc-per-node", "2"]


class Launched:
    """A running ``python -m miniray run ARGS``; ``finish()`` returns (status, out, err)."""

    def __init__(self, tag: str, *args: str) -> None:
        env = {**os.environ, "MINIRAY_TEST_TAG": tag, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "miniray", "run", *args],
            cwd=TESTS_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], kept: list[str]) -> None:
        for line in stream:
            kept.append(line.rstrip("\n"))
            self._lines.put(line)

    def wait_for(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        """Until ``count`` lines (stdout or stderr) contain ``text``."""
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.out + self.err) < count:
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and self._lines.empty()):
                raise AssertionError(f"no {count} x {text!r}; got:\n" + self.text())
            with contextlib.suppress(queue.Empty):
                self._lines.get(timeout=min(left, 0.5))

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("miniray run did not end in time:\n" + self.text()) from None
        for reader in self._readers:
            reader.join(timeout=10)
        return code, "\n".join(self.out), "\n".join(self.err)

    def text(self) -> str:
        return "\n".join(self.out) + "\n--- stderr ---\n" + "\n".join(self.err)


def run(tag: str, *args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run ``miniray run ARGS`` to its end."""
    return Launched(tag, *args).finish(timeout)
