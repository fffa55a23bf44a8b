"""What a learner reads after ``make exercise``: the tests' output with the paths of the
temporary overlay (`tools.workspaces.overlay_workspace`) turned back into the learner's own.

An exercise is tested on a copy of the workspace in a temporary folder, where the exercises
not written yet are filled in with the stage's code.  A traceback from that run names files
like ``/tmp/miniray-overlay-1a2b/03_cluster/miniray/ranks.py``: `OverlayPaths` rewrites
each one to the file the learner edits (``workspace/03_cluster/miniray/ranks.py``), with the
line number in that file.  A line inside a function that was filled in is named in the
stage's own file (``stages/03_cluster/miniray/launch.py:40``), where that code comes from.
`run_rewritten` runs pytest and passes its output through, rewritten as it comes.
"""

from __future__ import annotations

import codecs
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.stages import Exercise, Stage
from tools.stubs import definition_lines
from tools.workspaces import shown_path

IDLE_FLUSH = 0.1  # seconds without output after which a partial line is shown as it is
DRAIN = 2.0  # seconds to read what is left once the process has exited


@dataclass(frozen=True)
class _Filled:
    """A function filled in with the stage's code: its lines in the three copies."""

    overlay: tuple[int, int]
    workspace: tuple[int, int]
    stage_first: int


class OverlayPaths:
    """Rewrites paths in the overlay ``overlay`` (a copy of ``workspace`` with ``filled``
    exercises replaced by ``stage``'s code) to the learner's files, or the stage's."""

    def __init__(
        self, stage: Stage, workspace: Path, overlay: Path, filled: Sequence[Exercise]
    ) -> None:
        self.stage = stage
        self.workspace = workspace
        self.overlay = overlay
        self.filled: dict[str, list[_Filled]] = {}
        for exercise in filled:
            texts = [
                (root / exercise.file).read_text(encoding="utf-8")
                for root in (overlay, workspace, stage.path)
            ]
            spans = [definition_lines(text, exercise.qualname) for text in texts]
            entry = _Filled(spans[0], spans[1], spans[2][0])
            self.filled.setdefault(exercise.file, []).append(entry)
        # The overlay as pytest or Python may print it: absolute, or relative with ../ parts.
        self.marker = f"{overlay.parent.name}/{overlay.name}"
        self._path_re = re.compile(
            r"[^\s\"'(\[]*" + re.escape(self.marker) + r"(?P<rel>(?:/[^\s\"':,()\[\]]+)*)"
            r"(?:(?P<quoted>\", line )(?P<line1>\d+)|:(?P<line2>\d+))?"
        )

    def place(self, rel: str, line: int) -> tuple[Path, int]:
        """Where line ``line`` of the overlay's file ``rel`` comes from: the workspace's file,
        or the stage's for a line of a filled-in function."""
        shift = 0
        for filled in self.filled.get(rel, []):
            first, last = filled.overlay
            if first <= line <= last:
                return self.stage.path / rel, filled.stage_first + line - first
            if last < line:
                shift += (filled.workspace[1] - filled.workspace[0]) - (last - first)
        return self.workspace / rel, line + shift

    def rewrite(self, text: str) -> str:
        """``text`` with every overlay path (and line number) rewritten."""
        if self.marker not in text:
            return text
        return self._path_re.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        rel = match["rel"].lstrip("/")
        number = match["line1"] or match["line2"]
        if number is None or not rel.endswith(".py"):
            return shown_path(self.workspace / rel) if rel else shown_path(self.workspace)
        path, line = self.place(rel, int(number))
        separator = match["quoted"] or ":"
        return f"{shown_path(path)}{separator}{line}"


def run_rewritten(
    command: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    rewrite: Callable[[str], str],
    marker: str,
    capture: bool = False,
    timeout: float | None = None,
) -> tuple[int | None, str]:
    """Run ``command`` with its stdout and stderr passed through ``rewrite`` a line at a
    time (printed, or returned when ``capture``); return (exit code or None on timeout,
    the captured output or "").

    A partial line (pytest's progress dots) is shown once the output pauses, unless it holds
    ``marker``: a path there waits for the rest of its line, so that it is rewritten whole.
    """
    out: list[str] = []

    def emit(text: str) -> None:
        text = rewrite(text)
        if capture:
            out.append(text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()

    deadline = None if timeout is None else time.monotonic() + timeout
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    try:
        fd = process.stdout.fileno()
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            if drain_until is None and process.poll() is not None:
                # A process it left behind may hold the pipe open: read what is there, no more.
                drain_until = now + DRAIN
            if drain_until is not None and now >= drain_until:
                break
            if deadline is not None and now >= deadline:
                emit(pending + f"\nstopped: the run took more than {timeout:g} s\n")
                return None, "".join(out)
            wait = min([IDLE_FLUSH, *(t - now for t in (deadline, drain_until) if t is not None)])
            if select.select([fd], [], [], wait)[0]:
                data = os.read(fd, 65536)
                if not data:
                    break
                pending += decoder.decode(data)
                done, newline, pending = pending.rpartition("\n")
                if newline:
                    emit(done + newline)
            elif pending and marker not in pending:
                emit(pending)
                pending = ""
        pending += decoder.decode(b"", final=True)
        if pending:
            emit(pending)
        return process.wait(), "".join(out)
    finally:
        if process.poll() is None:  # a timeout, or our own KeyboardInterrupt
            process.kill()
            process.wait()
        process.stdout.close()
