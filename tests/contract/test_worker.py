"""The Worker contract: what every kind of worker promises, whatever carries its bytes.

Each test runs once per transport the stage has (see ``conftest.connect``): a forked
``Worker`` from stage 1 on, a ``RemoteWorker`` over TCP from stage 2 on.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from typing import Any

import pytest
from testutil import process_exists, wait_until_gone

from miniray import RemoteError, Unsendable, WorkerDied, wait_any

Connect = Any


def test_messages_round_trip_in_order(connect: Connect) -> None:
    worker = connect("echo")
    messages = [None, True, 3, 2.5, "ü", [1, [2]], {"a": {"b": None}}]
    for msg in messages:
        worker.send(msg)
    assert [worker.recv(timeout=5) for _ in messages] == messages


def test_a_tuple_arrives_as_a_list(connect: Connect) -> None:
    worker = connect("echo")
    worker.send({"t": (1, 2)})
    assert worker.recv(timeout=5) == {"t": [1, 2]}


def test_a_large_message_round_trips(connect: Connect) -> None:
    from miniray.wire import DEFAULT_MAX_FRAME

    worker = connect("echo")
    big = "x" * (DEFAULT_MAX_FRAME - 2)  # the largest the default allows: JSON adds 2 quotes
    worker.send(big)
    assert worker.recv(timeout=30) == big


def test_an_oversize_send_is_refused_and_the_worker_stays_usable(connect: Connect) -> None:
    worker = connect("echo", max_frame=1000)
    with pytest.raises(Unsendable, match="max_frame"):  # nothing sent: the stream is intact
        worker.send("y" * 2000)
    worker.send("small")
    assert worker.recv(timeout=5) == "small"


@pytest.mark.ex01_2
def test_recv_timeout_raises_and_keeps_the_worker_usable(connect: Connect) -> None:
    worker = connect("echo")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        worker.recv(timeout=0.2)
    assert 0.15 < time.monotonic() - started < 2
    worker.send("after")
    assert worker.recv(timeout=5) == "after"


@pytest.mark.ex01_2
def test_recv_timeout_sees_buffered_messages(connect: Connect) -> None:
    worker = connect("send_burst")
    worker.send(50)
    time.sleep(0.2)  # all 50 land in one read, so 49 sit in our buffer after the first
    assert [worker.recv(timeout=0.5)["i"] for _ in range(50)] == list(range(50))


@pytest.mark.ex01_3
def test_an_exception_travels_with_type_message_traceback_and_pid(connect: Connect) -> None:
    worker = connect("fail")
    assert worker.recv(timeout=5) == "about to fail"
    worker.send("bad input 17")
    with pytest.raises(RemoteError) as caught:
        worker.recv(timeout=5)
    error = caught.value
    assert error.remote_type == "ValueError"
    assert error.remote_message == "bad input 17"
    assert "raise ValueError(handle.recv())" in error.remote_traceback
    assert error.pid == worker.pid
    assert error.host
    with pytest.raises(RemoteError):  # a failed worker keeps saying why
        worker.recv(timeout=5)


@pytest.mark.ex01_3
@pytest.mark.ex02_4
def test_wait_raises_the_remote_error_too(connect: Connect) -> None:
    worker = connect("fail")
    worker.send("from wait")
    with pytest.raises(RemoteError, match="from wait"):
        worker.wait(timeout=10)


@pytest.mark.ex01_3
def test_prints_are_flushed_before_the_exit_report(connect: Connect) -> None:
    worker = connect("print_flush_reported")
    assert worker.recv(timeout=5) == {"flushed": "held back"}
    with pytest.raises(WorkerDied) as caught:
        worker.recv(timeout=5)
    assert caught.value.returncode == 0


@pytest.mark.ex01_3
@pytest.mark.parametrize("hard", [False, True], ids=["sys.exit", "os._exit"])
def test_an_exit_is_reported_after_every_message(connect: Connect, hard: bool) -> None:
    worker = connect("exit_with")
    worker.send({"code": 3, "hard": hard})
    assert worker.recv(timeout=5) == "bye"
    with pytest.raises(WorkerDied) as caught:
        worker.recv(timeout=5)
    assert caught.value.pid == worker.pid
    if not hard or caught.value.returncode is not None:
        assert caught.value.returncode == 3


def test_kill_9_is_detected_promptly(connect: Connect) -> None:
    worker = connect("sleep_forever")
    pid = worker.recv(timeout=5)["pid"]
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(WorkerDied) as caught:
        worker.recv(timeout=10)
    assert time.monotonic() - started < 2
    assert caught.value.returncode in (None, -signal.SIGKILL)
    with pytest.raises(WorkerDied):  # and it stays dead
        worker.send("anyone?")


@pytest.mark.ex01_5
@pytest.mark.ex02_4
@pytest.mark.parametrize("hard", [False, True], ids=["sys.exit", "os._exit"])
def test_is_alive_does_not_steal_the_exit_code_from_wait(connect: Connect, hard: bool) -> None:
    """With os._exit there is no exit report: only the process's status has the code."""
    worker = connect("exit_with")
    assert worker.is_alive()
    worker.send({"code": 7, "hard": hard})
    deadline = time.monotonic() + 5
    while worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.is_alive()
    assert worker.wait(timeout=5) == 7
    assert worker.wait(timeout=5) == 7


