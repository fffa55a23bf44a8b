"""Run every check of the repository, several steps at a time, and summarise.

    python -m tools.run_tests [--jobs N]                   # everything
    python -m tools.run_tests --stage 1 [-- PYTEST_ARGS]   # only: pytest tests --stage 1

The steps: ``ruff check .`` and ``ruff format --check .``; ``mypy --strict`` on the tools;
``mypy --strict`` on each stage, in its own folder and its own process (two ``miniray``
packages must not meet in one mypy run), one after the other with one cache (see
`_mypy_stages`), which for the final stage checks the top-level
package too (the same bytes: a third of a minute of CPU, mostly torch's stubs, not spent
twice); ``python -m tools.stages check``; ``pytest tests --stage NN`` for each stage (a
stage that runs its whole suite runs it as one step per folder of ``tests/``, so that the
steps, not one long one, share the cores); plain
``pytest tests --skip-final-stage-repeats`` (the repository checks, and the tests of the
top-level package that the final stage's run does not already cover: that package is a byte
copy of the final stage's, as the stages check and ``tests/conftest.py`` verify) but for the
long checks that are steps of their own (`SEPARATE_META_RUNS`: the exercise checks, the
learners' runs, the benchmarks, the browser check). ``mkdocs build --strict`` is a test of
the plain run (``tests/meta/test_site.py``), not a step: it would build the site twice.

The steps are independent, so ``--jobs`` of them (default: two more than the number of
cores, see `default_jobs`) run at once, the heaviest first. Each step's output is printed in
one piece when it ends; while steps run, a line every 30 seconds says which. A failing step
stops nothing. The exit status is 1 if any step failed. The summary ends with two lines:
``steps: N passed, M failed``, and, last, ``tests: N passed, M failed, K skipped``, added up
from every pytest step's JUnit report (the line CI reads). ``--stage`` ends with the same
two lines.

Why not nox, which runs such sessions (``@nox.session`` parametrized by stage)?  What this
file does that nox cannot: it ends with one line that adds up the tests of every pytest run.
Nox always prints its own report last (``nox > Ran multiple sessions:`` and a line per
session, or ``nox > Session ... was successful``), so the last line could never be the summed
count that CI reads; nox counts sessions, not tests.  Its parallel mode (``-j``, nox
2026.08.17) is also still marked experimental.  The sessions would run these same commands,
so nox would add a dependency without removing the part that is ours.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tools.stages import (
    DEMO,
    PACKAGE,
    REPO_ROOT,
    Stage,
    StageError,
    keeps_every_line,
    list_stages,
)

HEARTBEAT = 30.0  # seconds between "still running" lines
NO_TESTS = 5  # pytest's exit code when no test was selected
# A step's weight is about the seconds it takes in `make test` on the 2-core machine, 3 steps
# at a time: the longest start first, so that no long step, started last, runs alone at the
# end while a core idles (measured: the stage 4 contract tests, weighed too light, did).
SEPARATE_META_RUNS = {  # long repository checks, run as steps of their own: (name, weight)
    "tests/meta/test_exercise_checks.py": ("pytest exercise checks", 170.0),
    "tests/meta/test_learner_runs.py": ("pytest learner runs", 50.0),
    "tests/meta/test_benchmarks.py": ("pytest benchmarks", 30.0),
    "tests/meta/test_site_in_browser.py": ("pytest site in a browser", 20.0),
}
# The seconds of a stage's tests in each folder: (the final stage, a stage before it that
# runs its whole suite, which leaves the heavy tests to the final one).
FOLDER_WEIGHTS = {
    "cluster": (240.0, 90.0),
    "engines": (165.0, 2.0),
    "run": (85.0, 2.0),
    "contract": (60.0, 60.0),
    "extensions": (35.0, 2.0),
}


@dataclass(frozen=True)
class Step:
    """One command to run; ``env`` is added to this process's environment."""

    name: str
    command: list[str]
    cwd: Path = REPO_ROOT
    env: dict[str, str] = field(default_factory=dict)
    junit: Path | None = None  # where a pytest step writes its report
    weight: float = 1.0  # a rough guess of its duration: heavier steps start first
    # pytest's exit code 5 (no test selected) passes: a folder with no test for this stage.
    # `summary` still fails a stage whose folders all had none.
    may_be_empty: bool = False


