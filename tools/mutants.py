"""Mutants: known-wrong solutions of an exercise, kept beside its stage, that its tests must fail.

A stub proves that an exercise's tests notice a missing body; it does not prove that they
notice a body that misses the exercise's idea (the full timeout on every wait instead of the
time left, a read error that skips the clean-up).  So each exercise keeps at least
`MIN_MUTANTS` such mistakes, one file each::

    stages/03_cluster/mutants/ex03_2_full_timeout_each_wait.py

The name is the exercise's marker (``ex03_2``), then a short name of the mistake.  The file
holds a docstring, whose first paragraph says what the mistake is, and the replacement definition
of the exercise's target: for ``miniray/launch.py:read_ready_line`` a ``def read_ready_line``
with the same signature; for a method, the method alone (``def _next_frame(self, ...)``),
unindented.  Nothing else: the definition is spliced into the stage's file in place of the
solution (`tools.stubs.replace_definition`), so it uses that module's names and imports.

``make check-exercises`` (`tools.exercise_runs.check_exercise`) runs the exercise's tests on a
copy of the stage with each mutant spliced in, and each must fail them.  These files are
written by hand (unlike the stage's ``miniray/``) and stay out of learners' workspaces.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tools.stages import Exercise, Stage
from tools.stubs import ExerciseError, find_definition, function_source, replace_definition

MUTANTS_DIR = "mutants"
RIGHT_DIR = "right"  # right solutions in other words: they must pass (tests/meta/test_mutants.py)
MIN_MUTANTS = 2


@dataclass(frozen=True)
class Mutant:
    """One known-wrong solution of an exercise."""

    exercise: Exercise
    path: Path  # stages/NN_name/mutants/exNN_M_short_name.py

    @property
    def name(self) -> str:
        """The file's name without ``.py``: "ex03_2_full_timeout_each_wait"."""
        return self.path.stem

    @property
    def text(self) -> str:
        return self.path.read_bytes().decode("utf-8")

    @property
    def mistake(self) -> str:
        """The first paragraph of the file's docstring, on one line: what this mutant gets
        wrong."""
        try:
            doc = ast.get_docstring(ast.parse(self.text)) or ""
        except SyntaxError:
            return "(does not parse)"
        return " ".join(doc.strip().split("\n\n")[0].split()) or "(no docstring)"


def mutants_folder(stage: Stage) -> Path:
    """Where a stage's mutants live: ``stages/NN_name/mutants/``."""
    return stage.path / MUTANTS_DIR


def mutants_of(stage: Stage, exercise: Exercise) -> list[Mutant]:
    """The exercise's mutants, sorted by name: the files ``mutants/<marker>_*.py``."""
    folder = mutants_folder(stage)
    if not folder.is_dir():
        return []
    return [Mutant(exercise, p) for p in sorted(folder.glob(f"{exercise.marker}_*.py"))]


def stray_mutants(stage: Stage) -> list[Path]:
    """Files in the stage's ``mutants/`` that belong to none of its exercises."""
    folder = mutants_folder(stage)
    if not folder.is_dir():
        return []
    known = {m.path for e in stage.exercises for m in mutants_of(stage, e)}
    return sorted(
        p for p in folder.iterdir() if p not in known and p.name != "__pycache__" and p.is_file()
    )


def mutant_problems(mutant: Mutant) -> list[str]:
    """What is wrong with a mutant file as a file: [] if it is a docstring and one
    definition of the target's name, whose parameters are the solution's."""
    leaf = mutant.exercise.qualname.rpartition(".")[2]
    try:
        tree = ast.parse(mutant.text)
    except SyntaxError as error:
        return [f"does not parse: {error}"]
    found: list[str] = []
    if not ast.get_docstring(tree):
        found.append("no docstring saying which mistake it makes")
    body = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
    if len(body) != 1 or not isinstance(body[0], ast.FunctionDef | ast.AsyncFunctionDef):
        found.append(f"holds more than the one definition of {leaf}")
    elif body[0].name != leaf:
        found.append(f"defines {body[0].name}, not {leaf}")
    return found


def same_signature(mutant: Mutant, solution_text: str) -> bool:
    """Whether the mutant's definition takes the parameters the solution takes (names,
    kinds, defaults and annotations) and returns what it returns."""
    leaf = mutant.exercise.qualname.rpartition(".")[2]
    mine = find_definition(ast.parse(mutant.text), leaf)
    theirs = find_definition(ast.parse(solution_text), mutant.exercise.qualname)
    return ast.dump(mine.args) == ast.dump(theirs.args) and ast.dump(
        mine.returns or ast.Constant(None)
    ) == ast.dump(theirs.returns or ast.Constant(None))


def mutated_source(solution_text: str, mutant: Mutant) -> str:
    """The target's file with the solution's definition replaced by the mutant's.

    Raises:
        ExerciseError: The mutant file is malformed (see `mutant_problems`).
    """
    problems = mutant_problems(mutant)
    if problems:
        raise ExerciseError(f"mutant {mutant.path.name}: {'; '.join(problems)}")
    leaf = mutant.exercise.qualname.rpartition(".")[2]
    definition = function_source(mutant.text, leaf)
    return replace_definition(solution_text, mutant.exercise.qualname, definition)


def write_mutant(workspace: Path, mutant: Mutant) -> None:
    """Splice ``mutant`` into ``workspace``'s copy of the exercise's target file."""
    path = workspace / mutant.exercise.file
    text = mutated_source(path.read_bytes().decode("utf-8"), mutant)
    path.write_bytes(text.encode("utf-8"))


@dataclass(frozen=True)
class MutantRun:
    """How an exercise's tests went on one mutant: ``rc`` is pytest's exit code (None: timed
    out, or the mutant could not be spliced in: then ``error`` says why)."""

    mutant: Mutant
    rc: int | None
    output: str = ""
    seconds: float = 0.0
    error: str = ""

    @property
    def caught(self) -> bool:
        """Whether the tests failed on the mutant (pytest's exit code 1), as they must."""
        return self.rc == 1 and not self.error

    @property
    def verdict(self) -> str:
        if self.error:
            return f"malformed: {self.error}"
        if self.rc == 1:
            return "caught"
        if self.rc == 0:
            return "SURVIVED"
        return "timed out" if self.rc is None else f"broke the run (pytest exit code {self.rc})"
