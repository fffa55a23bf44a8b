"""Exercises: run an exercise's tests against a learner's workspace, and check that every
exercise is a real one; with the command line for both and for making workspaces.

An exercise (``[[exercises]]`` in ``stage.toml``) names a target function or method, such as
``miniray/process.py:run_work_fn``.  Its tests carry the marker ``ex01_3`` (for id "1.3").

    python -m tools.exercises workspace STAGE [--dest DIR] [--only ID ...] [--force]
        copy the stage to workspace/NN_name/ with every exercise's body replaced by
        ``raise NotImplementedError("Exercise 1.3: <title>")``
    python -m tools.exercises test ID [--workspace DIR] [-- PYTEST_ARGS ...]
        run the exercise's tests against the workspace
    python -m tools.exercises check [ID ...]
        for each exercise: the solution passes its tests, and a workspace with only that
        exercise stubbed fails them

Stubbing lives in `tools.stubs` and workspaces in `tools.workspaces`; their public functions
are importable from here too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.stages import REPO_ROOT, STAGE_TOML, Exercise, Stage, StageError, find_stage, list_stages
from tools.stubs import ExerciseError, stub_source
from tools.workspaces import (
    default_workspace,
    exercise_message,
    make_workspace,
    render_stub,
    selected_exercises,
    shown_path,
)

__all__ = [
    "CheckResult",
    "ExerciseError",
    "check_exercise",
    "check_exercises",
    "exercise_message",
    "main",
    "make_workspace",
    "render_stub",
    "run_exercise_tests",
    "stub_source",
]

DEFAULT_TIMEOUT = 300.0
RC_WORDS = {
    0: "passed",
    1: "failed",
    2: "interrupted",
    3: "internal error",
    4: "usage error",
    5: "no tests",
}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of `check_exercise`: return codes of the two pytest runs (None: timeout)."""

    stage: Stage
    exercise: Exercise
    solution_rc: int | None
    stubbed_rc: int | None
    output: str = ""  # the output of the run that went wrong, if one did

    @property
    def ok(self) -> bool:
        return self.solution_rc == 0 and self.stubbed_rc == 1

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
        return "ok"


def run_exercise_tests(
    exercise_id: str,
    workspace: Path,
    extra_args: Sequence[str] = (),
    *,
    timeout: float | None = None,
    capture: bool = False,
    root: Path = REPO_ROOT,
) -> tuple[int | None, str]:
    """Run ``pytest tests --stage WORKSPACE -m exNN_M``; return (exit code or None on
    timeout, captured output or "")."""
    exercise = _find_exercise(exercise_id, root)[1]
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests",
        "--stage",
        str(workspace),
        "-m",
        exercise.marker,
        *extra_args,
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
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


def check_exercise(
    stage: Stage, exercise: Exercise, *, timeout: float = DEFAULT_TIMEOUT, root: Path = REPO_ROOT
) -> CheckResult:
    """Run the exercise's tests on the solution (must pass) and on a workspace with only this
    exercise stubbed (must fail: pytest exit code 1)."""
    args = ["-p", "no:cacheprovider", "-q"]
    solution_rc, solution_out = run_exercise_tests(
        exercise.id, stage.path, args, timeout=timeout, capture=True, root=root
    )
    with tempfile.TemporaryDirectory(prefix="miniray-exercise-") as tmp:
        workspace = make_workspace(stage, Path(tmp) / stage.name, [exercise.id], root=root)
        stubbed_rc, stubbed_out = run_exercise_tests(
            exercise.id, workspace, args, timeout=timeout, capture=True, root=root
        )
    output = solution_out if solution_rc != 0 else stubbed_out
    return CheckResult(stage, exercise, solution_rc, stubbed_rc, output)


