"""The stage model: what a stage folder and its ``stage.toml`` hold, and how to find stages.

A stage is a folder ``stages/NN_name/`` holding ``stage.toml``, a ``miniray/`` package
(generated from the top-level one, see `tools.sync`) and ``demo.py``.  ``stage.toml`` gives a
title, capabilities, ``[new]`` (for some files of the package, the paragraph that says what is
new in them in this stage) and ``[[exercises]]`` tables.

Import these names from `tools.stages`, the public face of the stage tools; this module is
separate only so that `tools.sync` can use it without an import cycle.  The functions take a
``root`` argument (default: this repository) so that the tests can run them on a copy of the
tree.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
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
TOML_KEYS = frozenset({"title", "capabilities", "new", "exercises"})
EXERCISE_KEYS = frozenset({"id", "target", "title", "statement", "hint"})


class StageError(Exception):
    """A stage folder or its ``stage.toml`` is malformed, or a stage cannot be found."""


@dataclass(frozen=True)
class Exercise:
    """One ``[[exercises]]`` table of a ``stage.toml``."""

    id: str  # "1.3"
    target: str  # "miniray/process.py:run_work_fn"
    title: str
    hint: str  # how to go about it: shown when asked (a folded block, `make hint`)
    statement: str = ""  # what the function must do, beyond its docstring: always shown

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
    new: tuple[tuple[str, str], ...] = ()  # file -> its "New in this stage" paragraph
    exercises: tuple[Exercise, ...] = ()

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
    are left out; `tools.sync.problems` reports them.  A malformed ``stage.toml`` raises
    `StageError`.
    """
    return [load_stage(folder) for folder in stage_folders(root) if _is_stage(folder)]


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
        new=_new_paragraphs(data, toml_path),
        exercises=tuple(_exercise(t, toml_path) for t in _table_list(data, toml_path)),
    )


def stage_folders(root: Path) -> list[Path]:
    """Every folder under ``root/stages``, sorted, whether or not it is a proper stage yet."""
    stages_dir = root.resolve() / STAGES_DIR
    if not stages_dir.is_dir():
        return []
    return sorted(p for p in stages_dir.iterdir() if p.is_dir() and not is_ignored(p.name))


def is_ignored(name: str) -> bool:
    """Whether a file or folder name is a cache, a compiled file or hidden: never stage content."""
    return name == "__pycache__" or name.startswith(".") or name.endswith((".pyc", ".pyo"))


def _is_stage(folder: Path) -> bool:
    return STAGE_NAME_RE.match(folder.name) is not None and (folder / STAGE_TOML).is_file()


def _required_str(table: Mapping[str, Any], key: str, where: Path) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise StageError(f"{where}: {key!r} must be a non-empty string")
    return value


def _optional_str(table: Mapping[str, Any], key: str, where: Path) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise StageError(f"{where}: {key!r} must be a string")
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


def _new_paragraphs(data: Mapping[str, Any], where: Path) -> tuple[tuple[str, str], ...]:
    table = data.get("new", {})
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in table.items()
    ):
        raise StageError(f"{where}: [new] must map file paths to paragraphs (strings)")
    return tuple(sorted(table.items()))


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
        statement=_optional_str(table, "statement", where),
    )
    if EXERCISE_ID_RE.match(exercise.id) is None:
        raise StageError(f"{where}: exercise id {exercise.id!r} is not STAGE.N, like 1.3")
    if TARGET_RE.match(exercise.target) is None:
        raise StageError(
            f"{where}: exercise {exercise.id} target {exercise.target!r} is not "
            "FILE.py:NAME or FILE.py:Class.method"
        )
    return exercise
