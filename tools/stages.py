"""Stage bookkeeping: read ``stages/NN_name/stage.toml``, write the generated files, check them.

A stage is a folder ``stages/NN_name/`` holding ``stage.toml``, a ``miniray/`` package and
``demo.py``.  Some of a stage's files are *inherited*: copied verbatim from the previous stage
(``inherit`` in ``stage.toml``).  Two kinds of files are generated and never edited by hand:

* ``stages/NN_name/CHANGES.diff``: a unified diff of the stage against the previous stage,
  covering ``demo.py`` and everything under ``miniray/``;
* ``miniray/`` at the repository root: a byte-identical copy of the final stage's package.

Usage, from the repository root::

    python -m tools.stages sync    # copy inherited files, write CHANGES.diff and miniray/
    python -m tools.stages check   # change nothing; list every stale or misplaced file

The functions here take a ``root`` argument (default: this repository) so that the tests can
run them on a copy of the tree.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
STAGES_DIR = "stages"
PACKAGE = "miniray"
DEMO = "demo.py"
DIFF_NAME = "CHANGES.diff"
STAGE_TOML = "stage.toml"

STAGE_NAME_RE = re.compile(r"^(?P<number>\d{2})_[a-z0-9]+(?:_[a-z0-9]+)*$")
EXERCISE_ID_RE = re.compile(r"^(?P<stage>[1-9]\d*)\.(?P<n>[1-9]\d*)$")
TARGET_RE = re.compile(r"^(?P<file>[\w/]+\.py):(?P<qualname>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
TOML_KEYS = frozenset({"title", "capabilities", "inherit", "exercises"})
EXERCISE_KEYS = frozenset({"id", "target", "title", "hint"})

FileMap = dict[str, bytes]
"""Files of a stage: path relative to the stage folder (POSIX form) -> content."""


class StageError(Exception):
    """A stage folder or its ``stage.toml`` is malformed, or a stage cannot be found."""


@dataclass(frozen=True)
class Exercise:
    """One ``[[exercises]]`` table of a ``stage.toml``."""

    id: str  # "1.3"
    target: str  # "miniray/process.py:run_work_fn"
    title: str
    hint: str

    @property
    def marker(self) -> str:
        """The pytest marker of the exercise's tests: "1.3" -> "ex01_3"."""
        return exercise_marker(self.id)

    @property
    def file(self) -> str:
        """The target's file, relative to the stage folder: "miniray/process.py"."""
        return self.target.partition(":")[0]

    @property
    def qualname(self) -> str:
        """The target's qualified name inside its file: "Worker.is_alive"."""
        return self.target.partition(":")[2]


@dataclass(frozen=True)
class Stage:
    """A stage folder and its ``stage.toml``."""

    number: int
    name: str  # the folder name, "01_local_worker"
    path: Path  # absolute
    title: str
    capabilities: frozenset[str]
    inherit: tuple[str, ...] = ()
    exercises: tuple[Exercise, ...] = field(default=())

    def exercise(self, exercise_id: str) -> Exercise:
        """The exercise with this id; `StageError` if the stage has none."""
        for exercise in self.exercises:
            if exercise.id == exercise_id:
                return exercise
        known = ", ".join(e.id for e in self.exercises) or "none"
        raise StageError(f"stage {self.name} has no exercise {exercise_id} (it has: {known})")


def exercise_marker(exercise_id: str) -> str:
    """The pytest marker name for an exercise id: "1.3" -> "ex01_3", "12.1" -> "ex12_1"."""
    match = EXERCISE_ID_RE.match(exercise_id)
    if match is None:
        raise StageError(f"bad exercise id {exercise_id!r}: expected STAGE.N, like 1.3")
    return f"ex{int(match['stage']):02d}_{match['n']}"


