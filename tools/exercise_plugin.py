"""A pytest plugin for a learner's exercise run: a hang fails in seconds and says which
exercise function did not return, and a test thread stuck in one never keeps the run from
ending.  `tools.exercise_runs` loads it (``-p tools.exercise_plugin``) with
``--exercise-stage DIR`` (the folder whose ``miniray/`` is tested, with its ``stage.toml``)
and a short ``--timeout``; ``make test`` does not.

* A test that runs past its ``--timeout`` (pytest-timeout, signal method) fails with
  ``Timeout: take_frame (exercise 1.1) did not return within 10 s; it was at FILE:LINE``:
  the innermost frame of one of the stage's exercise functions, in the test's own stack or,
  failing that, in another thread.  Where no exercise function is running in this process
  (it may run in a worker the test waits for), the message says so and where the test was.
* A failed test whose thread is still inside an exercise function gets a section saying so.
* At the end, a test thread that is not a daemon and has not ended within a moment is named
  (with the exercise function it is in) and the run exits without waiting for it: Python
  would otherwise wait for it forever after printing the summary.
"""

from __future__ import annotations

import linecache
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import pytest_timeout  # type: ignore[import-untyped]  # no type hints shipped

from tools.stages import Exercise, Stage, StageError, find_stage

STAGE_KEY = pytest.StashKey[Stage]()
STATUS_KEY = pytest.StashKey[int]()
BEFORE_KEY = pytest.StashKey[set[int | None]]()  # the threads there were before a test
THREAD_GRACE = 2.0  # seconds a leftover test thread gets to end before the run leaves it


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--exercise-stage",
        default=None,
        metavar="DIR",
        help="the stage folder (with stage.toml) whose exercise functions a timeout names",
    )


def pytest_configure(config: pytest.Config) -> None:
    folder = config.getoption("exercise_stage")
    if folder is None:
        return
    try:
        config.stash[STAGE_KEY] = find_stage(str(folder))
    except StageError as error:
        raise pytest.UsageError(f"--exercise-stage: {error}") from None


# --- timeouts that name the exercise function ----------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """pytest-timeout's signal method, with a message that says where the test was stuck.

    Returns None (pytest-timeout sets its own timer) for the thread method or outside the
    main thread, where a signal cannot be used."""
    stage = item.config.stash.get(STAGE_KEY, None)
    if stage is None or settings.method != "signal":
        return None
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_timeout(signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True
        if not settings.disable_debugger_detection and pytest_timeout.is_debugging():
            return  # as pytest-timeout does: a learner in pdb is not a hang
        pytest.fail(timeout_message(stage, settings.timeout, frame))

    def cancel() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel  # type: ignore[attr-defined]  # what pytest-timeout calls
    signal.signal(signal.SIGALRM, on_timeout)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True


def timeout_message(stage: Stage, seconds: float, frame: FrameType | None) -> str:
    """What a test stopped after ``seconds`` was doing: the exercise function it was in."""
    limit = f"within {seconds:g} s"
    found = exercise_frame(stage, frame)
    where = "in the test"
    if found is None:
        for thread, top in other_threads():
            found = exercise_frame(stage, top)
            if found is not None:
                where = f"in thread {thread.name}"
                break
    if found is not None:
        exercise, inner = found
        return (
            f"Timeout: {exercise.qualname} (exercise {exercise.id}) did not return {limit} "
            f"({where}); it was at {location(inner)}"
        )
    test = innermost(frame, lambda f: Path(f.f_code.co_filename).name.startswith("test_"))
    at = f"; the test was at {location(test)}" if test is not None else ""
    return (
        f"Timeout: the test did not end {limit}, and no exercise function of "
        f"{stage.name} was running in the test's process (a worker it waits for may be "
        f"running one){at}"
    )


# --- failed tests and leftover threads --------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Any:
    item.stash[BEFORE_KEY] = {t.ident for t in threading.enumerate()}
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    stage = item.config.stash.get(STAGE_KEY, None)
    if stage is not None and report.failed:
        for line in still_running(stage, item.stash.get(BEFORE_KEY, set())):
            report.sections.append(("exercise function still running", line))
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[STATUS_KEY] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    stage = config.stash.get(STAGE_KEY, None)
    if stage is None:
        return
    deadline = time.monotonic() + THREAD_GRACE
    for thread in leftover_threads():
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = leftover_threads()
    if not stuck:
        return
    lines = [f"the run ends without waiting for {len(stuck)} test thread(s) that did not end:"]
    for thread in stuck:
        found = exercise_frame(stage, sys._current_frames().get(thread.ident or -1))
        what = (
            f"in {found[0].qualname} (exercise {found[0].id}) at {location(found[1])}"
            if found is not None
            else "in no exercise function"
        )
        lines.append(f"  {thread.name}: {what}")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(config.stash.get(STATUS_KEY, 1))  # Python would join the thread: forever


def still_running(stage: Stage, old: set[int | None]) -> list[str]:
    """One line per thread, not among the ``old`` ones, that is inside one of the stage's
    exercise functions."""
    lines = []
    for thread, top in other_threads():
        found = None if thread.ident in old else exercise_frame(stage, top)
        if found is not None:
            exercise, inner = found
            lines.append(
                f"{exercise.qualname} (exercise {exercise.id}) has not returned: thread "
                f"{thread.name} is still at {location(inner)}"
            )
    return lines


def leftover_threads() -> list[threading.Thread]:
    """The threads that would keep the interpreter from exiting."""
    return [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]


# --- frames -------------------------------------------------------------------------------


def other_threads() -> Iterator[tuple[threading.Thread, FrameType]]:
    """Every thread but the current one, with its innermost frame."""
    frames = sys._current_frames()
    for thread in threading.enumerate():
        top = frames.get(thread.ident or -1)
        if thread is not threading.current_thread() and top is not None:
            yield thread, top


def exercise_frame(stage: Stage, frame: FrameType | None) -> tuple[Exercise, FrameType] | None:
    """The innermost frame of ``frame``'s stack that runs one of the stage's exercise
    functions (or a function nested in one), with its exercise."""
    targets = {((stage.path / e.file).resolve(), e.qualname): e for e in stage.exercises}
    files = {path for path, _ in targets}
    while frame is not None:
        code = frame.f_code
        path = Path(code.co_filename).resolve()
        if path in files:
            qualname = code.co_qualname
            for (file, name), exercise in targets.items():
                if file == path and (qualname == name or qualname.startswith(name + ".<locals>.")):
                    return exercise, frame
        frame = frame.f_back
    return None


def innermost(frame: FrameType | None, wanted: Any) -> FrameType | None:
    """The innermost frame of the stack for which ``wanted(frame)`` is true."""
    while frame is not None and not wanted(frame):
        frame = frame.f_back
    return frame


def location(frame: FrameType) -> str:
    """``FILE:LINE `source``` of a frame."""
    file, line = frame.f_code.co_filename, frame.f_lineno
    source = linecache.getline(file, line).strip()
    return f"{file}:{line}" + (f": {source}" if source else "")
