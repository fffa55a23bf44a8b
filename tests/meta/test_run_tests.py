"""The test runner's summary: the closing line CI reads must add up the real test counts."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.run_tests import (
    Outcome,
    Step,
    Tally,
    plan_steps,
    read_junit,
    run_steps,
    stages_without_tests,
    summary,
)
from tools.stages import REPO_ROOT, list_stages

REPORT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest"
errors="1" failures="2" skipped="3" tests="10" time="1.0">
<testcase classname="tests.contract.test_a" name="test_x"><failure message="boom"/></testcase>
<testcase classname="tests.contract.test_a" name="test_y"/>
</testsuite></testsuites>"""


def test_a_junit_report_is_counted(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(REPORT)
    assert read_junit(report) == Tally(4, 3, 3, ("tests.contract.test_a::test_x",))


def test_a_missing_report_counts_as_a_failure(tmp_path: Path) -> None:
    assert read_junit(tmp_path / "never-written.xml") == Tally(failed=1)


def test_the_summary_ends_with_steps_then_the_summed_tests() -> None:
    outcomes = [
        Outcome("ruff check", 0, 0.1),
        Outcome("pytest stage 01", 0, 2.0, Tally(passed=40)),
        Outcome("pytest stage 02", 1, 3.0, Tally(80, 1, 2, ("tests.t::test_flaky",))),
    ]
    lines = summary(outcomes).splitlines()
    assert "failed test: tests.t::test_flaky" in lines
    assert lines[-2] == "steps: 2 passed, 1 failed"
    assert lines[-1] == "tests: 120 passed, 1 failed, 2 skipped"


def test_steps_run_in_parallel_and_their_outcomes_keep_the_given_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def step(name: str, code: str, weight: float) -> Step:
        return Step(name, [sys.executable, "-c", code], weight=weight)

    steps = [
        step("light fails", "import sys; print('light out'); sys.exit(3)", 1.0),
        step("heavy passes", "import time; time.sleep(0.3); print('heavy out')", 9.0),
    ]
    outcomes = run_steps(steps, jobs=2)
    assert [(o.name, o.returncode) for o in outcomes] == [("light fails", 3), ("heavy passes", 0)]
    out = capsys.readouterr().out
    # each step's output comes in one piece, between its own header and footer
    assert re.search(r"==> light fails: .*\nlight out\n<== light fails: FAILED", out), out
    assert re.search(r"==> heavy passes: .*\nheavy out\n<== heavy passes: passed", out), out


def test_one_stage_ends_with_the_same_summary_lines_as_the_full_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.run_tests", "--stage", "1", "--", "-k", "no_such_test_xyz"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 1  # pytest found nothing to run: exit code 5, a failed step
    assert lines[-2] == "steps: 0 passed, 1 failed"
    assert lines[-1] == "tests: 0 passed, 0 failed, 0 skipped"


def collect(*options: str) -> list[str]:
    command = [sys.executable, "-m", "pytest", "tests", "--ignore=tests/meta", "--collect-only"]
    done = subprocess.run(
        [*command, "-q", *options, "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_the_plain_run_leaves_out_only_what_the_final_stage_run_repeats() -> None:
    kept = collect("--skip-final-stage-repeats")
    assert "tests/contract/test_worker_server.py::test_the_console_script_serves" in kept
    assert kept == collect("-m", "library")


def test_the_heavy_tests_run_once_in_the_full_run_in_the_final_stage_s_steps() -> None:
    final_stage = list_stages()[-1].name
    stage_steps = [s for s in plan_steps() if s.name.startswith("pytest stage")]
    final = [s for s in stage_steps if final_stage in s.command]
    earlier = [s for s in stage_steps if s not in final]
    assert final and earlier
    assert all("--skip-heavy-repeats" in step.command for step in earlier)
    assert not any("--skip-heavy-repeats" in step.command for step in final)
    # the final stage's suite, one folder a step: every folder of tests/ but meta, once
    folders = {p.name for p in (REPO_ROOT / "tests").iterdir() if any(p.glob("test_*.py"))}
    assert sorted(step.command[3] for step in final) == [
        f"tests/{f}" for f in sorted(folders - {"meta"})
    ]
    kept = collect("--stage", "04_distributed", "--skip-heavy-repeats")
    assert any("test_distributed_parts.py::" in test for test in kept)  # not heavy: kept
    assert not any("test_distributed_training.py::" in test for test in kept)  # heavy


def test_every_test_left_to_the_plain_run_is_marked_library() -> None:
    """A contract test that skips itself under ``--stage`` ("tested in the plain run") must be
    marked ``library``, or ``--skip-final-stage-repeats`` would leave it out of the plain run
    too, and it would never run."""
    unmarked = []
    for path in sorted((REPO_ROOT / "tests" / "contract").glob("test_*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            marked = any("library" in ast.unparse(d) for d in node.decorator_list)
            if "plain run" in ast.unparse(node) and not marked:
                unmarked.append(f"{path.name}::{node.name}")
    assert unmarked == []


def test_a_stage_run_in_folders_fails_when_no_folder_had_a_test() -> None:
    def outcome(name: str, tests: Tally) -> Outcome:
        return Outcome(name, 0, 1.0, tests)

    some_empty = [
        outcome("pytest stage 04 tests/cluster", Tally(passed=3)),
        outcome("pytest stage 04 tests/run", Tally()),
    ]
    assert stages_without_tests(some_empty) == []
    all_empty = [outcome("pytest stage 04 tests/cluster", Tally()), *some_empty[1:]]
    [failed] = stages_without_tests(all_empty)
    assert failed.name == "pytest stage 04: no test ran" and not failed.passed


def test_a_folder_without_tests_for_the_stage_passes_but_other_exit_codes_fail(
    tmp_path: Path,
) -> None:
    def step(code: int, may_be_empty: bool) -> Step:
        command = [sys.executable, "-c", f"import sys; sys.exit({code})"]
        return Step("s", command, may_be_empty=may_be_empty, junit=tmp_path / "none.xml")

    assert run_steps([step(5, True)])[0].passed
    assert run_steps([step(5, True)])[0].tests == Tally()
    assert not run_steps([step(5, False)])[0].passed
    assert not run_steps([step(2, True)])[0].passed