def list_stages(root: Path = REPO_ROOT) -> list[Stage]:
    """Every stage under ``root/stages``, in order.

    Folders that are not stages yet (a name not of the form ``NN_name``, or no ``stage.toml``)
    are left out; `problems` reports them.  A malformed ``stage.toml`` raises `StageError`.
    """
    return [load_stage(folder) for folder in _stage_folders(root) if _is_stage(folder)]


def find_stage(spec: str, root: Path = REPO_ROOT) -> Stage:
    """The stage that ``spec`` names.

    ``spec`` is a number ("1", "01"), a folder name ("01_local_worker"), a path
    ("stages/01_local_worker"), or any directory holding a ``stage.toml`` such as a learner's
    workspace.  Relative paths are tried against the current directory, then against ``root``.
    """
    stages = list_stages(root)
    if spec.isdigit():
        for stage in stages:
            if stage.number == int(spec):
                return stage
        numbers = ", ".join(str(s.number) for s in stages) or "none"
        raise StageError(f"no stage number {int(spec)} (stages: {numbers})")
    for stage in stages:
        if spec == stage.name:
            return stage
    given = Path(spec).expanduser()
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, root / given]
    for candidate in candidates:
        if (candidate / STAGE_TOML).is_file():
            folder = candidate.resolve()
            for stage in stages:
                if stage.path == folder:
                    return stage
            return load_stage(folder)
    raise StageError(
        f"no stage {spec!r}: give a number (1), a stage folder name (01_local_worker) "
        "or a directory that holds a stage.toml"
    )


def load_stage(folder: Path) -> Stage:
    """Read ``folder/stage.toml``.  The number comes from the folder name (0 if it has none)."""
    folder = folder.resolve()
    toml_path = folder / STAGE_TOML
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"{folder}: no {STAGE_TOML}") from None
    except tomllib.TOMLDecodeError as error:
        raise StageError(f"{toml_path}: {error}") from None
    unknown = sorted(set(data) - TOML_KEYS)
    if unknown:
        raise StageError(f"{toml_path}: unknown keys {unknown}")
    match = STAGE_NAME_RE.match(folder.name)
    return Stage(
        number=int(match["number"]) if match else 0,
        name=folder.name,
        path=folder,
        title=_required_str(data, "title", toml_path),
        capabilities=frozenset(_str_list(data, "capabilities", toml_path, required=True)),
        inherit=tuple(_str_list(data, "inherit", toml_path)),
        exercises=tuple(_exercise(t, toml_path) for t in _table_list(data, toml_path)),
    )


def problems(root: Path = REPO_ROOT) -> list[str]:
    """Everything wrong with the stages and generated files under ``root``; [] when clean."""
    root = root.resolve()
    found = _layout_problems(root)
    try:
        stages = list_stages(root)
    except StageError as error:
        return [*found, str(error)]
    found += _exercise_problems(stages)
    plan = _plan(stages)
    found += plan.errors
    for stage in stages:
        found += _stage_file_problems(root, stage, plan)
    if stages:
        found += _package_problems(root, plan.views[stages[-1].path])
    return found


def sync(root: Path = REPO_ROOT) -> list[Path]:
    """Write inherited files, every ``CHANGES.diff`` and the top-level package; return what
    changed.  Raises `StageError`, before writing anything, if an inherited file is missing."""
    root = root.resolve()
    stages = list_stages(root)
    plan = _plan(stages)
    if plan.errors:
        raise StageError("\n".join(plan.errors))
    written: list[Path] = []
    for stage in stages:
        view = plan.views[stage.path]
        for rel in _inherited_paths(stage, view):
            written += _write_if_changed(stage.path / rel, view[rel])
        written += _write_if_changed(stage.path / DIFF_NAME, plan.diffs[stage.path].encode())
    if stages:
        written += _sync_package(root, _package_part(plan.views[stages[-1].path]))
    return written


def unified_diff(old: Mapping[str, bytes], new: Mapping[str, bytes]) -> str:
    """A git-style unified diff from ``old`` to ``new`` (path -> content), paths sorted."""
    return "".join(
        "".join(_file_diff(path, old.get(path), new.get(path)))
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path)
    )


