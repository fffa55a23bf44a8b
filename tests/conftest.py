"""Pytest setup for MiniRay: which ``miniray`` package is under test, and which tests apply.

* ``--stage SPEC`` tests one stage: "1", "01", "01_local_worker", "stages/01_local_worker", or
  a learner's workspace directory (any directory with a ``stage.toml``).  Its folder goes first
  on ``sys.path`` and on ``PYTHONPATH`` (for subprocesses), so ``import miniray`` finds its
  package.  Without ``--stage``, the top-level ``miniray/`` is tested with the capabilities of
  the final stage.
* ``@pytest.mark.needs("tcp")``: a test that needs a capability the stage lacks is deselected
  (reported as deselected, not skipped).  With ``--stage``, ``tests/meta/`` is deselected too:
  those tests check the repository, and run in the plain run.
* ``@pytest.mark.ex01_3``: the tests of exercise 1.3.  One marker is registered per exercise
  of every stage, so ``--strict-markers`` catches typos.
* ``--skip-final-stage-repeats`` (plain run only, as ``make test`` uses it): when the final
  stage's package is what the top-level ``miniray/`` generates for it (the same code), the
  contract tests would be the final stage's run over again, so only ``tests/meta/`` and the
  tests marked ``@pytest.mark.library`` (the installed package: its console script) run.
  If the two differ, everything runs.
* ``--skip-heavy-repeats`` (with ``--stage``, as ``make test`` uses it for every stage but
  the final one): leave out the tests marked ``heavy`` (torch training end to end, a minute
  or two of CPU). The final stage inherits the code they test, and its run has them; a
  run of one stage alone (``make test STAGE=4``) has them too.
* ``--skip-kept-repeats`` (with ``--stage`` of a stage before the final one, as ``make test``
  uses it): when the next stage keeps every line of this one (`tools.stages.keeps_every_line`),
  every code path tested here runs unchanged in the next stage's run, which has all of these
  tests; so only the tests marked ``per_stage`` (the stage's own demo, version, docstring)
  run here. A stage whose successor changes or drops a line is tested in full.
* Fixtures ``stage`` (a `tools.stages.Stage`) and ``stage_path`` describe the target.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = ROOT / "tests"
META_DIR = TESTS_DIR / "meta"

if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # for `tools`; appended so it never shadows the stage's miniray

# The SSH hosts and the leftover-process tag, for tests/cluster and tests/run alike: one
# definition, so one sshd (and one set of namespaces) serves the whole session.
from ssh_fixtures import ns_hosts, ssh_hosts, tag, use_ssh_config  # noqa: E402, F401

from tools.stages import (  # noqa: E402
    Stage,
    StageError,
    find_stage,
    keeps_every_line,
    list_stages,
    plan_files,
    tracked_files,
)

TARGET_KEY = pytest.StashKey[Stage]()
UNKNOWN_KEY = pytest.StashKey[set[str]]()  # capabilities named by `needs` that no stage has
HEAVY_KEY = pytest.StashKey[int]()  # how many heavy tests --skip-heavy-repeats left out
KEPT_KEY = pytest.StashKey[int]()  # how many tests --skip-kept-repeats left to the next stage
EXERCISE_MARKER_RE = re.compile(r"\bex\d{2}_\d+\b")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stage",
        default=None,
        metavar="SPEC",
        help="test this stage (1, 01_local_worker, stages/01_local_worker or a workspace "
        "directory) instead of the top-level miniray package",
    )
    parser.addoption(
        "--exercise-tests-json",
        default=None,
        metavar="PATH",
        help="write how many selected tests carry each exercise marker to PATH (JSON), "
        "for tools.exercises: one collection serves every exercise of a stage",
    )
    parser.addoption(
        "--skip-kept-repeats",
        action="store_true",
        help="with --stage of a stage before the final one: if the next stage keeps every "
        "line of this one, run only the tests marked per_stage (the next stage runs the rest)",
    )
    parser.addoption(
        "--skip-heavy-repeats",
        action="store_true",
        help="with --stage of a stage before the final one: leave out the tests marked heavy "
        "(the final stage's run has them)",
    )
    parser.addoption(
        "--skip-final-stage-repeats",
        action="store_true",
        help="without --stage: if miniray/ is a byte copy of the final stage's package, run "
        "only tests/meta and the tests marked library (the final stage's run covers the rest)",
    )


def pytest_configure(config: pytest.Config) -> None:
    try:
        stages = list_stages(ROOT)
        spec = config.getoption("stage")
        target = find_stage(spec, ROOT) if spec else top_level_target(stages)
    except StageError as error:
        raise pytest.UsageError(str(error)) from None
    put_first_on_path(target.path)
    check_miniray_resolves_to(target.path)
    config.stash[TARGET_KEY] = target
    for exercise in {e.marker: e for s in [*stages, target] for e in s.exercises}.values():
        config.addinivalue_line(
            "markers", f"{exercise.marker}: tests of exercise {exercise.id}, {exercise.title}"
        )


def pytest_report_header(config: pytest.Config) -> str:
    target = config.stash[TARGET_KEY]
    capabilities = ", ".join(sorted(target.capabilities)) or "none"
    return (
        f"miniray under test: {target.path / 'miniray'} "
        f"({target.name}: {target.title}; capabilities: {capabilities})"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    target = config.stash[TARGET_KEY]
    config.stash[UNKNOWN_KEY] = set()
    stages = list_stages(ROOT)
    known = {c for s in stages for c in s.capabilities} | target.capabilities
    stage_run = config.getoption("stage") is not None
    repeats = not stage_run and config.getoption("skip_final_stage_repeats") and is_final_copy()
    heavy_later = (
        stage_run and config.getoption("skip_heavy_repeats") and target.name != stages[-1].name
    )
    heavy_left = kept_left = 0
    kept_later = stage_run and config.getoption("skip_kept_repeats") and next_keeps_all(target)
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        needed = needed_capabilities(item)
        config.stash[UNKNOWN_KEY].update(needed - known)
        is_meta = item.path.is_relative_to(META_DIR)
        repeated = repeats and not is_meta and item.get_closest_marker("library") is None
        wrong_place = (stage_run and is_meta) or not needed <= target.capabilities
        if heavy_later and not wrong_place and item.get_closest_marker("heavy") is not None:
            repeated = True
            heavy_left += 1
        elif kept_later and not wrong_place and item.get_closest_marker("per_stage") is None:
            repeated = True
            kept_left += 1
        (drop if wrong_place or repeated else keep).append(item)
    config.stash[HEAVY_KEY] = heavy_left
    config.stash[KEPT_KEY] = kept_left
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    report = config.getoption("exercise_tests_json")
    if report:
        markers = (m.name for item in items for m in item.iter_markers())
        counts = collections.Counter(m for m in markers if EXERCISE_MARKER_RE.fullmatch(m))
        Path(report).write_text(json.dumps(counts), encoding="utf-8")


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    unknown = config.stash.get(UNKNOWN_KEY, set())
    if unknown:
        terminalreporter.write_line(
            f"warning: tests need capabilities that no stage provides: {sorted(unknown)} "
            "(a typo in @pytest.mark.needs, or a stage.toml not written yet)",
            yellow=True,
        )
    heavy = config.stash.get(HEAVY_KEY, 0)
    if heavy:
        terminalreporter.write_line(
            f"left {heavy} heavy tests to the final stage's run "
            "(without --skip-heavy-repeats they run here)"
        )
    kept = config.stash.get(KEPT_KEY, 0)
    if kept:
        terminalreporter.write_line(
            f"left {kept} tests to the next stage's run, which keeps every line of this "
            "stage's code (without --skip-kept-repeats they run here)"
        )
    markexpr = config.getoption("markexpr") or ""
    markers = EXERCISE_MARKER_RE.findall(markexpr)
    if markers and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        target = config.stash[TARGET_KEY]
        terminalreporter.write_line(
            f"error: no test marked {' or '.join(markers)} runs against {target.name}: "
            "an exercise without tests checks nothing",
            red=True,
        )


@pytest.fixture(scope="session")
def stage(pytestconfig: pytest.Config) -> Stage:
    """The stage under test (for the top-level package: the final stage, path = repo root)."""
    return pytestconfig.stash[TARGET_KEY]


@pytest.fixture(scope="session")
def stage_path(stage: Stage) -> Path:
    """The folder whose ``miniray/`` is under test."""
    return stage.path


def top_level_target(stages: list[Stage]) -> Stage:
    """The top-level ``miniray/`` package, described by the final stage's metadata."""
    if not stages:
        return Stage(0, "miniray", ROOT, "the miniray library", frozenset())
    final = stages[-1]
    return dataclasses.replace(
        final, name="miniray", path=ROOT, title=f"the miniray library (= {final.name})", new=()
    )


