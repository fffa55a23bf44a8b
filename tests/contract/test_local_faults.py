"""The corners of a local Worker's process life: reused pids, grandchildren, leaked
descriptors, SIGCHLD ignored, a work function that closed its own stdio, bad timeouts.

Each test was written against a failure seen in the wild (issue 7 of the project's tracker);
they run against every stage that has local workers.
"""

from __future__ import annotations

import gc
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import adapters
import pytest
import workfns
from testutil import process_exists, run_parent, wait_until_gone

from miniray import ProtocolError, RemoteError, Worker, WorkerDied, wait_any

pytestmark = pytest.mark.needs("local")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- the finalizer and reused pids ---------------------------------------------------------

PID_REUSE_SCRIPT = """
import gc, os, time
from miniray import Worker

def leave(handle):
    pass

worker = Worker(leave)
reaped_pid = worker.pid
worker.wait(timeout=10)  # the child is reaped: its pid is free for the next process
with open("/proc/sys/kernel/ns_last_pid", "w") as f:
    f.write(str(reaped_pid - 1))  # (our own pid namespace: only we are affected)
victim = os.fork()
if victim == 0:
    time.sleep(30)
    os._exit(0)
assert victim == reaped_pid, (victim, reaped_pid)
del worker
gc.collect()  # the dropped Worker's finalizer runs now
time.sleep(0.2)
try:
    pid, status = os.waitpid(victim, os.WNOHANG)
    print("victim alive" if pid == 0 else f"victim ended: {status}", flush=True)
    os.kill(victim, 9)
except ChildProcessError:
    print("the victim was reaped by someone else", flush=True)
"""


def test_a_dropped_worker_never_kills_a_process_that_reused_its_pid(tmp_path: Any) -> None:
    unshare = shutil.which("unshare")
    probe = subprocess.run(
        [unshare or "unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True
    )
    if unshare is None or probe.returncode != 0:
        pytest.skip(f"needs a private pid namespace to reuse a pid on purpose: {probe.stderr!r}")
    script = tmp_path / "reuse.py"
    script.write_text(PID_REUSE_SCRIPT)
    done = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "victim alive"


# --- grandchildren ---------------------------------------------------------------------------


def start_grandchildren(handle: Any) -> None:
    """Start a `sleep` subprocess and a forked daemon, report their pids, then wait."""
    sleeper = subprocess.Popen(["sleep", "60"])
    daemon = os.fork()
    if daemon == 0:
        time.sleep(60)
        os._exit(0)
    handle.send([sleeper.pid, daemon])
    handle.recv()  # returns (ChannelClosed) when the parent closes: a normal end


@pytest.mark.parametrize("how", ["close", "drop", "kill"])
def test_no_grandchild_outlives_the_worker(how: str) -> None:
    worker = Worker(start_grandchildren)
    grandchildren = worker.recv(timeout=10)
    assert all(process_exists(p) for p in grandchildren)
    if how == "close":  # the worker ends by itself on EOF; its helpers must end with it
        worker.close(timeout=5)
    elif how == "drop":
        del worker
        gc.collect()
    else:
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(WorkerDied):
            worker.recv(timeout=5)
        worker.close()
    assert wait_until_gone(grandchildren) == []


def test_a_parent_that_exits_without_close_leaves_no_grandchild() -> None:
    parent = run_parent(
        """
        import os, subprocess
        def start_sleeper(handle):
            handle.send(subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL).pid)
            handle.recv()
        worker = Worker(start_sleeper)  # never closed: the exit-time finalizer must do it
        print(worker.recv(timeout=10), flush=True)
        """
    )
    out, _ = parent.communicate(timeout=30)
    assert parent.returncode == 0
    assert wait_until_gone([int(out)]) == []


# --- descriptors -----------------------------------------------------------------------------


def test_dropped_workers_leak_no_descriptors() -> None:
    gc.collect()
    before = open_fds()
    for _ in range(20):  # one descriptor left behind by each would show as 20
        Worker(workfns.echo)  # dropped at once, never closed
    gc.collect()
    assert open_fds() <= before


def test_a_waited_for_worker_dropped_later_leaks_no_descriptors() -> None:
    gc.collect()
    before = open_fds()
    for _ in range(20):
        worker = Worker(workfns.echo_n)
        worker.send(0)
        assert worker.wait(timeout=10) == 0
    del worker
    gc.collect()
    assert open_fds() <= before


# --- SIGCHLD ignored -------------------------------------------------------------------------


@pytest.fixture
def sigchld_ignored() -> Iterator[None]:
    """The kernel reaps our children itself, as in a parent that set SIGCHLD to SIG_IGN."""
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, old)