def tracked_files(folder: Path) -> FileMap:
    """The files of a stage folder that the diff and inheritance cover: ``demo.py`` and all of
    ``miniray/``, without caches, compiled files and hidden files."""
    files: FileMap = {}
    if (folder / DEMO).is_file():
        files[DEMO] = (folder / DEMO).read_bytes()
    files.update(_tree_files(folder, PACKAGE))
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.stages",
        description="Sync or check the generated files of the MiniRay stages.",
    )
    parser.add_argument("command", choices=["sync", "check"])
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    if args.command == "sync":
        try:
            written = sync(root)
        except StageError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        for path in written:
            print(f"wrote {_rel(path, root)}")
        print(f"sync: {len(written)} file(s) written")
    found = problems(root)
    for problem in found:
        print(f"problem: {problem}")
    if found:
        print(f"{len(found)} problem(s); `python -m tools.stages sync` fixes generated files")
        return 1
    if args.command == "check":
        print(f"stages: ok ({len(list_stages(root))} stages)")
    return 0


# --- planning: what sync would write --------------------------------------------------------


@dataclass
class _Plan:
    views: dict[Path, FileMap] = field(default_factory=dict)  # stage path -> files after sync
    diffs: dict[Path, str] = field(default_factory=dict)  # stage path -> expected CHANGES.diff
    errors: list[str] = field(default_factory=list)


def _plan(stages: Sequence[Stage]) -> _Plan:
    plan = _Plan()
    previous: FileMap = {}
    previous_name = "nothing (it is the first stage)"
    for stage in stages:
        view = tracked_files(stage.path)
        for entry in stage.inherit:
            if not _is_tracked_path(entry):
                plan.errors.append(
                    f"{stage.name}/{STAGE_TOML}: inherit entry {entry!r} is not {DEMO} "
                    f"or under {PACKAGE}/"
                )
                continue
            matches = {p: b for p, b in previous.items() if _under(p, entry)}
            if not matches:
                plan.errors.append(
                    f"{stage.name}/{STAGE_TOML}: inherits {entry!r}, "
                    f"which is missing from {previous_name}"
                )
            view.update(matches)
        plan.views[stage.path] = view
        plan.diffs[stage.path] = unified_diff(previous, view)
        previous, previous_name = view, f"{STAGES_DIR}/{stage.name}"
    return plan


def _inherited_paths(stage: Stage, view: FileMap) -> list[str]:
    return sorted(p for p in view for entry in stage.inherit if _under(p, entry))


def _under(path: str, entry: str) -> bool:
    entry = entry.rstrip("/")
    return path == entry or path.startswith(entry + "/")


def _is_tracked_path(entry: str) -> bool:
    parts = entry.rstrip("/").split("/")
    return entry == DEMO or (parts[0] == PACKAGE and ".." not in parts and "" not in parts)


def _package_part(view: FileMap) -> FileMap:
    return {p: b for p, b in view.items() if p.startswith(PACKAGE + "/")}


# --- checking --------------------------------------------------------------------------------


def _layout_problems(root: Path) -> list[str]:
    stages_dir = root / STAGES_DIR
    if not stages_dir.is_dir():
        return [f"no {STAGES_DIR}/ folder under {root}"]
    found: list[str] = []
    numbers: dict[int, str] = {}
    for folder in _stage_folders(root):
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
    expected = list(range(1, len(numbers) + 1))
    if sorted(numbers) != expected:
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


def _stage_file_problems(root: Path, stage: Stage, plan: _Plan) -> list[str]:
    found: list[str] = []
    view = plan.views[stage.path]
    own = tracked_files(stage.path)
    for rel in _inherited_paths(stage, view):
        if own.get(rel) != view[rel]:
            state = "is missing" if rel not in own else "differs from the previous stage's copy"
            found.append(f"{_rel(stage.path / rel, root)}: inherited file {state}")
    diff_path = stage.path / DIFF_NAME
    if not diff_path.is_file():
        found.append(f"{_rel(diff_path, root)}: missing")
    elif diff_path.read_bytes() != plan.diffs[stage.path].encode():
        found.append(f"{_rel(diff_path, root)}: stale")
    return found


