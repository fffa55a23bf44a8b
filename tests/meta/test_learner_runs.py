"""A learner's runs, as the pages and the Makefile give them (``tools.exercises``).

A hang fails within seconds and names the exercise function that did not return, and a test
thread stuck in one never keeps the run from ending; the output names the learner's files,
not the temporary overlay the tests run on; a workspace that does not import says so in one
line, first; ``make exercise ARGS=...`` reaches pytest; hints come when asked; and each stage
page's last section, the demo (and for stage 4 the training example) on the learner's own
workspace, runs as written.  The Makefile runs with a stand-in ``.venv`` (``VENV=``) whose
python is this one, so that nothing is installed.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.exercises import make_workspace, overlay_workspace
from tools.stages import REPO_ROOT, Stage, find_stage, list_stages
from tools.stubs import find_definition, function_source, replace_definition

STAGES = list_stages()
PAGES = REPO_ROOT / "docs" / "stages"


def exercises_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.exercises", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write(workspace: Path, stage: Stage, exercise_id: str, body: str) -> None:
    """Give exercise ``exercise_id`` in ``workspace`` this body (after its signature)."""
    exercise = stage.exercise(exercise_id)
    path = workspace / exercise.file
    source = function_source(path.read_text(), exercise.qualname)
    first_statement = find_definition(ast.parse(source), exercise.qualname).body[0].lineno
    signature = "".join(source.splitlines(keepends=True)[: first_statement - 1])
    path.write_text(replace_definition(path.read_text(), exercise.qualname, signature + body))


def say_when_called(workspace: Path, stage: Stage, exercise_id: str) -> None:
    """Make exercise ``exercise_id``'s function in ``workspace`` print its name when called."""
    exercise = stage.exercise(exercise_id)
    path = workspace / exercise.file
    source = function_source(path.read_text(), exercise.qualname)
    body = find_definition(ast.parse(source), exercise.qualname).body
    lines = source.splitlines(keepends=True)
    after = body[0].end_lineno or body[0].lineno  # the docstring
    mark = f'    print("the learner\'s {exercise.qualname}", flush=True)\n'
    marked = "".join([*lines[:after], mark, *lines[after:]])
    path.write_text(replace_definition(path.read_text(), exercise.qualname, marked))


def line_of(path: Path, text: str) -> int:
    """The number of the line of ``path`` that holds ``text``."""
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if text in line)


# A read_ready_line without a deadline (it blocks in os.read), and a lease that waits for ever
# at end-of-file: written by a learner, in a stage 3 workspace whose other exercises are stubs.
NO_DEADLINE = """\
    buffer = b""
    while True:
        line, newline, rest = buffer.partition(b"\\n")
        if newline and line.startswith(READY_PREFIX):
            return json.loads(line[len(READY_PREFIX) :]), rest
        if newline:
            buffer = rest
            continue
        chunk = os.read(fd, 4096)  # no deadline
        if not chunk:
            raise EOFError("the stream ended before the ready line")
        buffer += chunk
"""
LEASE_FOR_EVER = """\
    pending = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            threading.Event().wait()  # end-of-file: waits for ever
        *lines, pending = (pending + chunk).split(b"\\n")
        for line in lines:
            if line.strip() == b"interrupt":
                on_interrupt()
"""


@pytest.fixture(scope="module")
def hanging(tmp_path_factory: pytest.TempPathFactory) -> Path:
    stage = find_stage("3")
    workspace = make_workspace(stage, tmp_path_factory.mktemp("learner") / stage.name)
    write(workspace, stage, "3.2", NO_DEADLINE)
    write(workspace, stage, "3.3", LEASE_FOR_EVER)
    return workspace


# --- 3. hangs fail in seconds and say where ---------------------------------------------------


