"""Running an exercise's tests: against a workspace, alone (the other exercises filled in),
and as a check that the tests catch a stub.  The command line is `tools.exercises`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tools.exercise_output import OverlayPaths, run_rewritten
from tools.mutants import MIN_MUTANTS, Mutant, MutantRun, mutants_of, write_mutant
from tools.pytest_forks import ForkServer
from tools.stages import REPO_ROOT, Exercise, Stage, list_stages
from tools.stubs import ExerciseError
from tools.workspaces import (
    exercise_message,
    import_problem,
    make_workspace,
    overlay_workspace,
    unsolved_exercises,
)

DEFAULT_TIMEOUT = 300.0
LEARNER_TEST_TIMEOUT = 10.0  # seconds per test in a learner's run: a hang fails in seconds


@dataclass(frozen=True)
class CheckResult:
    """The outcome of `check_exercise`: return codes of the solution's and the stub's pytest
    runs (None: timeout), and how each mutant's run went."""

    stage: Stage
    exercise: Exercise
    solution_rc: int | None
    stubbed_rc: int | None
    output: str = ""  # the output of the run that went wrong, if one did
    seconds: float = 0.0
    mutants: tuple[MutantRun, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    @property
    def verdict(self) -> str:
        marker = self.exercise.marker
        if self.solution_rc == 5:
            return f"no test is marked {marker}"
        if self.solution_rc != 0:
            return "the solution fails its tests"
        if self.stubbed_rc == 0:
            return "the tests pass with the function stubbed"
        if self.stubbed_rc != 1:
            return "the stubbed run broke instead of failing tests"
        wrong = [f"mutant {r.mutant.name} {r.verdict}" for r in self.mutants if not r.caught]
        if wrong:
            return "; ".join(wrong)
        if len(self.mutants) < MIN_MUTANTS:
            return (
                f"{len(self.mutants)} mutant(s): an exercise needs {MIN_MUTANTS} (tools/mutants.py)"
            )
        return "ok"


def run_exercise_tests(
    exercise_id: str,
    workspace: Path,
    extra_args: Sequence[str] = (),
    *,
    timeout: float | None = None,
    capture: bool = False,
    root: Path = REPO_ROOT,
    forks: ForkServer | None = None,
) -> tuple[int | None, str]:
    """Run ``pytest tests --stage WORKSPACE -m exNN_M``; return (exit code or None on
    timeout, captured output or ""). With ``forks`` (and ``capture``), in a child of it."""
    exercise = find_exercise(exercise_id, root)[1]
    command = pytest_command(exercise, workspace, extra_args, root)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if forks is not None:  # the same command, forked from a process that has pytest loaded
        assert command[1:3] == ["-m", "pytest"] and capture
        return forks.run(command[3:], cwd=root, env=env, timeout=timeout)
    try:
        done = subprocess.run(
            command,
            cwd=root,
            env=env,
            timeout=timeout,
            capture_output=capture,
            text=True,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        return None, _text(expired.stdout) + _text(expired.stderr)
    return done.returncode, (done.stdout or "") + (done.stderr or "")


def pytest_command(
    exercise: Exercise, workspace: Path, extra_args: Sequence[str], root: Path = REPO_ROOT
) -> list[str]:
    """``python -m pytest FILES --stage WORKSPACE -m exNN_M EXTRA_ARGS``."""
    files = files_that_mention(exercise.marker, root)
    stage = ["--stage", str(workspace), "-m", exercise.marker]
    return [sys.executable, "-m", "pytest", *files, *stage, *extra_args]


def files_that_mention(marker: str, root: Path = REPO_ROOT) -> list[str]:
    """The test files (outside tests/meta) whose text names ``marker``, relative to ``root``.

    Collecting only those, not all of tests/, saves each run about two seconds of imports.
    A marker no file names gives tests/ whole: pytest then says that no test was selected.
    """
    tests = root / "tests"
    named = re.compile(rf"\b{re.escape(marker)}\b")
    found = [
        str(path.relative_to(root))
        for path in sorted(tests.rglob("test_*.py"))
        if "meta" not in path.relative_to(tests).parts[:1] and named.search(path.read_text())
    ]
    return found or ["tests", "--ignore=tests/meta"]


def run_alone_in_workspace(
    exercise_id: str,
    workspace: Path,
    extra_args: Sequence[str] = (),
    *,
    capture: bool = False,
    quiet: bool = False,
    check_import: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT,
    root: Path = REPO_ROOT,
) -> tuple[int | None, str]:
    """Run exercise ``exercise_id``'s tests against ``workspace`` alone: every other exercise
    still stubbed there runs the stage's own code for this run (the workspace is not changed).

    A workspace that does not import is not tested (unless ``check_import`` is false: the
    caller has checked): the one line that says why is printed (or returned) instead, with
    exit code 1.  Each test gets `LEARNER_TEST_TIMEOUT` seconds
    (``extra_args`` may give another ``--timeout``), and a timeout names the exercise
    function that did not return (`tools.exercise_plugin`).  The paths in the output are
    the workspace's (`tools.exercise_output`).

    Unless ``quiet``, prints one line naming the exercises filled in, and, when the exercise
    itself is still the stub, its NotImplementedError before the tests run.
    """
    stage, exercise = find_exercise(exercise_id, root)
    problem = import_problem(stage, workspace) if check_import else None
    if problem is not None:
        if not capture:
            print(problem, flush=True)
        return 1, problem + "\n"
    with tempfile.TemporaryDirectory(prefix="miniray-overlay-") as tmp:
        dest = Path(tmp) / workspace.name
        overlay, filled = overlay_workspace(stage, workspace, dest, exercise.id)
        unsolved = exercise.id in {e.id for e in unsolved_exercises(stage, workspace)}
        if not quiet:
            if filled:
                names = ", ".join(f"{e.id} ({e.qualname})" for e in filled)
                print(f"filled in with the stage's code for this run: {names}", flush=True)
            if unsolved:
                print(
                    f"NotImplementedError: {exercise_message(exercise)}\n"
                    f"  {exercise.target} is still the stub: write its body, then run "
                    f"make exercise EX={exercise.id} again",
                    flush=True,
                )
        args = ["-p", "tools.exercise_plugin", "--exercise-stage", str(overlay)]
        args += ["--timeout", f"{LEARNER_TEST_TIMEOUT:g}", *(["-x"] if unsolved else [])]
        if not capture and sys.stdout.isatty():
            args.append("--color=yes")  # pytest writes to a pipe: ours
        paths = OverlayPaths(stage, workspace, overlay, filled)
        return run_rewritten(
            pytest_command(exercise, overlay, [*args, *extra_args], root),
            cwd=root,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            rewrite=paths.rewrite,
            marker=paths.marker,
            capture=capture,
            timeout=timeout,
        )


def check_exercise(
    stage: Stage,
    exercise: Exercise,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    collected: int | None = None,
    root: Path = REPO_ROOT,
    forks: ForkServer | None = None,
) -> CheckResult:
    """Run the exercise's tests on the solution (must pass), on a copy of the stage with only
    this exercise stubbed, and on one with each of its mutants (`tools.mutants`) in place of
    the solution (each must fail: pytest exit code 1).

    The stubbed and mutated runs stop at their first failing test (``-x``): one is proof
    enough that the tests catch the mistake, and the rest would only wait for their timeouts;
    and each test has `LEARNER_TEST_TIMEOUT` seconds, as in a learner's run.  Given
    ``collected``, the number of the solution's tests marked for the exercise (see
    `count_exercise_tests`), the solution's run is left out: for a caller that runs the
    stage's whole suite on the solution anyway, as ``make test`` does.
    """
    started = time.monotonic()
    args = ["-p", "no:cacheprovider", "-q"]
    # A mutant that loops forever (a frame never taken off the buffer spins) is caught by
    # the per-test timeout: the learner's, not the suite's 60 s, since every exercise test
    # must pass within it for the learner anyway. The thread method ends the run at once
    # (exit code 1): the signal method raises where the signal lands, and now and then
    # pytest then fails to print that traceback (INTERNALERROR, exit code 3).
    wrong_args = [*args, "-x", "--timeout", f"{LEARNER_TEST_TIMEOUT:g}"]
    wrong_args += ["--timeout-method", "thread"]
    if collected is None:
        solution_rc, solution_out = run_exercise_tests(
            exercise.id, stage.path, args, timeout=timeout, capture=True, root=root
        )
    else:
        solution_rc, solution_out = (0 if collected else 5), ""
    with tempfile.TemporaryDirectory(prefix="miniray-exercise-") as tmp:
        workspace = make_workspace(stage, Path(tmp) / stage.name, [exercise.id], root=root)
        stubbed_rc, stubbed_out = run_exercise_tests(
            exercise.id,
            workspace,
            wrong_args,
            timeout=timeout,
            capture=True,
            root=root,
            forks=forks,
        )
    mutants = tuple(
        run_mutant(stage, m, wrong_args, timeout=timeout, root=root, forks=forks)
        for m in mutants_of(stage, exercise)
    )
    escaped = [r.output for r in mutants if not r.caught]
    output = solution_out if solution_rc != 0 else stubbed_out
    output = output if solution_rc != 0 or stubbed_rc != 1 or not escaped else escaped[0]
    seconds = time.monotonic() - started
    return CheckResult(stage, exercise, solution_rc, stubbed_rc, output, seconds, mutants)


def run_mutant(
    stage: Stage,
    mutant: Mutant,
    extra_args: Sequence[str] = (),
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    root: Path = REPO_ROOT,
    forks: ForkServer | None = None,
) -> MutantRun:
    """Run the mutant's exercise's tests on a copy of ``stage`` with the mutant in place of
    the solution."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="miniray-mutant-") as tmp:
        workspace = make_workspace(stage, Path(tmp) / stage.name, [], root=root)
        try:
            write_mutant(workspace, mutant)
        except ExerciseError as error:
            return MutantRun(mutant, None, error=str(error))
        rc, output = run_exercise_tests(
            mutant.exercise.id,
            workspace,
            extra_args,
            timeout=timeout,
            capture=True,
            root=root,
            forks=forks,
        )
    return MutantRun(mutant, rc, output, time.monotonic() - started)


def count_exercise_tests(stage: Stage, root: Path = REPO_ROOT) -> dict[str, int]:
    """How many of the stage's tests carry each exercise marker, from one collection."""
    with tempfile.TemporaryDirectory(prefix="miniray-collect-") as tmp:
        report = Path(tmp) / "counts.json"
        command = [sys.executable, "-m", "pytest", "tests", "--ignore=tests/meta", "--stage"]
        command += [str(stage.path), "--collect-only", "-q", f"--exercise-tests-json={report}"]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        if not report.is_file():
            raise ExerciseError(f"collecting {stage.name}'s tests failed:\n{done.stdout}")
        counts: dict[str, int] = json.loads(report.read_text(encoding="utf-8"))
    return counts


def check_exercises(
    ids: Sequence[str] = (),
    *,
    timeout: float = DEFAULT_TIMEOUT,
    jobs: int = 1,
    run_solution: bool = True,
    root: Path = REPO_ROOT,
    on_result: Callable[[CheckResult], object] | None = None,
) -> list[CheckResult]:
    """`check_exercise` for the given exercise ids, or for every exercise of every stage,
    ``jobs`` at a time; ``on_result`` sees each result as it comes.  Results in input order.

    Without ``run_solution``, each stage's tests are collected once, and each exercise only
    checked to have some (see `check_exercise`)."""
    todo = exercises_to_check(ids, root)
    counts: dict[str, dict[str, int]] = {}
    if not run_solution:
        for stage in {s.name: s for s, _ in todo}.values():
            counts[stage.name] = count_exercise_tests(stage, root)
    results: dict[int, CheckResult] = {}
    with ForkServer() as forks, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {
            pool.submit(
                check_exercise,
                s,
                e,
                timeout=timeout,
                collected=counts[s.name].get(e.marker, 0) if counts else None,
                root=root,
                forks=forks,
            ): i
            for i, (s, e) in enumerate(todo)
        }
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if on_result is not None:
                on_result(results[futures[future]])
    return [results[i] for i in range(len(todo))]


def find_exercise(exercise_id: str, root: Path = REPO_ROOT) -> tuple[Stage, Exercise]:
    """The stage and exercise with this id; `ExerciseError` if no stage.toml has it."""
    for stage in list_stages(root):
        for exercise in stage.exercises:
            if exercise.id == exercise_id:
                return stage, exercise
    raise ExerciseError(f"no exercise {exercise_id!r} in any stage.toml")


def exercises_to_check(ids: Sequence[str], root: Path = REPO_ROOT) -> list[tuple[Stage, Exercise]]:
    """The exercises with these ids, or every exercise of every stage if none are given."""
    if ids:
        return [find_exercise(i, root) for i in ids]
    return [(s, e) for s in list_stages(root) for e in s.exercises]


def _text(data: str | bytes | None) -> str:
    # TimeoutExpired carries bytes even when the run was started with text=True
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""
