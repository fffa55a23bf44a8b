"""Every exercise of every stage is a real one: its tests exist and fail on its stub, and on
each of its mutants (known-wrong solutions, `tools.mutants`).

For each exercise, a copy of its stage with only that exercise stubbed must fail the
exercise's tests (the run stops at the first failure: one is proof enough), and so must a
copy with each mutant in place of the solution; the solution must have tests marked for
it.  That they pass on the solution is the stage's own pytest step in ``make test``
(``make check-exercises`` runs them here too).

The checks run in parallel (``MINIRAY_JOBS``, default: one more than the cores), once per
session, and print a line as each one finishes; each test then reads its exercise's result.
"""

from __future__ import annotations

import os

import pytest

from tools.exercises import CheckResult, check_exercises
from tools.stages import Exercise, Stage, list_stages

EXERCISES: list[tuple[Stage, Exercise]] = [(s, e) for s in list_stages() for e in s.exercises]
# One more than cores: many mutants are caught by a test that waits (a timeout of seconds).
JOBS = int(os.environ.get("MINIRAY_JOBS") or (os.cpu_count() or 1) + 1)


@pytest.fixture(scope="module")
def checks(pytestconfig: pytest.Config) -> dict[str, CheckResult]:
    total = len(EXERCISES)
    done: list[CheckResult] = []

    def show(result: CheckResult) -> None:
        done.append(result)
        progress(
            pytestconfig,
            f"  [{len(done)}/{total}] exercise {result.exercise.id}: {result.verdict} "
            f"({result.seconds:.1f} s)",
        )

    progress(pytestconfig, f"\nchecking {total} exercises, {JOBS} at a time:")
    results = check_exercises(jobs=JOBS, run_solution=False, on_result=show)
    return {r.exercise.id: r for r in results}


@pytest.mark.timeout(1800)  # the first test waits for every check: stubs and mutants
@pytest.mark.parametrize(("owner", "exercise"), EXERCISES, ids=[e.id for _, e in EXERCISES])
def test_every_exercise_is_tested(
    checks: dict[str, CheckResult], owner: Stage, exercise: Exercise
) -> None:
    result = checks[exercise.id]
    tail = "\n".join(result.output.splitlines()[-30:])
    assert result.ok, f"exercise {exercise.id}: {result.verdict}\n{tail}"


def progress(config: pytest.Config, line: str) -> None:
    """Print ``line`` now, past pytest's output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