@pytest.mark.usefixtures("sigchld_ignored")
def test_sigchld_ignored_a_reported_exit_code_still_arrives() -> None:
    before = open_fds()
    worker = Worker(workfns.exit_with)
    worker.send({"code": 3, "hard": False})
    deadline = time.monotonic() + 5
    while worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.is_alive()
    assert worker.wait(timeout=5) == 3  # from the worker's EXIT frame: the kernel kept nothing
    worker.close()
    assert open_fds() <= before


@pytest.mark.usefixtures("sigchld_ignored")
def test_sigchld_ignored_a_killed_worker_is_worker_died_with_no_code() -> None:
    before = open_fds()
    worker = Worker(workfns.sleep_forever)
    pid = worker.recv(timeout=5)["pid"]
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerDied) as caught:
        worker.wait(timeout=5)
    assert caught.value.returncode is None
    assert "unknown" in str(caught.value)
    worker.close()
    assert open_fds() <= before


@pytest.mark.usefixtures("sigchld_ignored")
def test_sigchld_ignored_close_stops_a_running_worker() -> None:
    before = open_fds()
    worker = Worker(workfns.sleep_forever)
    pid = worker.recv(timeout=5)["pid"]
    worker.close(timeout=0.2)
    assert not process_exists(pid)
    assert open_fds() <= before


# --- reports that must not get lost ----------------------------------------------------------


# The child's sys.stderr must be the real descriptor 2 (under pytest it is a capture file),
# so these run in a parent program of their own.
STDIO_CLOSER = """
import os
while (spare := os.open(os.devnull, os.O_RDWR)) <= 2:
    pass  # 0-2 may be closed in the test runner: keep the worker's socket off them
os.close(spare)
def close_stdio_then(handle):
    how = handle.recv()
    for fd in (0, 1, 2):
        os.close(fd)
    if how == "raise":
        raise ValueError("stdio is gone")
    raise SystemExit("leaving without stdio")
worker = Worker(close_stdio_then)
worker.send(HOW)
for call in (worker.recv, worker.wait):
    try:
        call(timeout=5)
    except Exception as e:
        print(type(e).__name__, "|", e, flush=True)
print("returncode", worker.returncode, flush=True)
"""


def test_a_worker_without_stdio_still_reports_its_error_and_exit() -> None:
    parent = run_parent(STDIO_CLOSER.replace("HOW", repr("raise")))
    out, _ = parent.communicate(timeout=30)
    recv_line, wait_line, code_line = out.splitlines()
    assert recv_line.startswith("RemoteError | ValueError: stdio is gone")
    assert wait_line.startswith("RemoteError | ValueError: stdio is gone")
    assert code_line == "returncode 1"


def test_a_worker_without_stdio_still_reports_its_exit_message() -> None:
    parent = run_parent(STDIO_CLOSER.replace("HOW", repr("exit")))
    out, _ = parent.communicate(timeout=30)
    recv_line, code_line = out.splitlines()  # wait() returns the code: no line
    assert recv_line.startswith("WorkerDied |") and "leaving without stdio" in recv_line
    assert code_line == "returncode 1"


def test_sys_exit_with_a_message_reaches_the_caller_and_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with Worker(workfns.exit_with) as worker:
        worker.send({"code": "out of data", "hard": False})
        assert worker.recv(timeout=5) == "bye"
        with pytest.raises(WorkerDied, match="out of data") as caught:
            worker.recv(timeout=5)
        assert caught.value.returncode == 1
        assert worker.wait(timeout=5) == 1
    assert "out of data" in capfd.readouterr().err  # as Python itself prints it