def test_a_hang_fails_in_seconds_naming_the_function_at_the_learners_line(hanging: Path) -> None:
    started = time.monotonic()
    done = exercises_cli("test", "3.2", "--workspace", str(hanging), "--", "-x")  # one hang
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    launch = hanging / "miniray" / "launch.py"
    where = f"{launch}:{line_of(launch, 'os.read(fd, 4096)  # no deadline')}"
    assert (
        "Timeout: read_ready_line (exercise 3.2) did not return within 10 s (in the test); "
        f"it was at {where}: chunk = os.read(fd, 4096)  # no deadline"
    ) in done.stdout
    assert elapsed < 30, f"{elapsed:.0f} s: the hang was not cut at 10 s"
    # 3.1 (above it in launch.py) was filled in for the run: the line is still the learner's
    assert "3.1 (remote_command)" in done.stdout
    assert "miniray-overlay-" not in done.stdout, "a path into the temporary overlay"


def test_a_thread_stuck_in_an_exercise_is_named_and_does_not_hold_the_run(hanging: Path) -> None:
    done = exercises_cli("test", "3.3", "--workspace", str(hanging))
    assert done.returncode == 1, done.stdout + done.stderr
    server = hanging / "miniray" / "cluster_server.py"
    where = f"{server}:{line_of(server, 'threading.Event().wait()  # end-of-file')}"
    assert "follow_lease (exercise 3.3) has not returned: thread " in done.stdout
    assert f"is still at {where}" in done.stdout
    assert "miniray-overlay-" not in done.stdout


THREAD_STAGE = """\
title = "Threads"
capabilities = ["local"]

[[exercises]]
id = "1.1"
target = "miniray/mod.py:forever"
title = "Never return"
hint = "Wait."
"""
THREAD_TESTS = """\
import threading

from miniray.mod import forever


def test_it_starts_a_thread_that_never_ends() -> None:
    threading.Thread(target=forever).start()  # not a daemon: Python would wait for it
"""


def test_a_non_daemon_test_thread_never_keeps_the_run_from_ending(tmp_path: Path) -> None:
    stage = tmp_path / "01_threads"
    (stage / "miniray").mkdir(parents=True)
    (stage / "stage.toml").write_text(THREAD_STAGE)
    (stage / "miniray" / "__init__.py").write_text("")
    (stage / "miniray" / "mod.py").write_text(
        "import threading\n\n\ndef forever() -> None:\n    threading.Event().wait()\n"
    )
    (tmp_path / "test_threads.py").write_text(THREAD_TESTS)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "tools.exercise_plugin",
        "-p",
        "no:cacheprovider",
    ]
    command += ["--exercise-stage", str(stage), "test_threads.py"]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(stage), str(REPO_ROOT)])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr  # the test passed; the run ended
    assert "the run ends without waiting for 1 test thread(s) that did not end:" in done.stdout
    assert f"in forever (exercise 1.1) at {stage / 'miniray' / 'mod.py'}:5" in done.stdout


def test_stage_4_warns_of_the_buffered_reports_before_exercise_4_4() -> None:
    statement = find_stage("4").exercise("4.4").statement
    assert "buffer" in statement and "`wait_fds()` cannot see it" in statement
    page = (PAGES / "04_distributed.md").read_text()
    trap = page.index("One trap waits here.")
    assert trap < page.index('preflight.py:await_phase"')  # before the exercise box
    assert "wait_fds()` never wakes" in page[trap:]


# --- 4. failures point at the learner's files --------------------------------------------------


