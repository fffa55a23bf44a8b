"""The test runner's summary: the closing line CI reads must add up the real test counts."""

from __future__ import annotations

from pathlib import Path

from tools.run_tests import Outcome, Tally, read_junit, summary

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