@pytest.mark.ex02_4
def test_wait_times_out_on_a_running_worker(connect: Connect) -> None:
    worker = connect("echo")  # running until its channel closes: a quick teardown
    with pytest.raises(TimeoutError):
        worker.wait(timeout=0.1)
    assert worker.is_alive()


def test_close_stops_a_worker_that_ignores_its_channel(connect: Connect, transport: str) -> None:
    worker = connect("sleep_forever")
    pid = worker.recv(timeout=5)["pid"]
    started = time.monotonic()
    worker.close(timeout=0.2)
    assert time.monotonic() - started < 5
    if transport == "tcp":  # the server ends it after its --exit-grace (0.5 s in these tests)
        deadline = time.monotonic() + 10
        while process_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not process_exists(pid)


@pytest.mark.ex01_6
def test_wait_any_returns_the_worker_with_a_message(connect: Connect) -> None:
    quiet, talker = connect("echo"), connect("echo")
    talker.send("hi")
    assert wait_any([quiet, talker], timeout=5) == [talker]
    assert talker.recv(timeout=0) == "hi"
    with pytest.raises(TimeoutError):
        wait_any([quiet, talker], timeout=0.1)


@pytest.mark.ex01_6
def test_wait_any_returns_every_worker_that_is_ready(connect: Connect) -> None:
    quiet, first, second = connect("echo"), connect("echo"), connect("echo")
    first.send("a")
    second.send("b")
    for worker in (first, second):  # each has its answer waiting
        assert wait_any([worker], timeout=5) == [worker]
    assert wait_any([quiet, first, second], timeout=5) == [first, second]


@pytest.mark.ex01_6
def test_wait_any_sees_buffered_messages(connect: Connect) -> None:
    worker = connect("send_pair_then_wait")
    assert worker.recv(timeout=5) == {"i": 0}  # the read took both: {"i": 1} is buffered
    assert wait_any([worker], timeout=1) == [worker]  # though its socket has nothing more
    assert worker.recv(timeout=0) == {"i": 1}


