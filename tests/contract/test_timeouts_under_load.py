"""Timeouts hold, and memory stays bounded, while a worker sends without pause.

A worker that floods its connection keeps the socket readable at every instant. A call
that read "until nothing is left" would never get to look at its clock, and would keep
everything in memory. These tests flood for longer than any timeout they pass, so a
call that overran its timeout shows as a call that took as long as the flood.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testutil import ServerProcess, secret_env

Connect = Any
FLOOD_SECONDS = 6  # longer than every timeout below, by far
SLACK = 2.5  # seconds a loaded 2-core machine may add to a timeout; far below FLOOD_SECONDS


def flooding(connect: Connect, **options: Any) -> Any:
    """A worker that sends small messages without pause for FLOOD_SECONDS."""
    worker = connect("flood", **options)
    worker.send({"size": 10, "seconds": FLOOD_SECONDS})
    assert worker.recv(timeout=10)["i"] == 0  # it has started
    time.sleep(0.5)  # and has filled the kernel's buffers: the socket stays readable
    return worker


@contextlib.contextmanager
def flood_cut_after(worker: Any, seconds: float) -> Iterator[None]:
    """Kill the flooding worker if the block is still running after ``seconds``: a call
    that overran its timeout then ends at once, with the wrong outcome, and the test fails
    there instead of when the flood ends (CPU spent on both ends of it, not the verdict)."""

    def cut() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)

    timer = threading.Timer(seconds, cut)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.mark.ex02_4
def test_wait_raises_at_its_deadline_while_the_worker_floods(connect: Connect) -> None:
    # A huge max_frame makes the backlog limit (see the next test) too far to reach in
    # this test's time: only the deadline can end this wait.
    worker = flooding(connect, max_frame=1 << 30)
    started = time.monotonic()
    with flood_cut_after(worker, 0.3 + SLACK), pytest.raises(TimeoutError, match=r"\b0\.3\b"):
        worker.wait(timeout=0.3)  # it names the timeout
    assert time.monotonic() - started < 0.3 + SLACK
    assert worker.recv(timeout=5)["i"] == 1  # nothing was lost; the worker is still there


@pytest.mark.ex02_4
def test_wait_timeout_zero_only_looks(connect: Connect) -> None:
    worker = flooding(connect, max_frame=1 << 30)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        worker.wait(timeout=0)
    assert time.monotonic() - started < SLACK


def test_is_alive_answers_at_once_while_the_worker_floods(connect: Connect) -> None:
    worker = flooding(connect, max_frame=1 << 30)
    started = time.monotonic()
    assert worker.is_alive()
    assert time.monotonic() - started < SLACK


def test_close_honours_its_timeout_while_the_worker_floods(connect: Connect) -> None:
    worker = flooding(connect, max_frame=1 << 30)
    started = time.monotonic()
    worker.close(timeout=0.5)
    # A local Worker adds its SIGTERM grace (1 s) when the child does not stop in time.
    assert time.monotonic() - started < 0.5 + 1.0 + SLACK
    assert not worker.is_alive()


@pytest.mark.needs("tcp")
def test_close_does_not_wait_for_the_servers_exit_grace(tmp_path: Path) -> None:
    """The server would stop a worker that outlives its client only after --exit-grace."""
    from miniray import RemoteWorker

    env = secret_env(str(tmp_path))
    server = ServerProcess("flood", "--exit-grace", "30", env=env)
    try:
        secret = Path(env["MINIRAY_SECRET_FILE"]).read_text()
        worker = flooding(lambda name: RemoteWorker("127.0.0.1", server.port, secret=secret))
        started = time.monotonic()
        worker.close(timeout=0.5)
        assert time.monotonic() - started < 0.5 + SLACK
        assert worker.returncode is None  # it did not end in time: no exit code to tell
    finally:
        assert server.stop() == 0


@pytest.mark.needs("tcp")
@pytest.mark.ex02_4
def test_wait_keeps_a_bounded_backlog_and_loses_nothing(worker_servers: Any) -> None:
    from miniray import BacklogFull

    max_frame = 1 << 20
    worker = worker_servers.connect("flood", max_frame=max_frame)
    try:
        worker.send({"size": 60_000, "seconds": FLOOD_SECONDS})
        started = time.monotonic()
        with flood_cut_after(worker, SLACK), pytest.raises(BacklogFull) as caught:
            worker.wait(timeout=FLOOD_SECONDS - SLACK)  # the backlog fills long before
        assert time.monotonic() - started < FLOOD_SECONDS - SLACK
        assert caught.value.pid == worker.pid
        # Its message says how many bytes wait, and to recv() them.
        assert str(caught.value.unread_bytes) in str(caught.value)
        assert "recv()" in str(caught.value)
        # It stopped reading at the limit: about 2 MiB of 60 kB messages, no more.
        assert 2 * max_frame <= caught.value.unread_bytes <= 2 * max_frame + 2 * 60_100
        # Everything read is kept, in order, and reading goes on where it stopped.
        assert [worker.recv(timeout=10)["i"] for _ in range(100)] == list(range(100))
    finally:
        worker.close(timeout=1)


@pytest.mark.needs("tcp")
@pytest.mark.ex02_4
def test_wait_after_one_message_of_max_frame_bytes_still_sees_the_exit(
    worker_servers: Any,
) -> None:
    max_frame = 1 << 20
    worker = worker_servers.connect("echo_n", max_frame=max_frame)
    worker.send(1)
    big = "z" * (max_frame - 2)  # with its quotes, exactly max_frame bytes
    worker.send(big)
    assert worker.wait(timeout=10) == 0  # the message is held for recv, the end seen
    assert worker.recv(timeout=5) == big
