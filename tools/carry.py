"""Fixes that must travel: carry changes in an earlier stage's file into a later stage's own
copy of it, by a 3-way merge.

Most of a later stage's files that an earlier stage also has are *inherited*: byte copies that
`tools.sync` rewrites.  A stage may instead *own* its copy (it is not in ``inherit``), because
it changes the file: stage 2's ``errors.py``, later stages' ``worker.py``...  A fix made in the
earlier stage's file must still reach that copy.  So, for every owned file under ``miniray/``
that the previous stage also has, the stage keeps a *merge base*: the previous stage's version
that its copy last took in, under ``stages/NN_name/.merge-base/``.

* `sync` (``make sync``) merges what changed in the previous stage since the base into the
  stage's copy (``git merge-file``: the change is carried, the stage's own edits stay), and
  records the previous stage's version as the new base.  Where both changed the same lines it
  writes git's conflict markers into the copy and reports it; nothing is guessed.  A carried
  file without a base gets one: the previous stage's current version (say so in the commit:
  from then on, every change to it travels).
* `carry_problems` (part of ``python -m tools.stages check``) reports a copy whose earlier
  version changed since its base (a fix that has not travelled), a missing or orphaned base,
  and conflict markers left in a copy.

Stages are handled in order, so a fix in stage 1 travels to stage 2's copy and, in the same
``make sync``, from there to stage 3's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tools.stage_model import PACKAGE, STAGES_DIR, Stage

BASE_DIR = ".merge-base"
CONFLICT_RE = re.compile(r"^(<{7} |={7}$|>{7} )", re.MULTILINE)


@dataclass
class CarryReport:
    """What `carry_forward` did to one stage."""

    written: list[Path] = field(default_factory=list)  # copies and bases it wrote or removed
    merged: list[str] = field(default_factory=list)  # "stages/02_tcp/miniray/errors.py"
    conflicts: list[str] = field(default_factory=list)  # the same, where markers were written
    new_bases: list[str] = field(default_factory=list)


def carried_paths(
    stage: Stage, own: Mapping[str, bytes], previous: Mapping[str, bytes]
) -> list[str]:
    """The stage's own files (not inherited) under ``miniray/`` that the previous stage has."""
    return sorted(p for p in own if p.startswith(PACKAGE + "/") and p in previous)


def base_path(stage: Stage, rel: str) -> Path:
    """Where the merge base of the stage's copy of ``rel`` lives."""
    return stage.path / BASE_DIR / rel


def carry_problems(
    stage: Stage, own: Mapping[str, bytes], previous: Mapping[str, bytes], previous_name: str
) -> list[str]:
    """Every fix that has not travelled into ``stage``'s own copies; [] when all have."""
    found: list[str] = []
    carried = carried_paths(stage, own, previous)
    for rel in carried:
        where = f"{STAGES_DIR}/{stage.name}/{rel}"
        base = base_path(stage, rel)
        if not base.is_file():
            found.append(
                f"{where}: owns a copy of {previous_name}'s file but has no merge base "
                "(`make sync` records one)"
            )
        elif base.read_bytes() != previous[rel]:
            found.append(
                f"{where}: {previous_name}/{rel} changed since this copy last took it in "
                "(`make sync` merges the change)"
            )
        if CONFLICT_RE.search(own[rel].decode("utf-8", "replace")):
            found.append(f"{where}: unresolved merge conflict markers")
    for orphan in _base_files(stage):
        if orphan not in carried:
            found.append(f"{STAGES_DIR}/{stage.name}/{BASE_DIR}/{orphan}: merge base of no file")
    return found


def carry_forward(
    stage: Stage, own: Mapping[str, bytes], previous: Mapping[str, bytes], previous_name: str
) -> CarryReport:
    """Merge the previous stage's changes into ``stage``'s own copies; record the new bases."""
    report = CarryReport()
    carried = carried_paths(stage, own, previous)
    for rel in carried:
        base, copy = base_path(stage, rel), stage.path / rel
        where = f"{STAGES_DIR}/{stage.name}/{rel}"
        if base.is_file() and base.read_bytes() == previous[rel]:
            continue
        if base.is_file():
            merged, conflicts = merge_file(
                own[rel],
                base.read_bytes(),
                previous[rel],
                labels=(f"{where} (this stage)", "merge base", f"{previous_name}/{rel}"),
            )
            if merged != own[rel]:
                copy.write_bytes(merged)
                report.written.append(copy)
            (report.conflicts if conflicts else report.merged).append(where)
        else:
            report.new_bases.append(where)
        base.parent.mkdir(parents=True, exist_ok=True)
        base.write_bytes(previous[rel])
        report.written.append(base)
    for orphan in _base_files(stage):
        if orphan not in carried:
            base_path(stage, orphan).unlink()
            report.written.append(base_path(stage, orphan))
    _remove_empty_dirs(stage.path / BASE_DIR)
    return report


def merge_file(
    current: bytes, base: bytes, other: bytes, *, labels: tuple[str, str, str]
) -> tuple[bytes, int]:
    """``git merge-file``: the changes from ``base`` to ``other`` applied to ``current``;
    returns the result (with conflict markers where both changed the same lines) and the
    number of conflicts."""
    git = shutil.which("git")
    if git is None:
        raise RuntimeError("carrying a fix into a later stage needs git (git merge-file)")
    with tempfile.TemporaryDirectory(prefix="miniray-merge-") as tmp:
        paths = []
        for name, content in (("current", current), ("base", base), ("other", other)):
            path = Path(tmp) / name
            path.write_bytes(content)
            paths.append(str(path))
        command = [git, "merge-file", "-p"]
        for label in labels:
            command += ["-L", label]
        done = subprocess.run([*command, *paths], capture_output=True, check=False)
    if done.returncode < 0 or done.returncode > 127:
        raise RuntimeError(f"git merge-file failed: {done.stderr.decode(errors='replace')}")
    return done.stdout, done.returncode


def _base_files(stage: Stage) -> list[str]:
    top = stage.path / BASE_DIR
    if not top.is_dir():
        return []
    return sorted(p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file())


def _remove_empty_dirs(top: Path) -> None:
    if not top.is_dir():
        return
    for folder in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(top.iterdir()):
        top.rmdir()
