"""The fork server that runs the exercise check's many short pytest runs: each run's exit
code and output are its own, a run past its timeout is killed with everything it started,
runs from several threads at once get their own answers, and closing it ends it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from testutil import process_exists

from tools.pytest_forks import ForkServer

TESTS = """\
import os, subprocess, sys, time

def test_passes():
    print("passing output")

def test_fails():
    assert 1 + 1 == 3, "arithmetic"

def test_hangs_with_a_child(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["CHILD_PID_FILE"], "w") as f:
        f.write(str(child.pid))
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    with ForkServer() as forks:
        yield forks


def run(
    server: ForkServer, folder: Path, name: str, timeout: float = 60.0
) -> tuple[int | None, str]:
    (folder / "test_sample.py").write_text(TESTS)
    env = {**os.environ, "CHILD_PID_FILE": str(folder / "child.pid")}
    args = [str(folder / "test_sample.py"), "-k", name, "-p", "no:cacheprovider", "-s"]
    return server.run(args, cwd=folder, env=env, timeout=timeout)


def test_each_run_gives_its_own_exit_code_and_output(server: ForkServer, tmp_path: Path) -> None:
    rc, output = run(server, tmp_path, "test_passes")
    assert rc == 0 and "passing output" in output and "1 passed" in output
    rc, output = run(server, tmp_path, "test_fails")
    assert rc == 1 and "arithmetic" in output and "passing output" not in output


def test_a_run_past_its_timeout_is_killed_with_what_it_started(
    server: ForkServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    rc, _ = run(server, tmp_path, "test_hangs_with_a_child", timeout=3.0)
    assert rc is None and time.monotonic() - started < 20.0
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5.0
    while process_exists(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_exists(child), "the run's own child outlived it"


def test_runs_from_several_threads_get_their_own_answers(
    server: ForkServer, tmp_path: Path
) -> None:
    names = ["test_passes", "test_fails"] * 3
    folders = [tmp_path / str(i) for i in range(len(names))]
    for folder in folders:
        folder.mkdir()
    with ThreadPoolExecutor(max_workers=3) as pool:
        codes = list(pool.map(lambda a: run(server, *a)[0], zip(folders, names, strict=True)))
    assert codes == [0, 1] * 3


def test_closing_the_client_ends_the_server() -> None:
    forks = ForkServer()
    pid = forks.pid
    forks.close()
    assert not process_exists(pid)
