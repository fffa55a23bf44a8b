"""Checks of workspaces and exercise runs (`tools.exercises`), and of every exercise of every
stage.

Workspaces and the rendered stub are tested on a tiny stage; then, for each exercise in the
stage.toml files, the solution must pass the exercise's tests and a workspace with only that
exercise stubbed must fail them (one pair of pytest subprocesses per exercise).  Stubbing
itself is tested in ``test_stubs.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tools.exercises import ExerciseError, check_exercise, make_workspace, render_stub
from tools.stages import Exercise, Stage, find_stage, list_stages

# --- workspaces and rendering, on a small stage ------------------------------------------------

STAGE_TOML = """\
title = "Tiny"
capabilities = ["local"]

[[exercises]]
id = "1.1"
target = "miniray/mod.py:Thing.size"
title = "Measure the thing"
hint = "len()."

[[exercises]]
id = "1.2"
target = "miniray/mod.py:double"
title = "Double it"
hint = "Times two."
"""

MODULE = '''\
"""A module."""


class Thing:
    def size(self, items: list[int]) -> int:
        """How many."""
        return len(items)


def double(x: int) -> int:
    return 2 * x
'''


@pytest.fixture
def tiny(tmp_path: Path) -> Stage:
    folder = tmp_path / "stages" / "01_tiny"
    (folder / "miniray" / "__pycache__").mkdir(parents=True)
    (folder / "stage.toml").write_text(STAGE_TOML)
    (folder / "miniray" / "mod.py").write_text(MODULE)
    (folder / "miniray" / "__pycache__" / "mod.cpython-311.pyc").write_text("junk")
    (folder / "CHANGES.diff").write_text("the solution, in full\n")
    return find_stage("1", tmp_path)


def test_render_stub_shows_the_dedented_stub(tiny: Stage) -> None:
    expected = (
        'def size(self, items: list[int]) -> int:\n    """How many."""\n'
        '    raise NotImplementedError("Exercise 1.1: Measure the thing")\n'
    )
    assert render_stub(tiny, "1.1") == expected


def test_a_workspace_stubs_every_exercise_and_leaves_out_the_answers(
    tiny: Stage, tmp_path: Path
) -> None:
    workspace = make_workspace(tiny, tmp_path / "ws", root=tmp_path)
    text = (workspace / "miniray" / "mod.py").read_text()
    assert "len(items)" not in text and "2 * x" not in text
    assert "Exercise 1.1: Measure the thing" in text and "Exercise 1.2: Double it" in text
    assert not (workspace / "CHANGES.diff").exists()
    assert not (workspace / "miniray" / "__pycache__").exists()
    assert (workspace / "stage.toml").read_text() == STAGE_TOML


def test_a_workspace_with_only_some_exercises(tiny: Stage, tmp_path: Path) -> None:
    workspace = make_workspace(tiny, tmp_path / "ws", ["1.2"], root=tmp_path)
    text = (workspace / "miniray" / "mod.py").read_text()
    assert "len(items)" in text and "2 * x" not in text


def test_a_workspace_is_replaced_only_with_force(tiny: Stage, tmp_path: Path) -> None:
    workspace = make_workspace(tiny, tmp_path / "ws", root=tmp_path)
    (workspace / "mine.txt").write_text("my work")
    with pytest.raises(ExerciseError, match="--force"):
        make_workspace(tiny, workspace, root=tmp_path)
    assert (workspace / "mine.txt").exists()
    make_workspace(tiny, workspace, force=True, root=tmp_path)
    assert not (workspace / "mine.txt").exists()


def test_force_never_deletes_something_that_is_not_a_workspace(tiny: Stage, tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    with pytest.raises(ExerciseError, match="does not look like a workspace"):
        make_workspace(tiny, tmp_path / "precious", force=True, root=tmp_path)
    with pytest.raises(ExerciseError, match="does not look like a workspace"):
        make_workspace(tiny, tiny.path, force=True, root=tmp_path)
    assert (tiny.path / "miniray" / "mod.py").read_text() == MODULE


# --- the real exercises ----------------------------------------------------------------------

EXERCISES: list[tuple[Stage, Exercise]] = [(s, e) for s in list_stages() for e in s.exercises]
IDS = [e.id for _, e in EXERCISES]


@pytest.mark.parametrize(("owner", "exercise"), EXERCISES, ids=IDS)
def test_every_exercise_target_can_be_stubbed(owner: Stage, exercise: Exercise) -> None:
    stubbed = render_stub(owner, exercise.id)
    assert f"Exercise {exercise.id}: " in stubbed
    ast.parse(stubbed)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("owner", "exercise"), EXERCISES, ids=IDS)
def test_every_exercise_is_tested(owner: Stage, exercise: Exercise) -> None:
    result = check_exercise(owner, exercise)
    tail = "\n".join(result.output.splitlines()[-30:])
    assert result.ok, f"exercise {exercise.id}: {result.verdict}\n{tail}"