def test_a_caught_remote_error_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    with Worker(workfns.fail) as worker:
        worker.recv(timeout=5)
        worker.send("handled by the caller")
        with pytest.raises(RemoteError) as caught:
            worker.recv(timeout=5)
    assert "Traceback" not in str(caught.value)
    assert "raise ValueError(handle.recv())" in caught.value.remote_traceback
    assert capfd.readouterr().err == ""


def test_an_uncaught_remote_error_shows_the_remote_traceback_once_as_its_cause() -> None:
    parent = run_parent(
        """
        worker = Worker(workfns.fail)
        worker.recv(timeout=5)
        worker.send("nobody catches this")
        worker.recv(timeout=5)
        """,
        stderr=subprocess.PIPE,
    )
    _, err = parent.communicate(timeout=30)
    assert parent.returncode == 1
    assert err.count("raise ValueError(handle.recv())") == 1, err
    assert "direct cause of the following exception" in err
    assert err.rstrip().splitlines()[-1].startswith("miniray.errors.RemoteError: ValueError")


# --- frames a worker's handle never carries, and malformed reports ------------------------


def test_an_error_frame_sent_to_a_worker_is_a_protocol_error_there() -> None:
    report = b'{"type":"X","message":"m","traceback":"t","pid":1,"host":"h"}'
    with Worker(workfns.echo) as worker:
        adapters.raw_socket(worker._channel).sendall(adapters.frame(report, kind=1))
        with pytest.raises(RemoteError) as caught:
            worker.recv(timeout=5)
        assert caught.value.remote_type == "ProtocolError"


def test_an_exit_frame_sent_to_a_worker_is_a_protocol_error_there() -> None:
    with Worker(workfns.echo) as worker:
        adapters.raw_socket(worker._channel).sendall(adapters.frame(b'{"code":0}', kind=2))
        with pytest.raises(RemoteError) as caught:
            worker.recv(timeout=5)
        assert caught.value.remote_type == "ProtocolError"


# --- timeouts ----------------------------------------------------------------------------


@pytest.mark.parametrize("forever", [math.inf, 1e10])
def test_an_infinite_or_huge_timeout_means_no_limit(forever: float) -> None:
    worker = Worker(workfns.echo_n)
    worker.send(1)
    worker.send("x", timeout=forever)
    assert wait_any([worker], timeout=forever) == [worker]
    assert worker.recv(timeout=forever) == "x"
    assert worker.wait(timeout=forever) == 0
    worker.close(timeout=forever)


@pytest.mark.parametrize("bad", [math.nan, -1.0, -math.inf])
def test_a_nan_or_negative_timeout_is_a_value_error_at_the_call(bad: float) -> None:
    with Worker(workfns.echo) as worker:
        for call in (
            lambda: worker.send("x", timeout=bad),
            lambda: worker.recv(timeout=bad),
            lambda: worker.wait(timeout=bad),
            lambda: wait_any([worker], timeout=bad),
            lambda: worker.close(timeout=bad),
        ):
            with pytest.raises(ValueError, match="timeout"):
                call()
        assert worker.is_alive()  # nothing happened: not even close()
        worker.send("still usable")
        assert worker.recv(timeout=5) == "still usable"


def test_recv_timeout_says_how_long_and_which_worker() -> None:
    with Worker(workfns.echo) as worker:
        expected = rf"^no message from worker pid {worker.pid} within 0.1 s$"
        with pytest.raises(TimeoutError, match=expected):
            worker.recv(timeout=0.1)


def test_a_malformed_report_is_a_protocol_error_and_wait_still_gets_the_code() -> None:
    def bad_report(handle: Any) -> None:
        bad = b'{"type":"X","message":"m","traceback":"t","pid":Infinity,"host":"h"}'
        adapters.raw_socket(handle).sendall(adapters.frame(bad, kind=1))
        sys.exit(5)

    with Worker(bad_report) as worker:
        for _ in range(2):
            with pytest.raises(ProtocolError, match="malformed"):
                worker.recv(timeout=5)
        assert worker.wait(timeout=5) == 5  # the kernel's word, whatever the report said
