"""Generated stage files: write them (`sync`), or change nothing and list what is wrong
(`problems`).

Some of a stage's files are *inherited*: copied verbatim from the previous stage (``inherit``
in ``stage.toml``).  Two kinds of files are generated and never edited by hand:

* ``stages/NN_name/CHANGES.diff``: a unified diff of the stage against the previous stage,
  covering ``demo.py`` and everything under ``miniray/``;
* ``miniray/`` at the repository root: a byte-identical copy of the final stage's package.

A stage's *own* copy of a file that the previous stage also has is not generated, but fixes
in the earlier file must reach it: `sync` merges them in and `problems` reports those that have
not travelled (`tools.carry`).

`problems` also reports misnamed, misnumbered or incomplete stage folders and exercises whose
ids or target files do not fit their stage.  Import `sync` and `problems` from `tools.stages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.carry import CarryReport, carry_forward, carry_problems
from tools.diffs import unified_diff
from tools.stage_model import (
    DEMO,
    DIFF_NAME,
    PACKAGE,
    REPO_ROOT,
    STAGE_NAME_RE,
    STAGE_TOML,
    STAGES_DIR,
    Stage,
    StageError,
    is_ignored,
    list_stages,
    stage_folders,
)

FileMap = dict[str, bytes]
"""Files of a stage: path relative to the stage folder (POSIX form) -> content."""


def problems(root: Path = REPO_ROOT) -> list[str]:
    """Everything wrong with the stages and generated files under ``root``; [] when clean."""
    root = root.resolve()
    found = _layout_problems(root)
    try:
        stages = list_stages(root)
    except StageError as error:
        return [*found, str(error)]
    found += _exercise_problems(stages)
    plans, plan_errors = _plan(stages)
    found += plan_errors
    for index, plan in enumerate(plans):
        found += _stage_file_problems(root, plan)
        if index > 0:
            previous = plans[index - 1]
            name = f"{STAGES_DIR}/{previous.stage.name}"
            found += carry_problems(plan.stage, plan.owned, previous.files, name)
    if plans:
        found += _package_problems(root, plans[-1].files)
    return found


def sync(root: Path = REPO_ROOT, carried: list[CarryReport] | None = None) -> list[Path]:
    """Merge earlier stages' changes into later stages' own copies, then write inherited
    files, every ``CHANGES.diff`` and the top-level package; return what changed.

    ``carried``, if given, receives one `CarryReport` per stage after the first (what was
    merged, where conflict markers were written).  Raises `StageError`, before writing
    anything, if an inherited file is missing.
    """
    root = root.resolve()
    stages = list_stages(root)
    plans, plan_errors = _plan(stages)
    if plan_errors:
        raise StageError("\n".join(plan_errors))
    written: list[Path] = []
    for index in range(1, len(stages)):
        # the earlier stage as this sync leaves it (its own merges done already)
        earlier, this = _plan(stages[: index + 1])[0][-2:]
        name = f"{STAGES_DIR}/{earlier.stage.name}"
        report = carry_forward(this.stage, this.owned, earlier.files, name)
        written += report.written
        if carried is not None:
            carried.append(report)
    plans = _plan(stages)[0]
    for plan in plans:
        for rel, content in sorted(plan.inherited.items()):
            written += _write_if_changed(plan.stage.path / rel, content)
        written += _write_if_changed(plan.stage.path / DIFF_NAME, plan.diff.encode())
    if plans:
        written += _sync_package(root, _package_part(plans[-1].files))
    return written


def tracked_files(folder: Path) -> FileMap:
    """The files of a stage folder that the diff and inheritance cover: ``demo.py`` and all of
    ``miniray/``, without caches, compiled files and hidden files."""
    files: FileMap = {}
    if (folder / DEMO).is_file():
        files[DEMO] = (folder / DEMO).read_bytes()
    files.update(_tree_files(folder, PACKAGE))
    return files


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, in POSIX form, for messages; as given if outside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _tree_files(base: Path, top: str) -> FileMap:
    """The files under ``base/top``, keyed by their path relative to ``base``."""
    files: FileMap = {}
    start = base / top
    if not start.is_dir():
        return files
    for path in sorted(start.rglob("*")):
        rel = path.relative_to(base)
        if path.is_file() and not any(is_ignored(part) for part in rel.parts):
            files[rel.as_posix()] = path.read_bytes()
    return files


# --- planning: what sync would write --------------------------------------------------------


@dataclass(frozen=True)
class _StagePlan:
    """What sync makes of one stage, worked out before anything is written."""

    stage: Stage
    own: FileMap  # the stage folder's tracked files as they are now
    inherited: FileMap  # what it must hold of the previous stage's files
    diff: str  # what its CHANGES.diff must say

    @property
    def owned(self) -> FileMap:
        """The stage's own files: those it does not inherit."""
        return {p: b for p, b in self.own.items() if p not in self.inherited}

    @property
    def files(self) -> FileMap:
        """The stage's tracked files once synced."""
        return {**self.own, **self.inherited}