def next_keeps_all(target: Stage) -> bool:
    """Whether a stage after ``target`` exists and keeps every line of its package."""
    stages = list_stages(ROOT)
    later = [s for s in stages if s.number == target.number + 1]
    return (
        bool(later)
        and target.path in {s.path for s in stages}
        and keeps_every_line(target, later[0])
    )


def is_final_copy() -> bool:
    """Whether the final stage's package is what the top-level ``miniray/`` generates for it:
    the same code, so that its contract tests would only run again."""
    stages = list_stages(ROOT)
    if not stages:
        return False
    folder = f"stages/{stages[-1].name}/"
    try:
        planned = plan_files(ROOT)
    except StageError:
        return False
    expected = {p: g.content for p, g in planned.items() if p.startswith(folder + "miniray/")}
    actual = tracked_files(stages[-1].path)
    return expected == {folder + p: b for p, b in actual.items() if p.startswith("miniray/")}


def put_first_on_path(folder: Path) -> None:
    """Make ``import miniray`` find ``folder/miniray``, here and in subprocesses."""
    sys.path.insert(0, str(folder))
    extra = [str(folder), str(TESTS_DIR)]  # tests/ too, so subprocesses import `workfns`
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([*extra, *([old] if old else [])])


def check_miniray_resolves_to(folder: Path) -> None:
    """Fail early if ``import miniray`` would load some other copy (say, an installed one)."""
    if "miniray" in sys.modules:
        loaded = sys.modules["miniray"].__file__ or "?"
        raise pytest.UsageError(f"miniray was imported before the stage was chosen: {loaded}")
    spec = importlib.util.find_spec("miniray")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if str(folder / "miniray") not in locations:
        raise pytest.UsageError(
            f"import miniray would not load {folder / 'miniray'} (found: {locations or 'none'})"
        )


def needed_capabilities(item: pytest.Item) -> set[str]:
    """The union of the capabilities named by the item's ``needs`` markers."""
    needed: set[str] = set()
    for marker in item.iter_markers("needs"):
        if not marker.args or not all(isinstance(a, str) for a in marker.args):
            raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.needs('cap', ...)")
        needed.update(marker.args)
    return needed
