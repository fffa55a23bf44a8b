"""Run every check of the repository, step by step, and summarise.

    python -m tools.run_tests                              # everything
    python -m tools.run_tests --stage 1 [-- PYTEST_ARGS]   # only: pytest tests --stage 1

The steps, in order: ``ruff check .``; ``mypy --strict`` on the top-level package and the tools;
``mypy --strict`` on each stage, in its own folder and its own process (two ``miniray``
packages must not meet in one mypy run); ``python -m tools.stages check``; ``pytest tests
--stage NN`` for each stage; plain ``pytest tests`` (the repository checks and the top-level
package); ``mkdocs build --strict`` when there is a ``mkdocs.yml``.

A failing step stops nothing.  The exit status is 1 if any step failed, and the last line
printed is ``N passed, M failed`` (counting steps), which CI reads.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
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


@dataclass(frozen=True)
class Outcome:
    """How a step went."""

    name: str
    returncode: int
    seconds: float

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
    outcomes = [run_step(step) for step in plan_steps()]
    print(summary(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


def run_stage_tests(spec: str, pytest_args: Sequence[str] = ()) -> int:
    """``pytest tests --stage SPEC [ARGS]``; returns pytest's exit code."""
    step = Step(f"pytest --stage {spec}", [*_pytest(), "--stage", spec, *pytest_args])
    return run_step(step).returncode


def plan_steps(root: Path = REPO_ROOT) -> list[Step]:
    """Every step of the full run, in order."""
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
    steps += [Step(f"pytest stage {s.name}", [*_pytest(), "--stage", s.name], root) for s in stages]
    steps.append(Step("pytest miniray + meta", _pytest(), root))
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
    outcome = Outcome(step.name, returncode, time.monotonic() - started)
    print(f"<== {step.name}: {'passed' if outcome.passed else 'FAILED'}", flush=True)
    return outcome


def summary(outcomes: Sequence[Outcome]) -> str:
    """A table of steps; its last line is exactly ``N passed, M failed``."""
    statuses = ["passed" if o.passed else f"FAILED ({o.returncode})" for o in outcomes]
    width = max([len("step"), *(len(o.name) for o in outcomes)])
    status_width = max([len("status"), *map(len, statuses)])
    rows = [f"{'step':<{width}}  {'status':<{status_width}}  seconds"]
    for o, status in zip(outcomes, statuses, strict=True):
        rows.append(f"{o.name:<{width}}  {status:<{status_width}}  {o.seconds:7.1f}")
    failed = sum(not o.passed for o in outcomes)
    rows.append(f"{len(outcomes) - failed} passed, {failed} failed")
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