def test_a_line_of_a_filled_in_function_is_named_in_the_stage_and_others_in_the_workspace(
    tmp_path: Path,
) -> None:
    from tools.exercise_output import OverlayPaths

    stage = find_stage("3")
    workspace = make_workspace(stage, tmp_path / stage.name)
    overlay, filled = overlay_workspace(stage, workspace, tmp_path / "tmpx" / stage.name, "3.2")
    paths = OverlayPaths(stage, workspace, overlay, filled)
    copy, solution, mine = (
        root / "miniray" / "launch.py" for root in (overlay, stage.path, workspace)
    )
    inside = line_of(copy, 'return f"cd {shlex.quote(cwd)} && exec "')  # filled-in 3.1
    after = line_of(copy, 'raise NotImplementedError("Exercise 3.2')  # the learner's stub
    assert paths.place("miniray/launch.py", inside) == (
        stage.path / "miniray" / "launch.py",
        line_of(solution, 'return f"cd {shlex.quote(cwd)} && exec "'),
    )
    assert paths.place("miniray/launch.py", after) == (
        workspace / "miniray" / "launch.py",
        line_of(mine, 'raise NotImplementedError("Exercise 3.2'),
    )
    line = paths.place("miniray/launch.py", after)[1]
    traceback = f'  File "{copy}", line {after}, in read_ready_line\n{copy}:{after}: Failed\n'
    assert paths.rewrite(traceback) == (
        f'  File "{mine}", line {line}, in read_ready_line\n{mine}:{line}: Failed\n'
    )


def test_a_workspace_that_does_not_import_says_so_first_in_one_line(tmp_path: Path) -> None:
    stage = find_stage("3")
    workspace = make_workspace(stage, tmp_path / stage.name)
    ranks = workspace / "miniray" / "ranks.py"
    stub = 'raise NotImplementedError("Exercise 3.4: '
    text = ranks.read_text()
    stub_line = next(line for line in text.splitlines() if stub in line)
    ranks.write_text(text.replace(stub_line, "    return ranks +"))  # a syntax error
    expected = (
        f"your workspace does not import: SyntaxError at {ranks}:"
        f"{line_of(ranks, 'return ranks +')} (invalid syntax)"
    )
    done = exercises_cli("test", "3.1", "--workspace", str(workspace))
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == expected, done.stdout
    progress = exercises_cli("progress", "--workspace", str(workspace))
    assert expected in progress.stdout.splitlines()[1], progress.stdout
    for exercise in stage.exercises:
        assert f"{exercise.id}   not yet   (your workspace does not import)" in progress.stdout


def test_a_name_error_at_import_is_named_at_its_line(tmp_path: Path) -> None:
    stage = find_stage("1")
    workspace = make_workspace(stage, tmp_path / stage.name)
    wire = workspace / "miniray" / "wire.py"
    wire.write_text(wire.read_text() + "\nHEADER_SIZE = HEADER.size + UNDEFINED\n")
    done = exercises_cli("test", "1.1", "--workspace", str(workspace))
    first = done.stdout.splitlines()[0]
    assert first == (
        f"your workspace does not import: NameError at {wire}:"
        f"{line_of(wire, 'UNDEFINED')} (name 'UNDEFINED' is not defined)"
    )


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A stand-in for ``.venv``: its python runs this one, and its install stamps are fresh."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    folder = tmp_path / "venv"
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    for stamp in (".stamp-run", ".stamp-dev"):
        (folder / stamp).touch()
    return folder


def make(*args: str, venv: Path, cwd: Path = REPO_ROOT, timeout: float = 120) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", *args, f"VENV={venv}"],
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAKEFLAGS")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_make_exercise_passes_args_to_pytest(tmp_path: Path, venv: Path) -> None:
    stage = find_stage("1")
    workspace = make_workspace(stage, tmp_path / stage.name)
    exercise = stage.exercise("1.4")
    source = function_source((stage.path / exercise.file).read_text(), exercise.qualname)
    path = workspace / exercise.file
    path.write_text(replace_definition(path.read_text(), exercise.qualname, source))
    out = make("exercise", "EX=1.4", f"WORKSPACE={workspace}", "ARGS=-v -rA", venv=venv)
    assert re.search(r"::test_\w+ PASSED", out), out  # -v: one line per test
    assert "PASSED tests/" in out  # -rA: the summary lists the passed tests too


# --- 5. hints when asked -----------------------------------------------------------------------


