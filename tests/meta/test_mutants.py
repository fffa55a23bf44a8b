"""Checks of the mutants (`tools.mutants`): every exercise keeps at least two known-wrong
solutions beside its stage, each a well-formed replacement of the exercise's target.

That the exercise's tests fail on each of them is ``make check-exercises`` (and
``test_exercise_checks.py``); here, only what can be seen without running them: each file
parses, holds a docstring and one definition of the target's name with the solution's
parameters, is not the solution, and splices into the stage's file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tools.exercise_runs import CheckResult
from tools.mutants import (
    MIN_MUTANTS,
    Mutant,
    MutantRun,
    mutant_problems,
    mutants_of,
    mutated_source,
    same_signature,
    stray_mutants,
    write_mutant,
)
from tools.stages import REPO_ROOT, Exercise, Stage, list_stages
from tools.stubs import ExerciseError, function_source

STAGES = list_stages()
EXERCISES: list[tuple[Stage, Exercise]] = [(s, e) for s in STAGES for e in s.exercises]
MUTANTS: list[tuple[Stage, Mutant]] = [(s, m) for s, e in EXERCISES for m in mutants_of(s, e)]


@pytest.mark.parametrize(("owner", "exercise"), EXERCISES, ids=[e.id for _, e in EXERCISES])
def test_every_exercise_keeps_its_mutants(owner: Stage, exercise: Exercise) -> None:
    found = mutants_of(owner, exercise)
    assert len(found) >= MIN_MUTANTS, (
        f"exercise {exercise.id} has {len(found)} mutant(s) in "
        f"{owner.path.relative_to(owner.path.parent.parent)}/mutants/{exercise.marker}_*.py; "
        f"it needs {MIN_MUTANTS}"
    )


@pytest.mark.parametrize("owner", STAGES, ids=[s.name for s in STAGES])
def test_every_mutant_file_belongs_to_an_exercise(owner: Stage) -> None:
    assert stray_mutants(owner) == []


@pytest.mark.parametrize(("owner", "mutant"), MUTANTS, ids=[m.name for _, m in MUTANTS])
def test_every_mutant_replaces_the_target_and_is_not_the_solution(
    owner: Stage, mutant: Mutant
) -> None:
    assert mutant_problems(mutant) == []
    solution = (owner.path / mutant.exercise.file).read_text(encoding="utf-8")
    assert same_signature(mutant, solution), f"{mutant.name}: not the target's signature"
    mutated = mutated_source(solution, mutant)
    leaf = mutant.exercise.qualname.rpartition(".")[2]
    assert _code(function_source(mutated, mutant.exercise.qualname)) == _code(
        function_source(mutant.text, leaf)
    ), "the splice must put the mutant where the solution was"
    assert _code(function_source(mutated, mutant.exercise.qualname)) != _code(
        function_source(solution, mutant.exercise.qualname)
    ), f"{mutant.name} is the solution"


def _code(definition: str) -> str:
    """A definition without its docstrings and comments: what runs."""
    tree = ast.parse(definition)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and ast.get_docstring(node):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


# --- the machinery, on a made-up exercise ----------------------------------------------------

TARGET = "miniray/mod.py:Thing.size"
MODULE = '''\
"""A module."""


class Thing:
    def size(self, items: list[int]) -> int:
        """How many."""
        return len(items)
'''


def made_up(tmp_path: Path, name: str, text: str) -> Mutant:
    path = tmp_path / f"ex01_1_{name}.py"
    path.write_text(text)
    return Mutant(Exercise("1.1", TARGET, "Measure", "len()."), path)


def test_a_mutant_of_a_method_is_spliced_in_at_its_indentation(tmp_path: Path) -> None:
    mutant = made_up(
        tmp_path,
        "off_by_one",
        '"""Counts one too many."""\n\n\ndef size(self, items: list[int]) -> int:\n'
        "    return len(items) + 1\n",
    )
    assert mutant.mistake == "Counts one too many."
    assert mutant.name == "ex01_1_off_by_one"
    mutated = mutated_source(MODULE, mutant)
    assert (
        "    def size(self, items: list[int]) -> int:\n        return len(items) + 1\n" in mutated
    )
    assert mutated.startswith('"""A module."""\n\n\nclass Thing:\n')
    assert same_signature(mutant, MODULE)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("def size(self, items: list[int]) -> int:\n    return 0\n", "no docstring"),
        ('"""Wrong."""\ndef count(self, items):\n    return 0\n', "defines count, not size"),
        ('"""Wrong."""\nimport os\ndef size(self, items):\n    return 0\n', "more than the one"),
        ('"""Wrong."""\ndef size(self, items:\n', "does not parse"),
    ],
)
def test_a_malformed_mutant_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    mutant = made_up(tmp_path, "bad", text)
    assert any(problem in p for p in mutant_problems(mutant))
    with pytest.raises(ExerciseError, match=r"ex01_1_bad\.py"):
        mutated_source(MODULE, mutant)


def test_another_signature_is_noticed(tmp_path: Path) -> None:
    mutant = made_up(tmp_path, "sig", '"""Wrong."""\ndef size(self, items) -> int:\n    return 0\n')
    assert not same_signature(mutant, MODULE)


def test_a_surviving_mutant_fails_the_check(tmp_path: Path) -> None:
    owner = STAGES[0]
    exercise = owner.exercises[0]
    caught, survived = (
        Mutant(exercise, tmp_path / f"{exercise.marker}_{n}.py") for n in ("a", "b")
    )
    runs = (MutantRun(caught, 1), MutantRun(survived, 0))
    result = CheckResult(owner, exercise, 0, 1, mutants=runs)
    assert not result.ok
    assert result.verdict == f"mutant {exercise.marker}_b SURVIVED"
    assert CheckResult(owner, exercise, 0, 1, mutants=(runs[0], runs[0])).ok
    too_few = CheckResult(owner, exercise, 0, 1, mutants=runs[:1])
    assert not too_few.ok and "an exercise needs 2" in too_few.verdict
    timed_out = CheckResult(owner, exercise, 0, 1, mutants=(runs[0], MutantRun(survived, None)))
    assert timed_out.verdict == f"mutant {exercise.marker}_b timed out"


# Right solutions in other words than the stage's, kept beside it: the tests must pass them,
# or they judge wording, not behaviour (stages/NN_name/right/exNN_M_<how>.py, the same form).
RIGHT = sorted(REPO_ROOT.glob("stages/*/right/ex*.py"))


def test_right_solutions_in_other_words_are_kept() -> None:
    assert RIGHT, "no stages/*/right/ files: nothing shows the tests accept other wordings"


@pytest.mark.parametrize("path", RIGHT, ids=lambda p: p.stem)
def test_a_right_solution_in_other_words_passes(path: Path, tmp_path: Path) -> None:
    from tools.exercise_runs import run_exercise_tests
    from tools.stages import find_stage
    from tools.workspaces import make_workspace

    stage = find_stage(path.parent.parent.name)
    number, index = path.stem.split("_")[:2]
    exercise = stage.exercise(f"{int(number.removeprefix('ex'))}.{index}")
    workspace = make_workspace(stage, tmp_path / stage.name, [])
    right = Mutant(exercise, path)
    assert mutant_problems(right) == []  # the target's name and signature, not the solution
    write_mutant(workspace, right)
    rc, output = run_exercise_tests(
        exercise.id, workspace, ["-q", "-p", "no:cacheprovider"], timeout=120, capture=True
    )
    assert rc == 0, output


def test_a_workspace_holds_neither_wrong_nor_right_answers(tmp_path: Path) -> None:
    from tools.stages import find_stage
    from tools.workspaces import make_workspace

    stage = find_stage(RIGHT[0].parent.parent.name)  # a stage that keeps both
    assert (stage.path / "mutants").is_dir() and (stage.path / "right").is_dir()
    workspace = make_workspace(stage, tmp_path / stage.name, [])
    assert not (workspace / "mutants").exists() and not (workspace / "right").exists()
