"""Learner workspaces: a copy of a stage with its exercises stubbed; the overlay that lets a
learner test one exercise while others are still stubs; and the stub of one exercise as a
documentation page shows it.

Import these from `tools.exercises`, which also runs and checks the exercises' tests.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from tools.stages import DIFF_NAME, REPO_ROOT, STAGE_TOML, Exercise, Stage, find_stage, list_stages
from tools.stubs import ExerciseError, function_source, is_stub, replace_definition, stub_source

WORKSPACE_DIR = "workspace"


def make_workspace(
    stage: Stage,
    dest: Path | None = None,
    only: Sequence[str] | None = None,
    *,
    force: bool = False,
    root: Path = REPO_ROOT,
) -> Path:
    """Copy ``stage`` to ``dest`` (default ``workspace/NN_name``) with exercises stubbed.

    ``only`` limits the stubbing to those exercise ids.  An existing workspace is replaced
    only with ``force``, and only if it looks like one (it has a ``stage.toml``).
    """
    dest = (dest or default_workspace(stage, root)).resolve()
    stubbed = _stubbed_files(stage, selected_exercises(stage, only))  # fails before writing
    if dest.exists():
        _remove_old_workspace(dest, force=force, root=root)
    shutil.copytree(
        stage.path,
        dest,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*", DIFF_NAME),
    )
    for rel, text in stubbed.items():
        (dest / rel).write_bytes(text.encode("utf-8"))
    return dest


def unsolved_exercises(stage: Stage, workspace: Path) -> list[Exercise]:
    """The exercises whose target in ``workspace`` is still a stub (its body only raises
    NotImplementedError)."""
    return [e for e in stage.exercises if _is_stub_in(workspace, e)]


def overlay_workspace(
    stage: Stage, workspace: Path, dest: Path, keep: str
) -> tuple[Path, list[Exercise]]:
    """Copy ``workspace`` to ``dest`` with every unsolved exercise except ``keep`` filled in
    with the stage's own code; return the copy and the exercises filled in.

    This is how exercise ``keep`` is tested alone: exercises call each other (1.3's tests run
    1.4's code), so a stub elsewhere would fail ``keep``'s tests for a reason not its own.
    The workspace itself is not changed.
    """
    shutil.copytree(workspace, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    filled = [e for e in unsolved_exercises(stage, workspace) if e.id != keep]
    for exercise in filled:
        path = dest / exercise.file
        solution = function_source(_read_target(stage, exercise), exercise.qualname)
        try:
            text = replace_definition(_read(path, exercise), exercise.qualname, solution)
        except ExerciseError as error:
            raise ExerciseError(f"cannot fill in exercise {exercise.id}: {error}") from None
        path.write_bytes(text.encode("utf-8"))
    return dest, filled


def render_stub(stage: Stage | str, exercise_id: str) -> str:
    """The stubbed function as a learner sees it (decorators, signature, docstring, raise),
    dedented; for showing an exercise on a documentation page."""
    stage = find_stage(stage) if isinstance(stage, str) else stage
    exercise = stage.exercise(exercise_id)
    text = _read_target(stage, exercise)
    stubbed = stub_source(text, exercise.qualname, exercise_message(exercise))
    return function_source(stubbed, exercise.qualname)


def exercise_message(exercise: Exercise) -> str:
    """The NotImplementedError message of a stubbed exercise."""
    return f"Exercise {exercise.id}: {exercise.title}"


def default_workspace(stage: Stage, root: Path = REPO_ROOT) -> Path:
    """Where a stage's workspace goes unless told otherwise: ``workspace/NN_name``."""
    return root / WORKSPACE_DIR / stage.name


def selected_exercises(stage: Stage, only: Sequence[str] | None) -> list[Exercise]:
    """The stage's exercises with the ids in ``only``, or all of them if ``only`` is None."""
    return [stage.exercise(i) for i in only] if only is not None else list(stage.exercises)


def shown_path(path: Path) -> str:
    """``path`` relative to the current directory if it is under it, for messages."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _stubbed_files(stage: Stage, exercises: Sequence[Exercise]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for exercise in exercises:
        text = texts.get(exercise.file) or _read_target(stage, exercise)
        try:
            texts[exercise.file] = stub_source(text, exercise.qualname, exercise_message(exercise))
        except ExerciseError as error:
            raise ExerciseError(f"exercise {exercise.id} ({exercise.target}): {error}") from None
    return texts


def _read_target(stage: Stage, exercise: Exercise) -> str:
    return _read(stage.path / exercise.file, exercise)


def _read(path: Path, exercise: Exercise) -> str:
    if not path.is_file():
        raise ExerciseError(f"exercise {exercise.id}: {shown_path(path)} does not exist")
    return path.read_bytes().decode("utf-8")


def _is_stub_in(workspace: Path, exercise: Exercise) -> bool:
    try:
        return is_stub(_read(workspace / exercise.file, exercise), exercise.qualname)
    except ExerciseError:  # the learner's file does not parse (yet): their tests will say so
        return False


def _stage_number(folder: Path) -> str:
    prefix = folder.name.partition("_")[0]
    return str(int(prefix)) if prefix.isdigit() else folder.name


def _remove_old_workspace(dest: Path, *, force: bool, root: Path) -> None:
    if not force:
        raise ExerciseError(
            f"{shown_path(dest)} exists; to replace it (and lose your answers in it): "
            f"make workspace STAGE={_stage_number(dest)} FORCE=1"
        )
    stages = {s.path for s in list_stages(root)}
    if not (dest / STAGE_TOML).is_file() or dest in stages or dest == root.resolve():
        raise ExerciseError(f"{shown_path(dest)} does not look like a workspace; not replacing it")
    shutil.rmtree(dest)
