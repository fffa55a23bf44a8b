# @6+
"""Where the ranks' output of ``miniray run`` goes: the console, files, the last lines.

* The console: ``[host rN] line``, a rank's stdout on ours, its stderr on ours, control
  characters shown as escapes (``logs.escape_controls``): a rank cannot drive the
  terminal. ``--ranks 0,3`` limits which ranks reach the console.
* ``--log-dir DIR``: every line of every rank, as printed, in ``DIR/rankN.out`` and
  ``DIR/rankN.err`` (appended to across restarts), and ``DIR/summary.json`` at the end.
  The folder holds one run: a run begins by removing the last run's files of those names
  (other files stay), so no line of an earlier run reads as this run's, and by making each
  rank's two files, so a rank that printed nothing has empty ones, not none.
* The last `LAST_LINES` lines of each rank, kept for the report of a failure.
"""

from __future__ import annotations

import collections
import json
import re
import sys
from pathlib import Path
from typing import IO, Any

from .errors import ConfigError
from .logs import escape_controls

LAST_LINES = 10
SUMMARY = "summary.json"
_RUN_FILE = re.compile(rf"rank[0-9]+\.(out|err)|{re.escape(SUMMARY)}")  # the names a run writes


class RunLogs:
    """The ranks' output: console, files, last lines (see the module's docstring)."""

    def __init__(
        self,
        log_dir: str | None,
        console_ranks: set[int] | None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        *,
        world_size: int = 0,
    ) -> None:
        self.dir = Path(log_dir) if log_dir else None
        if self.dir is not None:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                for path in self.dir.iterdir():  # the last run's (see the module's docstring)
                    if _RUN_FILE.fullmatch(path.name):
                        path.unlink()
                for rank in range(world_size):  # (made, not held open: a rank may never print)
                    for stream in ("out", "err"):
                        (self.dir / f"rank{rank}.{stream}").touch()
            except OSError as e:  # a file there, no right to make it...: before anything runs
                raise ConfigError(f"--log-dir {log_dir!r}: {e.strerror}") from None
        self.console_ranks = console_ranks
        self._out, self._err = stdout or sys.stdout, stderr or sys.stderr
        self._files: dict[str, IO[str]] = {}
        self.last: dict[int, collections.deque[str]] = collections.defaultdict(
            lambda: collections.deque(maxlen=LAST_LINES)
        )

    def lines(self, host: str, rank: int, stream: str, texts: list[str]) -> None:
        """Lines a rank printed on ``stream`` ("out" or "err")."""
        self.last[rank].extend(texts)
        if self.dir is not None:
            name = f"rank{rank}.{stream}"
            if name not in self._files:
                self._files[name] = open(self.dir / name, "a", encoding="utf-8")  # noqa: SIM115
            self._files[name].write("".join(text + "\n" for text in texts))
            self._files[name].flush()
        if self.console_ranks is None or rank in self.console_ranks:
            out = self._out if stream == "out" else self._err
            prefix = f"[{host} r{rank}] "
            out.write("".join(escape_controls(prefix + text) + "\n" for text in texts))
            out.flush()

    def say(self, text: str) -> None:
        """A message of the launcher itself, on stderr."""
        self._err.write("".join(f"miniray run: {line}\n" for line in text.splitlines()))
        self._err.flush()

    def summary(self, facts: dict[str, Any]) -> None:
        """Write ``summary.json`` (with ``--log-dir``) and close the files."""
        for file in self._files.values():
            file.close()
        self._files.clear()
        if self.dir is not None:
            text = json.dumps(facts, indent=2, sort_keys=True)
            (self.dir / SUMMARY).write_text(text + "\n")
