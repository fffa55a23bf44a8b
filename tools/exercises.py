"""Exercises: test one exercise against a learner's workspace, show a learner's progress, and
check that every exercise is a real one; with the command line for these and for workspaces.

An exercise (``[[exercises]]`` in ``stage.toml``) names a target function or method, such as
``miniray/process.py:run_work_fn``, a title, a ``statement`` (what the function must do
beyond its docstring: the page shows it) and a ``hint`` (how: shown when asked).  Its tests
carry the marker ``ex01_3`` (for id "1.3").

    python -m tools.exercises workspace STAGE [--dest DIR] [--only ID ...] [--force]
        copy the stage to workspace/NN_name/ with every exercise's body replaced by
        ``raise NotImplementedError("Exercise 1.3: <title>")``       (make workspace STAGE=1)
    python -m tools.exercises test ID [--workspace DIR] [-- PYTEST_ARGS ...]
        run the exercise's tests against the workspace, with every *other* exercise that is
        still a stub filled in with the stage's code for this run     (make exercise EX=1.3,
        ARGS="-v" for pytest's options; each test has 10 s unless ARGS="--timeout N").
        A workspace that does not import says so in one line instead; the output names the
        workspace's files, not the temporary copy the tests run on
    python -m tools.exercises hint ID
        the exercise's statement and its hint                         (make hint EX=1.3)
    python -m tools.exercises progress [--workspace DIR ...]
        each exercise of each workspace: solved, or not yet           (make exercise)
    python -m tools.exercises check [ID ...] [--jobs N]
        for each exercise: the solution passes its tests, and a copy of the stage with only
        that exercise stubbed fails them, as does one with each of its mutants (known-wrong
        solutions, stages/NN_name/mutants/, see tools.mutants)      (make check-exercises)

Stubbing lives in `tools.stubs` and workspaces in `tools.workspaces`; their public functions
are importable from here too.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from tools.exercise_runs import (
    DEFAULT_TIMEOUT,
    CheckResult,
    check_exercise,
    check_exercises,
    exercises_to_check,
    find_exercise,
    run_alone_in_workspace,
    run_exercise_tests,
)
from tools.stages import REPO_ROOT, STAGE_TOML, Stage, StageError, find_stage
from tools.stubs import ExerciseError, stub_source
from tools.workspaces import (
    WORKSPACE_DIR,
    default_workspace,
    exercise_message,
    import_problem,
    make_workspace,
    overlay_workspace,
    render_stub,
    selected_exercises,
    shown_path,
    unsolved_exercises,
)

__all__ = [
    "CheckResult",
    "ExerciseError",
    "check_exercise",
    "check_exercises",
    "exercise_message",
    "main",
    "make_workspace",
    "overlay_workspace",
    "render_stub",
    "run_alone_in_workspace",
    "run_exercise_tests",
    "stub_source",
]

RC_WORDS = {
    0: "passed",
    1: "failed",
    2: "interrupted",
    3: "internal error",
    4: "usage error",
    5: "no tests",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)  # what follows goes to pytest
    args = _parser().parse_args(argv[:cut])
    args.pytest_args = argv[cut + 1 :]
    try:
        if args.command == "workspace":
            return _cmd_workspace(args)
        if args.command == "test":
            return _cmd_test(args)
        if args.command == "hint":
            return _cmd_hint(args)
        if args.command == "progress":
            return _cmd_progress(args)
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
    test.epilog = "Arguments after -- go to pytest: test 1.3 -- -v -k name"
    hint = sub.add_parser("hint", help="an exercise's hint")
    hint.add_argument("id", help="exercise id, like 1.3")
    progress = sub.add_parser("progress", help="which exercises of your workspaces are solved")
    progress.add_argument("--workspace", type=Path, nargs="+", help="default: workspace/*")
    check = sub.add_parser("check", help="check that every exercise is tested")
    check.add_argument("ids", nargs="*", metavar="ID", help="default: every exercise")
    check.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="per pytest run")
    check.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="checks at a time (default: cores)"
    )
    return parser


def _cmd_workspace(args: argparse.Namespace) -> int:
    stage = find_stage(args.stage)
    dest = make_workspace(stage, args.dest, args.only, force=args.force)
    exercises = selected_exercises(stage, args.only)
    print(f"workspace: {shown_path(dest)}")
    for exercise in exercises:
        print(f"  {exercise.id}  {exercise.target}: {exercise.title}")
    if exercises:
        print(
            f"test one with: make exercise EX={exercises[0].id}   (any order: the others run "
            "the stage's code until you write them)\nsee your progress with: make exercise\n"
            f"stuck? the stage page has a hint for each, or: make hint EX={exercises[0].id}"
        )
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    stage, exercise = find_exercise(args.id, REPO_ROOT)
    workspace = _existing_workspace(stage, args.workspace)
    problem = import_problem(stage, workspace)
    if problem is not None:  # before anything else: every test would fail on it
        print(problem)
        return 1
    print(f"exercise {exercise.id}: {exercise.title}", flush=True)
    try:
        rc, _ = run_alone_in_workspace(exercise.id, workspace, args.pytest_args, check_import=False)
    except KeyboardInterrupt:
        return 130
    if rc != 0:
        print(f"stuck? make hint EX={exercise.id}")
    return 1 if rc is None else rc


def _cmd_hint(args: argparse.Namespace) -> int:
    exercise = find_exercise(args.id, REPO_ROOT)[1]
    print(f"exercise {exercise.id}: {exercise.title}  ({exercise.target})")
    if exercise.statement:
        print(textwrap.fill(exercise.statement, 92, initial_indent="  ", subsequent_indent="  "))
    print(textwrap.fill(f"hint: {exercise.hint}", 92, initial_indent="  ", subsequent_indent="  "))
    return 0


def _cmd_progress(args: argparse.Namespace) -> int:
    workspaces = args.workspace or sorted(
        p.parent for p in (REPO_ROOT / WORKSPACE_DIR).glob(f"*/{STAGE_TOML}")
    )
    if not workspaces:
        print("no workspace yet; make one with: make workspace STAGE=1")
        return 0
    for workspace in workspaces:
        exercises = find_stage(str(workspace)).exercises
        if not exercises:
            print(f"{shown_path(workspace)}: no exercises")
            continue
        solution = find_exercise(exercises[0].id)[0]  # the stage whose code this workspace is
        print(f"{shown_path(workspace)} (stage {solution.number}: {solution.title})", flush=True)
        problem = import_problem(solution, workspace.resolve())
        if problem is not None:
            print(f"  {problem}", flush=True)
        unsolved = {e.id for e in unsolved_exercises(solution, workspace)}
        solved = 0
        for exercise in solution.exercises:
            if problem is not None:
                state = "not yet   (your workspace does not import)"
            elif exercise.id in unsolved:
                state = "not yet   (still the stub)"
            else:
                rc, _ = run_alone_in_workspace(
                    exercise.id,
                    workspace.resolve(),
                    ["-q"],
                    capture=True,
                    quiet=True,
                    check_import=False,
                )
                solved += rc == 0
                state = "solved" if rc == 0 else "not yet   (its tests fail: make exercise EX="
                state += "" if rc == 0 else f"{exercise.id})"
            print(f"  {exercise.id:<5} {state:<44} {exercise.title}", flush=True)
        print(f"  {solved} of {len(solution.exercises)} solved")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    todo = exercises_to_check(args.ids, REPO_ROOT)
    print(
        f"checking {len(todo)} exercise(s), {args.jobs} at a time: each runs its tests on the "
        "solution, on the stub and on each mutant",
        flush=True,
    )
    header = f"{'exercise':<9}{'target':<48}{'solution':<10}{'stubbed':<10}{'seconds':>8}  verdict"
    print(header, flush=True)

    def show(result: CheckResult) -> None:
        print(
            f"{result.exercise.id:<9}{result.exercise.target:<48}"
            f"{_rc_word(result.solution_rc):<10}{_rc_word(result.stubbed_rc):<10}"
            f"{result.seconds:>8.1f}  {result.verdict}",
            flush=True,
        )
        for run in result.mutants:
            print(f"{'':<9}mutant {run.mutant.name:<48}{run.verdict:<10} {run.mutant.mistake}")

    results = check_exercises(args.ids, timeout=args.timeout, jobs=args.jobs, on_result=show)
    bad = [r for r in results if not r.ok]
    for result in bad:
        tail = "\n".join(result.output.splitlines()[-30:])
        print(f"\n--- {result.exercise.id}: {result.verdict} ---\n{tail}")
    _show_mutant_counts(results)
    print(f"\n{len(results) - len(bad)} exercise(s) ok, {len(bad)} not ok")
    return 1 if bad else 0


# --- helpers ---------------------------------------------------------------------------------


def _existing_workspace(stage: Stage, given: Path | None) -> Path:
    workspace = given or default_workspace(stage)
    if not (workspace / STAGE_TOML).is_file():
        raise ExerciseError(
            f"no workspace at {shown_path(workspace)}; make it with: "
            f"make workspace STAGE={stage.number}"
        )
    return workspace.resolve()


def _show_mutant_counts(results: Sequence[CheckResult]) -> None:
    print("\nmutants caught:")
    for result in results:
        caught = sum(run.caught for run in result.mutants)
        print(f"  {result.exercise.id:<6} {caught} of {len(result.mutants)}")


def _rc_word(rc: int | None) -> str:
    return "timeout" if rc is None else RC_WORDS.get(rc, f"rc {rc}")


if __name__ == "__main__":
    sys.exit(main())
