"""Checks of workspaces and exercise runs (`tools.exercises`).

Workspaces and the rendered stub are tested on a tiny stage; every real exercise target must
stub; a learner's stage 1 workspace is tested one exercise at a time, in any order, and its
progress shown.  Stubbing itself is tested in ``test_stubs.py``; that every exercise's tests
catch its stub, in ``test_exercise_checks.py``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tools.exercises import ExerciseError, make_workspace, render_stub
from tools.stages import REPO_ROOT, Exercise, Stage, find_stage, list_stages
from tools.stubs import function_source, replace_definition

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
    (folder / "mutants").mkdir()
    (folder / "mutants" / "ex01_2_triple.py").write_text(
        '"""Triples."""\ndef double(x):\n    return 3 * x\n'
    )
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
    assert not (workspace / "mutants").exists()  # wrong answers, with what is wrong in them
    assert not (workspace / "miniray" / "__pycache__").exists()
    assert (workspace / "stage.toml").read_text() == STAGE_TOML


def test_a_workspace_with_only_some_exercises(tiny: Stage, tmp_path: Path) -> None:
    workspace = make_workspace(tiny, tmp_path / "ws", ["1.2"], root=tmp_path)
    text = (workspace / "miniray" / "mod.py").read_text()
    assert "len(items)" in text and "2 * x" not in text


def test_a_workspace_is_replaced_only_with_force(tiny: Stage, tmp_path: Path) -> None:
    workspace = make_workspace(tiny, tmp_path / "ws", root=tmp_path)
    (workspace / "mine.txt").write_text("my work")
    with pytest.raises(ExerciseError, match="FORCE=1"):
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


@pytest.mark.parametrize(("owner", "exercise"), EXERCISES, ids=IDS)
def test_no_exercise_leaves_its_answer_beside_the_stub(owner: Stage, exercise: Exercise) -> None:
    """The stub must take the work away: a target whose body only hands its arguments to a
    helper would leave the whole answer in the file, one line below the stub."""
    source = function_source((owner.path / exercise.file).read_text(), exercise.qualname)
    definition = ast.parse(source).body[0]
    assert isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef)
    body = definition.body[1:] if ast.get_docstring(definition) else definition.body
    statements = sum(isinstance(node, ast.stmt) for part in body for node in ast.walk(part))
    assert statements >= 3, f"{exercise.target}: the body is {statements} statement(s)"


# --- a learner's workspace: one exercise at a time, in any order -----------------------------


def solve(workspace: Path, stage: Stage, exercise_id: str) -> None:
    """Write exercise ``exercise_id`` in ``workspace`` the way the stage does."""
    exercise = stage.exercise(exercise_id)
    solution = function_source((stage.path / exercise.file).read_text(), exercise.qualname)
    path = workspace / exercise.file
    path.write_text(replace_definition(path.read_text(), exercise.qualname, solution))


def exercises_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.exercises", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def stage_one() -> Stage:
    return find_stage("1")


@pytest.fixture
def workspace_13(stage_one: Stage, tmp_path: Path) -> Path:
    """A stage 1 workspace with exercise 1.3 written and every other exercise a stub."""
    workspace = make_workspace(stage_one, tmp_path / stage_one.name)
    solve(workspace, stage_one, "1.3")
    return workspace


def test_a_solved_exercise_passes_while_the_ones_it_calls_are_stubs(workspace_13: Path) -> None:
    before = (workspace_13 / "miniray" / "process.py").read_text()
    done = exercises_cli("test", "1.3", "--workspace", str(workspace_13))
    assert done.returncode == 0, done.stdout + done.stderr
    filled = [line for line in done.stdout.splitlines() if line.startswith("filled in")]
    assert len(filled) == 1, done.stdout
    assert "1.4 (die_with_parent)" in filled[0] and "1.3" not in filled[0]
    assert "NotImplementedError" not in done.stdout
    assert (workspace_13 / "miniray" / "process.py").read_text() == before  # untouched


def test_an_exercise_after_one_still_stubbed_passes_too(stage_one: Stage, tmp_path: Path) -> None:
    workspace = make_workspace(stage_one, tmp_path / stage_one.name)
    solve(workspace, stage_one, "1.4")
    done = exercises_cli("test", "1.4", "--workspace", str(workspace))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1.3 (run_work_fn)" in done.stdout


def test_an_unsolved_exercise_fails_with_its_own_not_implemented_error(workspace_13: Path) -> None:
    done = exercises_cli("test", "1.4", "--workspace", str(workspace_13))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    first_error = next(line for line in lines if "NotImplementedError" in line)
    assert first_error == "NotImplementedError: Exercise 1.4: Die with the parent"
    assert "Exercise 1.3" not in done.stdout


def test_progress_says_which_exercises_are_solved(workspace_13: Path, stage_one: Stage) -> None:
    done = exercises_cli("progress", "--workspace", str(workspace_13))
    assert done.returncode == 0, done.stdout + done.stderr
    states = {
        line.split()[0]: line.split()[1:3]
        for line in done.stdout.splitlines()
        if line.startswith("  1.")
    }
    assert states["1.3"][0] == "solved"
    assert all(states[e.id][:2] == ["not", "yet"] for e in stage_one.exercises if e.id != "1.3")
    assert "1 of 6 solved" in done.stdout


def test_a_missing_workspace_says_the_make_command(tmp_path: Path) -> None:
    done = exercises_cli("test", "2.1", "--workspace", str(tmp_path / "nothing"))
    assert done.returncode == 2
    assert "make workspace STAGE=2" in done.stderr


def test_an_existing_workspace_is_replaced_with_the_make_command(
    stage_one: Stage, tmp_path: Path
) -> None:
    workspace = make_workspace(stage_one, tmp_path / stage_one.name)
    with pytest.raises(ExerciseError, match="make workspace STAGE=1 FORCE=1"):
        make_workspace(stage_one, workspace)


def test_what_a_test_checks_is_in_the_exercise_statement(stage_one: Stage) -> None:
    assert "`max_frame`" in stage_one.exercise("1.1").statement  # its test matches "max_frame"
    assert "`os._exit(1)`" in stage_one.exercise("1.4").statement  # its test wants exit code 1