def _plan(stages: Sequence[Stage]) -> tuple[list[_StagePlan], list[str]]:
    """Each stage's plan, and the ``inherit`` entries that cannot be honoured."""
    plans: list[_StagePlan] = []
    errors: list[str] = []
    previous: FileMap = {}
    previous_name = "nothing (it is the first stage)"
    for stage in stages:
        inherited: FileMap = {}
        for entry in stage.inherit:
            if not _is_tracked_path(entry):
                errors.append(
                    f"{stage.name}/{STAGE_TOML}: inherit entry {entry!r} is not {DEMO} "
                    f"or under {PACKAGE}/"
                )
                continue
            matches = {p: b for p, b in previous.items() if _under(p, entry)}
            if not matches:
                errors.append(
                    f"{stage.name}/{STAGE_TOML}: inherits {entry!r}, "
                    f"which is missing from {previous_name}"
                )
            inherited.update(matches)
        own = tracked_files(stage.path)
        files = {**own, **inherited}
        plans.append(_StagePlan(stage, own, inherited, unified_diff(previous, files)))
        previous, previous_name = files, f"{STAGES_DIR}/{stage.name}"
    return plans, errors


def _under(path: str, entry: str) -> bool:
    entry = entry.rstrip("/")
    return path == entry or path.startswith(entry + "/")


def _is_tracked_path(entry: str) -> bool:
    parts = entry.rstrip("/").split("/")
    return entry == DEMO or (parts[0] == PACKAGE and ".." not in parts and "" not in parts)


def _package_part(files: FileMap) -> FileMap:
    return {p: b for p, b in files.items() if p.startswith(PACKAGE + "/")}


# --- checking --------------------------------------------------------------------------------


def _layout_problems(root: Path) -> list[str]:
    if not (root / STAGES_DIR).is_dir():
        return [f"no {STAGES_DIR}/ folder under {root}"]
    found: list[str] = []
    numbers: dict[int, str] = {}
    for folder in stage_folders(root):
        match = STAGE_NAME_RE.match(folder.name)
        if match is None:
            found.append(f"{STAGES_DIR}/{folder.name}: folder name is not NN_name (like 01_tcp)")
            continue
        if not (folder / STAGE_TOML).is_file():
            found.append(f"{STAGES_DIR}/{folder.name}: no {STAGE_TOML}")
        number = int(match["number"])
        if number in numbers:
            found.append(f"{STAGES_DIR}/{folder.name}: number {number} used by {numbers[number]}")
        numbers.setdefault(number, folder.name)
    if sorted(numbers) != list(range(1, len(numbers) + 1)):
        found.append(f"stage numbers {sorted(numbers)} are not 1..{len(numbers)} without gaps")
    return found


def _exercise_problems(stages: Sequence[Stage]) -> list[str]:
    found: list[str] = []
    seen: dict[str, str] = {}
    for stage in stages:
        for exercise in stage.exercises:
            where = f"{stage.name}/{STAGE_TOML}: exercise {exercise.id}"
            if int(exercise.id.partition(".")[0]) != stage.number:
                found.append(f"{where}: the id must start with the stage number {stage.number}")
            if exercise.id in seen:
                found.append(f"{where}: id also used in {seen[exercise.id]}")
            seen.setdefault(exercise.id, stage.name)
            if not (stage.path / exercise.file).is_file():
                found.append(f"{where}: target file {exercise.file} does not exist")
    return found


def _stage_file_problems(root: Path, plan: _StagePlan) -> list[str]:
    found: list[str] = []
    for rel, content in sorted(plan.inherited.items()):
        if plan.own.get(rel) != content:
            state = (
                "is missing" if rel not in plan.own else "differs from the previous stage's copy"
            )
            found.append(f"{display_path(plan.stage.path / rel, root)}: inherited file {state}")
    diff_path = plan.stage.path / DIFF_NAME
    if not diff_path.is_file():
        found.append(f"{display_path(diff_path, root)}: missing")
    elif diff_path.read_bytes() != plan.diff.encode():
        found.append(f"{display_path(diff_path, root)}: stale")
    return found


def _package_problems(root: Path, final_files: FileMap) -> list[str]:
    expected = _package_part(final_files)
    actual = _tree_files(root, PACKAGE)
    found: list[str] = []
    for rel in sorted(expected.keys() | actual.keys()):
        if rel not in actual:
            found.append(f"{rel}: missing (the final stage has it)")
        elif rel not in expected:
            found.append(f"{rel}: extra (the final stage lacks it)")
        elif actual[rel] != expected[rel]:
            found.append(f"{rel}: differs from the final stage's copy")
    return found


# --- writing ---------------------------------------------------------------------------------


def _write_if_changed(path: Path, content: bytes) -> list[Path]:
    if path.is_file() and path.read_bytes() == content:
        return []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return [path]


def _sync_package(root: Path, expected: FileMap) -> list[Path]:
    written: list[Path] = []
    for rel in sorted(_tree_files(root, PACKAGE).keys() - expected.keys()):
        (root / rel).unlink()
        written.append(root / rel)
    for rel, content in sorted(expected.items()):
        written += _write_if_changed(root / rel, content)
    _remove_empty_dirs(root / PACKAGE)
    return written


def _remove_empty_dirs(top: Path) -> None:
    if not top.is_dir():
        return
    for folder in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