def _package_problems(root: Path, final_view: FileMap) -> list[str]:
    expected = _package_part(final_view)
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


# --- small helpers ---------------------------------------------------------------------------


def _stage_folders(root: Path) -> list[Path]:
    stages_dir = root.resolve() / STAGES_DIR
    if not stages_dir.is_dir():
        return []
    return sorted(p for p in stages_dir.iterdir() if p.is_dir() and not _ignored(p.name))


def _is_stage(folder: Path) -> bool:
    return STAGE_NAME_RE.match(folder.name) is not None and (folder / STAGE_TOML).is_file()


def _tree_files(base: Path, top: str) -> FileMap:
    files: FileMap = {}
    start = base / top
    if not start.is_dir():
        return files
    for path in sorted(start.rglob("*")):
        rel = path.relative_to(base)
        if path.is_file() and not any(_ignored(part) for part in rel.parts):
            files[rel.as_posix()] = path.read_bytes()
    return files


def _ignored(name: str) -> bool:
    return name == "__pycache__" or name.startswith(".") or name.endswith((".pyc", ".pyo"))


def _file_diff(path: str, old: bytes | None, new: bytes | None) -> Iterator[str]:
    yield f"diff --git a/{path} b/{path}\n"
    if old is None:
        yield "new file mode 100644\n"
    if new is None:
        yield "deleted file mode 100644\n"
    try:
        old_lines = _lines(old.decode("utf-8")) if old is not None else []
        new_lines = _lines(new.decode("utf-8")) if new is not None else []
    except UnicodeDecodeError:
        yield f"Binary files a/{path} and b/{path} differ\n"
        return
    from_file = f"a/{path}" if old is not None else "/dev/null"
    to_file = f"b/{path}" if new is not None else "/dev/null"
    for line in difflib.unified_diff(old_lines, new_lines, from_file, to_file):
        yield line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


def _lines(text: str) -> list[str]:
    """Split after each "\\n" only (str.splitlines also splits at form feeds and more)."""
    return [line for line in re.split(r"(?<=\n)", text) if line]


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _required_str(table: Mapping[str, Any], key: str, where: Path) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise StageError(f"{where}: {key!r} must be a non-empty string")
    return value


def _str_list(
    table: Mapping[str, Any], key: str, where: Path, *, required: bool = False
) -> list[str]:
    if key not in table and not required:
        return []
    value = table.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StageError(f"{where}: {key!r} must be a list of strings")
    return value


def _table_list(data: Mapping[str, Any], where: Path) -> list[dict[str, Any]]:
    tables = data.get("exercises", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise StageError(f"{where}: 'exercises' must be [[exercises]] tables")
    return tables


def _exercise(table: Mapping[str, Any], where: Path) -> Exercise:
    unknown = sorted(set(table) - EXERCISE_KEYS)
    if unknown:
        raise StageError(f"{where}: exercise {table.get('id')!r} has unknown keys {unknown}")
    exercise = Exercise(
        id=_required_str(table, "id", where),
        target=_required_str(table, "target", where),
        title=_required_str(table, "title", where),
        hint=_required_str(table, "hint", where),
    )
    if EXERCISE_ID_RE.match(exercise.id) is None:
        raise StageError(f"{where}: exercise id {exercise.id!r} is not STAGE.N, like 1.3")
    if TARGET_RE.match(exercise.target) is None:
        raise StageError(
            f"{where}: exercise {exercise.id} target {exercise.target!r} is not "
            "FILE.py:NAME or FILE.py:Class.method"
        )
    return exercise


if __name__ == "__main__":
    sys.exit(main())