def check_exercises(
    ids: Sequence[str] = (), *, timeout: float = DEFAULT_TIMEOUT, root: Path = REPO_ROOT
) -> list[CheckResult]:
    """`check_exercise` for the given exercise ids, or for every exercise of every stage."""
    return [
        check_exercise(s, e, timeout=timeout, root=root) for s, e in _exercises_to_check(ids, root)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "workspace":
            return _cmd_workspace(args)
        if args.command == "test":
            return _cmd_test(args)
        return _cmd_check(args)
    except (ExerciseError, StageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


# --- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.exercises", description="MiniRay exercises: make, test, check."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ws = sub.add_parser("workspace", help="copy a stage with its exercises stubbed")
    ws.add_argument("stage", help="1, 01_local_worker or stages/01_local_worker")
    ws.add_argument("--dest", type=Path, help="default: workspace/NN_name")
    ws.add_argument("--only", nargs="+", metavar="ID", help="stub only these exercises")
    ws.add_argument("--force", action="store_true", help="replace an existing workspace")
    test = sub.add_parser("test", help="run one exercise's tests against your workspace")
    test.add_argument("id", help="exercise id, like 1.3")
    test.add_argument("--workspace", type=Path, help="default: workspace/NN_name")
    test.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    check = sub.add_parser("check", help="check that every exercise is tested")
    check.add_argument("ids", nargs="*", metavar="ID", help="default: every exercise")
    check.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="per pytest run")
    return parser


def _cmd_workspace(args: argparse.Namespace) -> int:
    stage = find_stage(args.stage)
    dest = make_workspace(stage, args.dest, args.only, force=args.force)
    exercises = selected_exercises(stage, args.only)
    print(f"workspace: {shown_path(dest)}")
    for exercise in exercises:
        print(f"  {exercise.id}  {exercise.target}: {exercise.title}")
        print(f"       hint: {exercise.hint}")
    first = exercises[0].id if exercises else "ID"
    print(f"test one with: python -m tools.exercises test {first}   (or: make exercise EX={first})")
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    stage, exercise = _find_exercise(args.id, REPO_ROOT)
    workspace = args.workspace or default_workspace(stage)
    if not (workspace / STAGE_TOML).is_file():
        raise ExerciseError(
            f"no workspace at {shown_path(workspace)}; create it with "
            f"`python -m tools.exercises workspace {stage.number}`"
        )
    print(f"exercise {exercise.id}: {exercise.title}\n  hint: {exercise.hint}", flush=True)
    rc, _ = run_exercise_tests(exercise.id, workspace.resolve(), args.pytest_args)
    return 1 if rc is None else rc


def _cmd_check(args: argparse.Namespace) -> int:
    results: list[CheckResult] = []
    print(f"{'exercise':<9}{'target':<48}{'solution':<12}{'stubbed':<12}verdict", flush=True)
    for stage, exercise in _exercises_to_check(args.ids, REPO_ROOT):
        result = check_exercise(stage, exercise, timeout=args.timeout)
        results.append(result)
        print(
            f"{exercise.id:<9}{exercise.target:<48}{_rc_word(result.solution_rc):<12}"
            f"{_rc_word(result.stubbed_rc):<12}{result.verdict}",
            flush=True,
        )
    bad = [r for r in results if not r.ok]
    for result in bad:
        tail = "\n".join(result.output.splitlines()[-30:])
        print(f"\n--- {result.exercise.id}: {result.verdict} ---\n{tail}")
    print(f"\n{len(results) - len(bad)} exercise(s) ok, {len(bad)} not ok")
    return 1 if bad else 0


# --- helpers ---------------------------------------------------------------------------------


def _find_exercise(exercise_id: str, root: Path) -> tuple[Stage, Exercise]:
    for stage in list_stages(root):
        for exercise in stage.exercises:
            if exercise.id == exercise_id:
                return stage, exercise
    raise ExerciseError(f"no exercise {exercise_id!r} in any stage.toml")


def _exercises_to_check(ids: Sequence[str], root: Path) -> list[tuple[Stage, Exercise]]:
    """The exercises with these ids, or every exercise of every stage if none are given."""
    if ids:
        return [_find_exercise(i, root) for i in ids]
    return [(s, e) for s in list_stages(root) for e in s.exercises]


def _rc_word(rc: int | None) -> str:
    return "timeout" if rc is None else RC_WORDS.get(rc, f"rc {rc}")


def _text(data: str | bytes | None) -> str:
    # TimeoutExpired carries bytes even when the run was started with text=True
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


if __name__ == "__main__":
    sys.exit(main())
