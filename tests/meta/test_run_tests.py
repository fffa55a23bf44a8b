"""The test runner's summary: the closing line CI reads must add up the real test counts."""

from __future__ import annotations

from pathlib import Path

from tools.run_tests import Outcome, Tally, read_junit, summary

REPORT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest"
errors="1" failures="2" skipped="3" tests="10" time="1.0"></testsuite></testsuites>"""


def test_a_junit_report_is_counted(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(REPORT)
    assert read_junit(report) == Tally(passed=4, failed=3, skipped=3)


def test_a_missing_report_counts_as_a_failure(tmp_path: Path) -> None:
    assert read_junit(tmp_path / "never-written.xml") == Tally(failed=1)


def test_the_summary_ends_with_steps_then_the_summed_tests() -> None:
    outcomes = [
        Outcome("ruff check", 0, 0.1),
        Outcome("pytest stage 01", 0, 2.0, Tally(passed=40)),
        Outcome("pytest stage 02", 1, 3.0, Tally(passed=80, failed=1, skipped=2)),
    ]
    lines = summary(outcomes).splitlines()
    assert lines[-2] == "steps: 2 passed, 1 failed"
    assert lines[-1] == "tests: 120 passed, 1 failed, 2 skipped"
