"""However a worker ends, its caller learns the same exit code, locally and over TCP.

A local Worker reaps its child; a RemoteWorker learns the code from the worker's EXIT
frame or, for a worker killed by a signal, from the server that reaped it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from testutil import ServerProcess, secret_env

Connect = Any  # the `connect` fixture of conftest.py: connect(work_fn_name) -> worker


def send_until_refused(worker: Any, within: float = 5.0) -> BaseException:
    """Keep sending until a send fails (TCP takes a send or two after the peer left)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            worker.send("are you there?")
        except Exception as e:
            return e
        time.sleep(0.01)
    raise AssertionError(f"every send succeeded for {within} s after the worker ended")


def test_a_failed_work_function_is_not_reported_as_a_kill(connect: Connect) -> None:
    from miniray import RemoteError, WorkerDied

    worker = connect("fail")
    assert worker.recv(timeout=10) == "about to fail"
    worker.send("boom")
    with pytest.raises(RemoteError):
        worker.recv(timeout=10)
    refused = send_until_refused(worker)
    assert isinstance(refused, WorkerDied), repr(refused)
    assert refused.returncode == 1, str(refused)  # not "killed", not "unknown"
    worker.close()
    assert worker.returncode == 1


def test_an_exit_code_the_worker_chose_survives_close(connect: Connect) -> None:
    from miniray import WorkerDied

    worker = connect("exit_with")
    worker.send({"code": 3, "hard": False})
    assert worker.recv(timeout=10) == "bye"
    refused = send_until_refused(worker)
    assert isinstance(refused, WorkerDied) and refused.returncode == 3, repr(refused)
    worker.close()
    assert worker.returncode == 3


def test_a_worker_killed_by_a_signal_reports_the_signal(connect: Connect) -> None:
    from miniray import WorkerDied

    worker = connect("sleep_forever")
    pid = worker.recv(timeout=10)["pid"]  # a remote worker runs on this machine too
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerDied) as died:
        worker.recv(timeout=10)
    assert died.value.returncode == -signal.SIGKILL
    assert "killed by SIGKILL" in str(died.value)
    worker.close()
    assert worker.returncode == -signal.SIGKILL


@pytest.mark.needs("tcp")
def test_a_worker_killed_in_the_middle_of_a_frame_is_reported_killed() -> None:
    """The server's report comes after the half frame, and reads as its rest: the client
    finds it at the end of the stream (``Channel._salvage_report``), not a broken frame."""
    from miniray import RemoteWorker, WorkerDied

    size = 64 << 20  # far more than loopback's socket buffers: the send blocks mid-frame
    with tempfile.TemporaryDirectory() as secrets:
        env = secret_env(secrets)
        server = ServerProcess("send_long_text", "--max-frame", str(2 * size), env=env)
        try:
            secret = Path(env["MINIRAY_SECRET_FILE"]).read_text()
            worker = RemoteWorker("127.0.0.1", server.port, secret=secret, max_frame=2 * size)
            worker.send(size)
            blocked_in(worker.pid, "sk_stream_wait_memory")  # in a send this end does not read
            os.kill(worker.pid, signal.SIGKILL)
            with pytest.raises(WorkerDied, match="killed by SIGKILL"):
                worker.recv(timeout=30)
            worker.close(timeout=2)
        finally:
            assert server.stop() == 0


@pytest.mark.needs("tcp")
def test_a_worker_killed_in_the_middle_of_a_small_frame_is_reported_killed(
    worker_servers: Any,
) -> None:
    """Cut in a small frame, the report completes it and fails its MAC: still the kill,
    not "a frame failed its integrity check", which would read like an attack."""
    from miniray import WorkerDied

    worker = worker_servers.connect("half_a_small_frame")
    assert worker.recv(timeout=10) == "started"
    blocked_in(worker.pid, "tcp_recvmsg")  # half a frame written, it waits to be told more
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(WorkerDied, match="killed by SIGKILL"):
        worker.recv(timeout=10)


@pytest.mark.needs("tcp")
def test_a_worker_killed_while_the_stream_is_full_is_reported_killed(worker_servers: Any) -> None:
    """The worker floods a client that reads nothing, until every buffer on the way is
    full, and is killed there: the server's report does not fit. It must wait in the
    server (which never blocks on one client) and go out as the client reads."""
    from miniray import WorkerDied

    worker = worker_servers.connect("flood")
    worker.send({"size": 60_000, "seconds": 60})
    blocked_in(worker.pid, "sk_stream_wait_memory")  # both ends' buffers are full
    os.kill(worker.pid, signal.SIGKILL)
    reaped_by = time.monotonic() + 10
    while Path(f"/proc/{worker.pid}").exists():  # reaped: the server tried to send its report
        assert time.monotonic() < reaped_by, "the server did not reap its killed worker"
        time.sleep(0.05)
    time.sleep(0.2)  # and its loop has gone round once more
    with pytest.raises(WorkerDied, match="killed by SIGKILL"):
        for _ in range(10_000):  # the messages in the buffers (about 100), then the report
            worker.recv(timeout=10)


@pytest.mark.needs("tcp")
@pytest.mark.parametrize("client_reads", [True, False], ids=["reads", "reads nothing"])
def test_a_report_that_does_not_fit_goes_out_as_room_comes_or_is_given_up(
    client_reads: bool,
) -> None:
    """``farewells.Farewells`` on a full stream: the server's poll says when there is room;
    a client that never makes room has the stream ended at the deadline all the same."""
    import select
    import socket

    from miniray.farewells import Farewells

    server_end, client_end = socket.socketpair()
    server_end.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:  # fill the stream: the report will not fit
            server_end.send(b"x" * 65536)
    watched: dict[int, Any] = {}
    farewells = Farewells(
        watch=lambda fd, _events, handler: watched.__setitem__(fd, handler),
        unwatch=lambda fd: watched.pop(fd, None),
        timeout=0.5,
    )
    farewells.say(server_end, b"REPORT")
    assert list(watched) == [server_end.fileno()]  # waiting for room, not sent, not blocked
    received = b""
    if client_reads:
        client_end.setblocking(False)
        while not received.endswith(b"REPORT"):
            with contextlib.suppress(BlockingIOError):
                received += client_end.recv(1 << 20)
            for handler in list(watched.values()):
                handler(select.POLLOUT)
        assert not watched and farewells.next_timer() is None  # all sent: the stream ended
    else:
        assert farewells.next_timer() is not None
        time.sleep(0.6)
        farewells.expire()
        assert not watched
    assert server_end.fileno() == -1  # closed
    client_end.setblocking(True)
    while chunk := client_end.recv(1 << 20):  # and the client sees the end of the stream
        received += chunk
    assert received.endswith(b"REPORT") == client_reads
    client_end.close()


def blocked_in(pid: int, kernel_function: str, within: float = 30.0) -> None:
    """Wait until ``pid`` waits in the kernel in ``kernel_function``: ``sk_stream_wait_memory``
    for room in a full TCP send buffer (part of a frame written, stuck in the rest),
    ``tcp_recvmsg`` for data to read (from /proc/PID/stack, which only root may read)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            stack = Path(f"/proc/{pid}/stack").read_text()
        except PermissionError:
            pytest.skip("reading /proc/PID/stack needs root: cannot tell where a worker waits")
        if kernel_function in stack:
            return
        time.sleep(0.05)
    raise AssertionError(f"worker pid {pid} did not wait in {kernel_function} within {within} s")