@pytest.mark.ex01_6
def test_wait_any_reports_a_dead_worker(connect: Connect) -> None:
    worker = connect("sleep_forever")
    pid = worker.recv(timeout=5)["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_any([worker], timeout=5) == [worker]
    with pytest.raises(WorkerDied):
        worker.recv(timeout=0)


@pytest.mark.ex01_6
def test_wait_any_with_no_workers_is_a_value_error_at_once() -> None:
    for timeout in (0.5, None):  # with None, waiting for none of no workers never ended
        started = time.monotonic()
        with pytest.raises(ValueError, match="at least one worker"):
            wait_any([], timeout=timeout)
        assert time.monotonic() - started < 0.5


def test_recv_timeout_names_the_worker_and_the_time(connect: Connect) -> None:
    worker = connect("echo")
    with pytest.raises(
        TimeoutError, match=rf"^no message from worker pid {worker.pid} within 0.1 s"
    ):
        worker.recv(timeout=0.1)


@pytest.mark.ex01_3
def test_sys_exit_with_a_message_reaches_the_caller(connect: Connect) -> None:
    worker = connect("exit_with")
    worker.send({"code": "no more input", "hard": False})
    assert worker.recv(timeout=5) == "bye"
    with pytest.raises(WorkerDied, match="no more input") as caught:
        worker.recv(timeout=5)
    assert caught.value.returncode == 1


def test_a_remote_error_carries_the_traceback_as_its_cause_not_its_message(
    connect: Connect,
) -> None:
    worker = connect("fail")
    worker.recv(timeout=5)
    worker.send("bad input 18")
    with pytest.raises(RemoteError) as caught:
        worker.recv(timeout=5)
    assert "Traceback" not in str(caught.value)
    assert str(caught.value).startswith("ValueError: bad input 18 (in worker pid ")
    cause = caught.value.__cause__
    assert cause is not None and "raise ValueError(handle.recv())" in str(cause)


@pytest.mark.parametrize("forever", [float("inf"), 1e10])
def test_an_infinite_or_huge_timeout_means_no_limit(connect: Connect, forever: float) -> None:
    worker = connect("echo_n")
    worker.send(1, timeout=forever)
    worker.send("x", timeout=forever)
    assert wait_any([worker], timeout=forever) == [worker]
    assert worker.recv(timeout=forever) == "x"
    assert worker.wait(timeout=forever) == 0
    worker.close(timeout=forever)


@pytest.mark.parametrize("bad", [float("nan"), -1.0])
@pytest.mark.parametrize("call", ["send", "recv", "wait", "close"])
def test_a_nan_or_negative_timeout_is_a_value_error_at_the_call(
    connect: Connect, call: str, bad: float
) -> None:
    worker = connect("echo")
    args = ("x",) if call == "send" else ()
    with pytest.raises(ValueError, match="timeout must be"):
        getattr(worker, call)(*args, timeout=bad)
    worker.send("still here", timeout=5)  # nothing was closed or half-done by the refusal
    assert worker.recv(timeout=5) == "still here"


class _PublicContractOnly:
    """A waitable that is no worker at all: only ``wait_fds()`` and ``poll()``, no channel."""

    def __init__(self) -> None:
        self.inside, self.outside = socket.socketpair()

    def wait_fds(self) -> list[int]:
        return [self.inside.fileno()]

    def poll(self) -> bool:
        return bool(select.select([self.inside], [], [], 0)[0])


def test_wait_any_needs_only_the_public_contract(connect: Connect) -> None:
    worker = connect("echo")
    other = _PublicContractOnly()
    try:
        with pytest.raises(TimeoutError):
            wait_any([worker, other], timeout=0.1)
        other.outside.send(b"!")
        assert wait_any([worker, other], timeout=5) == [other]
        other.inside.recv(1)
        worker.send("hi")
        assert wait_any([worker, other], timeout=5) == [worker]
    finally:
        other.inside.close()
        other.outside.close()


def test_a_fork_of_the_owner_keeps_none_of_the_workers_descriptors(connect: Connect) -> None:
    worker = connect("echo")
    mine = {fd: os.fstat(fd).st_ino for fd in worker.wait_fds()}
    report_read, report_write = os.pipe()
    pid = os.fork()  # anyone's fork, not the library's: the rule must hold for it too
    if pid == 0:
        kept = [fd for fd, inode in mine.items() if _open_with_inode(fd, inode)]
        os.write(report_write, repr(kept).encode())
        os._exit(0)
    os.close(report_write)
    try:
        report = os.read(report_read, 1000).decode()
    finally:
        os.close(report_read)
        os.waitpid(pid, 0)
    assert report == "[]", f"the forked child kept descriptors {report} of {worker!r}"
    worker.send("still mine")
    assert worker.recv(timeout=5) == "still mine"


def _open_with_inode(fd: int, inode: int) -> bool:
    try:
        return os.fstat(fd).st_ino == inode
    except OSError:
        return False


def test_daemons_the_worker_started_end_with_it(connect: Connect) -> None:
    """A process out of the worker's group escapes the group kill: the worker is a child
    subreaper, so such orphans become its children, and it ends them as it exits."""
    worker = connect("start_daemons")
    daemons = worker.recv(timeout=10)
    # The double-forked one may be gone already: a WorkerServer's forks die with their
    # parent (PR_SET_PDEATHSIG), and its parent exits at once. Popen's does not fork Python.
    assert process_exists(daemons[0])
    worker.close(timeout=5)  # end-of-file: the work function returns, the worker exits
    assert wait_until_gone(daemons) == []