@dataclass(frozen=True)
class Tally:
    """What one or more pytest runs reported."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: tuple[str, ...] = ()  # ids of the failed tests, to name them in the summary

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.passed + other.passed,
            self.failed + other.failed,
            self.skipped + other.skipped,
            self.failures + other.failures,
        )


@dataclass(frozen=True)
class Outcome:
    """How a step went."""

    name: str
    returncode: int
    seconds: float
    tests: Tally | None = None  # None: not a pytest step

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args:
        at = args.index("--")
        args, extra = args[:at], args[at + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m tools.run_tests",
        description="Lint, type-check and test every stage, the library and the docs.",
        epilog="Arguments after -- go to pytest (with --stage only).",
    )
    parser.add_argument("--stage", metavar="N", help="only run pytest for this stage")
    parser.add_argument(
        "--jobs", type=int, default=default_jobs(), help="steps at a time (default: cores + 2)"
    )
    options = parser.parse_args(args)
    if extra and options.stage is None:
        parser.error("arguments after -- need --stage")
    with tempfile.TemporaryDirectory(prefix="miniray-junit-") as reports:
        if options.stage is not None:
            junit = Path(reports) / "stage.xml"
            command = [*_pytest(), "--stage", options.stage, f"--junitxml={junit}", *extra]
            outcomes = [run_step(Step(f"pytest --stage {options.stage}", command, junit=junit))]
        else:
            started = time.monotonic()
            outcomes = run_steps(plan_steps(junit_dir=Path(reports)), jobs=options.jobs)
            outcomes += stages_without_tests(outcomes)
            # The suite's wall time is a goal: say it (rounded first: 359.7 s is 6 min 0 s).
            minutes, seconds = divmod(round(time.monotonic() - started), 60)
            print(f"\nall steps took {minutes} min {seconds} s, {options.jobs} at a time")
    print(summary(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


def default_jobs() -> int:
    """Two steps more than cores: many tests wait (for a timeout, a child, sshd) part of the
    time, and the extra steps use the cores they leave idle. On 2 cores, with 3 steps at a
    time both cores were busy for the first 100 s, then 40-60 % for a minute while the contract
    and cluster steps waited; with 4 the cores stayed 80-100 % busy, and the run took 3 min
    4-13 s instead of 3 min 24-32 s (2 runs and 4, one machine, one afternoon; with 4 it
    also passed beside a process that kept a core busy). A fifth step would only share the
    same cores."""
    return (os.cpu_count() or 1) + 2


def run_steps(steps: Sequence[Step], jobs: int = 1) -> list[Outcome]:
    """Run ``steps``, ``jobs`` at a time, heaviest first; outcomes in the order given.

    With one job, each step's output streams through.  With more, each step's output is
    printed in one piece when it ends, and a line every `HEARTBEAT` seconds names the steps
    still running.
    """
    if jobs <= 1:
        return [run_step(step) for step in steps]
    order = sorted(range(len(steps)), key=lambda i: -steps[i].weight)
    started: dict[int, float] = {}  # step index -> when it began (queued steps are not here)
    outcomes: dict[int, Outcome] = {}
    lock = threading.Lock()

    def start(i: int) -> Outcome:
        started[i] = time.monotonic()
        return run_step(steps[i], capture=True, lock=lock)

    print(f"running {len(steps)} steps, {jobs} at a time", flush=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending: dict[Future[Outcome], int] = {pool.submit(start, i): i for i in order}
        while pending:
            done, _ = wait(pending, timeout=HEARTBEAT, return_when=FIRST_COMPLETED)
            for future in done:
                outcomes[pending.pop(future)] = future.result()
            if not done:
                now = time.monotonic()
                busy = [
                    f"{steps[i].name} ({now - t:.0f} s)"
                    for i, t in list(started.items())
                    if i not in outcomes
                ]
                with lock:
                    print(
                        f"... {len(outcomes)}/{len(steps)} steps done; running: {', '.join(busy)}",
                        flush=True,
                    )
    return [outcomes[i] for i in range(len(steps))]


def plan_steps(root: Path = REPO_ROOT, junit_dir: Path | None = None) -> list[Step]:
    """Every step of the full run, in order; pytest steps report into ``junit_dir``."""
    try:
        stages = list_stages(root)
    except StageError as error:
        print(f"error: {error}", file=sys.stderr)
        stages = []  # the stages check step reports it
    python = sys.executable
    steps = [
        Step("ruff check", [python, "-m", "ruff", "check", "."], root),
        Step("ruff format", [python, "-m", "ruff", "format", "--check", "."], root),
        Step("mypy tools", [python, "-m", "mypy", "--strict", "tools"], root),
    ]
    steps.append(_mypy_stages(stages, root))
    steps.append(Step("stages check", [python, "-m", "tools.stages", "check"], root))
    # pytest runs: (name, arguments, a guess of their weight: the heaviest start first)
    runs = [run for s in stages for run in _stage_runs(s, stages, root)]
    own_steps = [p for p in SEPARATE_META_RUNS if (root / p).is_file()]
    plain = ["tests", *(f"--ignore={p}" for p in own_steps), "--skip-final-stage-repeats"]
    runs.append(("pytest library + meta", plain, 90.0))
    runs += [(SEPARATE_META_RUNS[p][0], [p], SEPARATE_META_RUNS[p][1]) for p in own_steps]
    for index, (name, args, weight) in enumerate(runs):
        junit = None if junit_dir is None else junit_dir / f"{index}.xml"
        report = [] if junit is None else [f"--junitxml={junit}"]
        command = [python, "-m", "pytest", *args, *report]
        part = name.startswith("pytest stage ") and " tests/" in name  # one folder of a stage
        steps.append(Step(name, command, root, junit=junit, weight=weight, may_be_empty=part))
    return steps


def run_step(step: Step, *, capture: bool = False, lock: threading.Lock | None = None) -> Outcome:
    """Run one step and time it.  Its output streams through, or with ``capture`` is printed
    in one piece (under ``lock``) when it ends."""
    header = f"\n==> {step.name}: {' '.join(_short(c) for c in step.command)}"
    if not capture:
        print(header, flush=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    started = time.monotonic()
    output = ""
    try:
        done = subprocess.run(
            step.command,
            cwd=step.cwd,
            env={**env, **step.env},
            check=False,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            text=True,
        )
        returncode, output = done.returncode, done.stdout or ""
    except OSError as error:
        output = f"error: cannot run {step.command[0]}: {error}\n"
        returncode = 127
        if not capture:
            print(output, end="", file=sys.stderr)
    tests = None if step.junit is None else read_junit(step.junit)
    if returncode == NO_TESTS and step.may_be_empty:
        returncode, tests = 0, Tally()  # (pytest writes a report with one error then)
    outcome = Outcome(step.name, returncode, time.monotonic() - started, tests)
    footer = (
        f"<== {step.name}: {'passed' if outcome.passed else 'FAILED'} ({outcome.seconds:.1f} s)"
    )
    if capture:
        with lock or threading.Lock():
            print(f"{header}\n{output.rstrip()}\n{footer}", flush=True)
    else:
        print(footer, flush=True)
    return outcome


def read_junit(report: Path) -> Tally:
    """The counts in a pytest JUnit XML report; a missing report counts as one failure."""
    try:
        suite = ElementTree.parse(report).getroot()
    except (OSError, ElementTree.ParseError):
        return Tally(failed=1)  # pytest died before writing it: not a pass
    if suite.tag == "testsuites":
        suite = suite[0]
    total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    failures = tuple(
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    )
    return Tally(total - failed - skipped, failed, skipped, failures)


def stages_without_tests(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """A failed outcome for each stage run in folders (``pytest stage NN tests/...``) where
    no folder had a test: each folder may be empty for a stage, not all of them."""
    counts: dict[str, int] = {}
    for o in outcomes:
        stage, folder, _ = o.name.partition(" tests/")
        if folder and o.tests is not None:
            t = o.tests
            counts[stage] = counts.get(stage, 0) + t.passed + t.failed + t.skipped
    return [Outcome(f"{stage}: no test ran", 1, 0.0) for stage, n in counts.items() if n == 0]


def summary(outcomes: Sequence[Outcome]) -> str:
    """A table of steps, then ``steps: ...`` and last ``tests: N passed, M failed, K skipped``."""
    statuses = ["passed" if o.passed else f"FAILED ({o.returncode})" for o in outcomes]
    width = max([len("step"), *(len(o.name) for o in outcomes)])
    status_width = max([len("status"), *map(len, statuses)])
    rows = [f"{'step':<{width}}  {'status':<{status_width}}  seconds"]
    for o, status in zip(outcomes, statuses, strict=True):
        rows.append(f"{o.name:<{width}}  {status:<{status_width}}  {o.seconds:7.1f}")
    tests = sum((o.tests for o in outcomes if o.tests is not None), Tally())
    rows += [f"failed test: {test_id}" for test_id in tests.failures]
    failed = sum(not o.passed for o in outcomes)
    rows.append(f"steps: {len(outcomes) - failed} passed, {failed} failed")
    rows.append(f"tests: {tests.passed} passed, {tests.failed} failed, {tests.skipped} skipped")
    return "\n" + "\n".join(rows)


def _stage_runs(
    stage: Stage, stages: list[Stage], root: Path
) -> list[tuple[str, list[str], float]]:
    """The pytest runs of one stage: (name, arguments, weight).

    Every stage but the final one leaves its heavy tests (torch training end to end) to the
    final stage's run, and, when the next stage keeps every line of its code, every test but
    its own (``per_stage``) to the next stage's run (see tests/conftest.py): one short run.
    A stage that runs its whole suite runs it one folder of ``tests/`` at a time (but
    ``tests/meta``, the plain run's): minutes of work as several steps, which the cores share.
    """
    name, options = f"pytest stage {stage.name}", ["--stage", stage.name]
    final = stage.name == stages[-1].name
    if not final:
        options += ["--skip-heavy-repeats", "--skip-kept-repeats"]
        later = stages[stages.index(stage) + 1]
        if keeps_every_line(stage, later):
            return [(name, ["tests", *options], 5.0)]
    folders = sorted(p for p in (root / "tests").iterdir() if p.is_dir() and _has_tests(p))
    return [
        (f"{name} tests/{f.name}", [f"tests/{f.name}", *options], _folder_weight(f, final))
        for f in folders
        if f.name != "meta"
    ]


def _folder_weight(folder: Path, final: bool) -> float:
    final_seconds, earlier_seconds = FOLDER_WEIGHTS.get(folder.name, (30.0, 30.0))
    return final_seconds if final else earlier_seconds


def _has_tests(folder: Path) -> bool:
    return any(folder.glob("test_*.py"))


def _mypy_stages(stages: list[Stage], root: Path) -> Step:
    """``mypy --strict`` on each stage, in its own folder and process, one after the other
    in one step, with one cache.

    The stages from 4 on import torch, whose stubs cost mypy about 30 s of CPU when nothing
    is cached (a clean clone, as on CI); with one cache the first such stage pays and the
    next ones reuse it. A stage's own modules have the same names as another stage's: mypy
    sees that a cached module came from another file and checks it again.
    """
    lines = ["status=0"]
    for stage in stages:
        targets = [PACKAGE, *([DEMO] if (stage.path / DEMO).is_file() else [])]
        command = [sys.executable, "-m", "mypy", "--strict", "--config-file"]
        command += [
            str(root / "pyproject.toml"),
            "--cache-dir",
            str(root / ".mypy_cache" / "stages"),
        ]
        lines.append(f"echo '-- {stage.name}'")
        lines.append(
            f"(cd {shlex.quote(str(stage.path))} && {shlex.join([*command, *targets])}) || status=1"
        )
    lines.append("exit $status")
    # Its weight is its time with nothing cached, as on CI (53 s there, 16 s with a cache):
    # weighed at 15, it started among the last steps and was the last to end.
    return Step("mypy stages", ["sh", "-c", "\n".join(lines)], root, weight=50.0)


def _pytest() -> list[str]:
    return [sys.executable, "-m", "pytest", "tests"]


def _short(arg: str) -> str:
    return "python" if arg == sys.executable else arg


if __name__ == "__main__":
    sys.exit(main())