def test_hints_come_only_when_asked(tmp_path: Path, venv: Path) -> None:
    stage = find_stage("3")
    made = exercises_cli("workspace", "3", "--dest", str(tmp_path / "ws"))
    assert made.returncode == 0, made.stderr
    for exercise in stage.exercises:
        assert exercise.hint not in made.stdout and exercise.id in made.stdout
    assert "make hint EX=3.1" in made.stdout
    out = make("hint", "EX=3.4", venv=venv)
    hint = " ".join(stage.exercise("3.4").hint.split())
    assert hint in " ".join(out.split()), out
    assert stage.exercise("3.4").statement.split()[0] in out


def test_every_exercise_has_a_statement_apart_from_its_hint() -> None:
    for stage in STAGES:
        for exercise in stage.exercises:
            assert exercise.statement.strip(), f"exercise {exercise.id} has no statement"
            assert exercise.hint not in exercise.statement


# --- 6. run it with your code -------------------------------------------------------------------


def last_section(stage: Stage) -> tuple[list[str], list[str]]:
    """The commands of the page's last section (its ```bash blocks) and its text blocks."""
    page = (PAGES / f"{stage.name}.md").read_text()
    heading = page.rindex("\n## ")
    section = page[heading:]
    assert section.startswith("\n## Run it with your code\n"), f"{stage.name}: {section[:60]!r}"
    commands = [
        line.split("  #")[0].strip()
        for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
        for line in block.splitlines()
        if line.strip()
    ]
    return commands, re.findall(r"```text\n(.*?)```", section, re.DOTALL)


def demo_output_on_the_page(stage: Stage) -> str:
    """The first ```text block of the page's "Run it" section: the demo's output."""
    page = (PAGES / f"{stage.name}.md").read_text()
    run_it = page[page.index("\n## Run it\n") :]
    return re.findall(r"```text\n(.*?)```", run_it, re.DOTALL)[0]


def shape(text: str) -> set[str]:
    """The lines of ``text`` with what varies from run to run (numbers, hosts, folders) out."""
    text = re.sub(r"port \d+ on \S+", "port N on HOST", text)
    text = re.sub(r"from \S*/workspace/", "from .../workspace/", text)
    return {re.sub(r"\d+", "N", line) for line in text.splitlines() if line.strip()}


def complete_workspace(stage: Stage, root: Path) -> Path:
    """A learner's workspace with every exercise written (as the stage has it)."""
    return make_workspace(stage, root / "workspace" / stage.name, [])


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_each_page_ends_with_its_demo_on_the_learners_workspace(
    stage: Stage, tmp_path: Path
) -> None:
    commands, _ = last_section(stage)
    demo = f"python workspace/{stage.name}/demo.py"
    assert commands[0] == demo
    complete_workspace(stage, tmp_path)
    done = subprocess.run(
        [sys.executable, *shlex.split(demo)[1:]],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert shape(done.stdout) <= shape(demo_output_on_the_page(stage)), done.stdout


needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed"
)


@needs_torch
@pytest.mark.timeout(400)
def test_stage_4_page_trains_the_example_with_the_learners_code(tmp_path: Path, venv: Path) -> None:
    stage = find_stage("4")
    commands, texts = last_section(stage)
    assert commands[1] == "make train WORKSPACE=1"
    workspace = complete_workspace(stage, tmp_path)
    for exercise_id in ("4.3", "4.4"):  # the learner's own: they say so when they run
        say_when_called(workspace, stage, exercise_id)
    for name in ("Makefile", "examples", "pyproject.toml", "miniray"):  # make's view of the repo
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    target = shlex.split(commands[1])[1:]  # make train WORKSPACE=1
    out = make(*target, "ARGS=--steps 2", venv=venv, cwd=tmp_path, timeout=360)
    assert "the learner's train_step" in out and "the learner's await_phase" in out
    expected = shape(texts[0])
    shown = {line for line in shape(out) if line.startswith(("miniray", "N ranks", "step"))}
    assert shown and shown <= expected, out
    assert f"from {workspace / 'miniray'}" in out
