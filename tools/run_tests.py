"""Run every check of the repository, step by step, and summarise.

    python -m tools.run_tests                              # everything
    python -m tools.run_tests --stage 1 [-- PYTEST_ARGS]   # only: pytest tests --stage 1

The steps, in order: ``ruff check .``; ``mypy --strict`` on the top-level package and the tools;
``mypy --strict`` on each stage, in its own folder and its own process (two ``miniray``
packages must not meet in one mypy run); ``python -m tools.stages check``; ``pytest tests
--stage NN`` for each stage; plain ``pytest tests`` (the repository checks and the top-level
package); ``mkdocs build --strict`` when there is a ``mkdocs.yml``.

A failing step stops nothing.  The exit status is 1 if any step failed.  The summary ends
with two lines: ``steps: N passed, M failed``, and, last, ``tests: N passed, M failed,
K skipped``, added up from every pytest step's JUnit report (the line CI reads).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.stages import DEMO, PACKAGE, REPO_ROOT, Stage, StageError, list_stages


@dataclass(frozen=True)
class Step:
    """One command to run; ``env`` is added to this process's environment."""

    name: str
    command: list[str]
    cwd: Path = REPO_ROOT
    env: dict[str, str] = field(default_factory=dict)
    junit: Path | None = None  # where a pytest step writes its report


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
    options = parser.parse_args(args)
    if options.stage is not None:
        return run_stage_tests(options.stage, extra)
    if extra:
        parser.error("arguments after -- need --stage")
    with tempfile.TemporaryDirectory(prefix="miniray-junit-") as reports:
        outcomes = [run_step(step) for step in plan_steps(junit_dir=Path(reports))]
    print(summary(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


def run_stage_tests(spec: str, pytest_args: Sequence[str] = ()) -> int:
    """``pytest tests --stage SPEC [ARGS]``; returns pytest's exit code."""
    step = Step(f"pytest --stage {spec}", [*_pytest(), "--stage", spec, *pytest_args])
    return run_step(step).returncode


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
        Step("mypy miniray tools", [python, "-m", "mypy", "--strict", PACKAGE, "tools"], root),
    ]
    steps += [_mypy_stage(stage, root) for stage in stages]
    steps.append(Step("stages check", [python, "-m", "tools.stages", "check"], root))
    pytest_runs = {f"pytest stage {s.name}": ["--stage", s.name] for s in stages}
    pytest_runs["pytest miniray + meta"] = []
    for index, (name, args) in enumerate(pytest_runs.items()):
        junit = None if junit_dir is None else junit_dir / f"{index}.xml"
        report = [] if junit is None else [f"--junitxml={junit}"]
        steps.append(Step(name, [*_pytest(), *args, *report], root, junit=junit))
    if (root / "mkdocs.yml").is_file():
        steps.append(
            Step(
                "mkdocs build",
                [python, "-m", "mkdocs", "build", "--strict"],
                root,
                {"NO_MKDOCS_2_WARNING": "1"},
            )
        )
    return steps


def run_step(step: Step) -> Outcome:
    """Run one step with its output streaming through; time it."""
    print(f"\n==> {step.name}: {' '.join(_short(c) for c in step.command)}", flush=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    started = time.monotonic()
    try:
        returncode = subprocess.run(
            step.command, cwd=step.cwd, env={**env, **step.env}, check=False
        ).returncode
    except OSError as error:
        print(f"error: cannot run {step.command[0]}: {error}", file=sys.stderr)
        returncode = 127
    tests = None if step.junit is None else read_junit(step.junit)
    outcome = Outcome(step.name, returncode, time.monotonic() - started, tests)
    print(f"<== {step.name}: {'passed' if outcome.passed else 'FAILED'}", flush=True)
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


def _mypy_stage(stage: Stage, root: Path) -> Step:
    targets = [PACKAGE, *([DEMO] if (stage.path / DEMO).is_file() else [])]
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--config-file",
        str(root / "pyproject.toml"),
        "--cache-dir",
        str(root / ".mypy_cache" / stage.name),
        *targets,
    ]
    return Step(f"mypy stage {stage.name}", command, stage.path)


def _pytest() -> list[str]:
    return [sys.executable, "-m", "pytest", "tests"]


def _short(arg: str) -> str:
    return "python" if arg == sys.executable else arg


if __name__ == "__main__":
    sys.exit(main())
