"""The parts of a Cluster, one at a time (the stage 3 exercises): the quoted command line,
the ready line with a deadline, the lease, and rank assignment."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sshhosts import TESTS_DIR, wait_for_no_processes

pytestmark = pytest.mark.needs("cluster")


# --- 3.1 the command line -------------------------------------------------------------------


def run_in_shell(command: str) -> tuple[int, list[object]]:
    """Run ``command`` as the remote shell would (``sh -c``); return the shell's pid and what
    the command printed, as JSON.

    A trap is set first: bash (not dash) runs the last command of ``-c`` in its own process
    by itself, but not while a trap is set, as a login script may leave one.  So only an
    explicit ``exec`` makes the server the very process that ssh started and waits for.
    """
    import json

    shell = subprocess.Popen(
        ["/bin/sh", "-c", "trap '' USR2; " + command], stdout=subprocess.PIPE, text=True
    )
    out, _ = shell.communicate(timeout=30)
    assert shell.returncode == 0, command
    return shell.pid, json.loads(out)


@pytest.mark.ex03_1
def test_the_command_line_survives_a_shell_unchanged(tmp_path: os.PathLike[str]) -> None:
    from miniray.launch import remote_command

    hostile = ["a b", "it's", '"q"', "$HOME", "`id`", "x;y", "&&", "*", "\\", "", "new\nline"]
    folder = os.path.join(str(tmp_path), "dir with 'quotes' and $dollar")
    os.mkdir(folder)
    python = os.path.join(folder, "python $(id) 'x'")  # the interpreter's path is a word too
    os.symlink(sys.executable, python)
    script = (
        "import os, sys, json; print(json.dumps([os.getcwd(), os.environ['V1'], sys.argv[1:]]))"
    )
    env = {"V1": "value with spaces; $(echo no) 'and' quotes"}
    command = remote_command(python, ["-c", script, *hostile], cwd=folder, env=env)
    assert run_in_shell(command)[1] == [folder, env["V1"], hostile]


@pytest.mark.ex03_1
@pytest.mark.parametrize("env", [None, {}, {"A": "1"}], ids=["no-env", "empty-env", "env"])
def test_the_command_line_execs_the_server_in_its_folder(
    tmp_path: os.PathLike[str], env: dict[str, str] | None
) -> None:
    """exec: the server is the process ssh waits for, so ssh's hang-up and signals reach it."""
    from miniray.launch import remote_command

    script = "import os, json; print(json.dumps([os.getpid(), os.getcwd(), os.environ.get('A')]))"
    command = remote_command(sys.executable, ["-c", script], cwd=str(tmp_path), env=env)
    shell_pid, (pid, cwd, a) = run_in_shell(command)
    assert pid == shell_pid, "python runs as the shell's child, not in its place (exec)"
    assert (cwd, a) == (str(tmp_path), (env or {}).get("A"))


@pytest.mark.ex03_1
@pytest.mark.parametrize("name", ["A=B; rm", "1X", "A B", "A-B", "", "A\n"])
def test_an_environment_name_that_is_not_a_shell_name_is_refused(name: str) -> None:
    from miniray.launch import ConfigError, remote_command

    with pytest.raises(ConfigError) as caught:
        remote_command("/p", [], cwd="/", env={name: "1"})
    assert repr(name)[1:-1] in str(caught.value), "the message must name the bad name"


# --- 3.2 the ready line ---------------------------------------------------------------------


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):
            os.close(fd)


def write_later(fd: int, pieces: list[bytes], delay: float = 0.05) -> threading.Thread:
    def run() -> None:
        for piece in pieces:
            time.sleep(delay)
            os.write(fd, piece)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.ex03_2
def test_the_ready_line_is_found_after_chatter_and_in_pieces(pipe: tuple[int, int]) -> None:
    from miniray.launch import read_ready_line

    pieces = [b"Welcome to node1\nlast ", b"login: today\nMINIRAY_READY {\"host\": \"10.0.0.1\", ",
              b"\"port\": 10000, \"pid\": 7}\nMINIRAY_LOG 0 early"]  # fmt: skip
    writer = write_later(pipe[1], pieces)
    ready, rest = read_ready_line(pipe[0], timeout=5)
    writer.join()
    assert ready == {"host": "10.0.0.1", "port": 10000, "pid": 7}
    assert rest.startswith(b"MINIRAY_LOG 0 early")


@pytest.mark.ex03_2
def test_bytes_already_read_are_searched_first(pipe: tuple[int, int]) -> None:
    """The caller's second call, after a line it refused: the first call's rest goes on."""
    from miniray.launch import read_ready_line

    os.write(pipe[1], b'port": 2}\nlog line')
    ready, rest = read_ready_line(
        pipe[0], timeout=5, already=b'chatter\nMINIRAY_READY {"host": "h", "'
    )
    assert ready == {"host": "h", "port": 2}
    assert rest == b"log line"


@pytest.mark.ex03_2
def test_no_ready_line_in_time_is_a_timeout_not_a_hang(pipe: tuple[int, int]) -> None:
    from miniray.launch import read_ready_line

    os.write(pipe[1], b'MINIRAY_READY {"host": "h", ')  # half a line, then silence
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        read_ready_line(pipe[0], timeout=0.3)
    assert time.monotonic() - started < 5


@pytest.mark.ex03_2
def test_chatter_does_not_extend_the_deadline(pipe: tuple[int, int]) -> None:
    """A login script that keeps talking: a line every 0.1 s, for far longer than the
    timeout.  ``timeout`` is one deadline for the whole call, not a limit per read."""
    from miniray.launch import read_ready_line

    stop = threading.Event()

    def chatter() -> None:
        # 4 s at most: past the bound below, so a reader that waits for the chatter to end
        # fails the bound, and in less than the 10 s a learner's run gives each test.
        for _ in range(40):
            if stop.wait(0.1):
                return
            os.write(pipe[1], b"still logging in...\n")

    thread = threading.Thread(target=chatter)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            read_ready_line(pipe[0], timeout=0.5)
        assert time.monotonic() - started < 0.5 + 2.5  # 2.5 s: slack for a loaded machine
    finally:
        stop.set()
        thread.join(timeout=5)


@pytest.mark.ex03_2
def test_a_line_without_end_is_refused_not_buffered_until_the_timeout(
    pipe: tuple[int, int],
) -> None:
    from miniray import ProtocolError
    from miniray.launch import read_ready_line

    endless = b"x" * 4096

    def write_without_newline() -> None:
        with contextlib.suppress(OSError):  # the reader gave up and the pipe closed
            for _ in range(1024):  # 4 MiB at most, far more than any ready line
                os.write(pipe[1], endless)

    thread = threading.Thread(target=write_without_newline, daemon=True)
    thread.start()
    with pytest.raises(ProtocolError):  # at once; a reader without a cap gets TimeoutError
        read_ready_line(pipe[0], timeout=3)
    os.close(pipe[0])  # the writer's next write fails: it ends
    thread.join(timeout=5)


@pytest.mark.ex03_2
def test_the_end_of_the_stream_before_the_ready_line_is_eof(pipe: tuple[int, int]) -> None:
    from miniray.launch import read_ready_line

    os.write(pipe[1], b"bash: python3: command not found\n")
    os.close(pipe[1])
    with pytest.raises(EOFError):  # at once; a reader blind to it spins until the timeout
        read_ready_line(pipe[0], timeout=2)


@pytest.mark.ex03_2
def test_a_garbled_ready_line_is_a_protocol_error(pipe: tuple[int, int]) -> None:
    from miniray import ProtocolError
    from miniray.launch import read_ready_line

    os.write(pipe[1], b"MINIRAY_READY {not json}\n")
    with pytest.raises(ProtocolError):
        read_ready_line(pipe[0], timeout=5)


# --- 3.3 the lease --------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def unread_bytes(fd: int) -> int:
    """How many bytes wait in the pipe ``fd`` reads from (FIONREAD)."""
    import array
    import fcntl
    import termios

    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


@pytest.mark.ex03_3
def test_the_lease_acts_on_interrupts_and_ends_at_end_of_file(pipe: tuple[int, int]) -> None:
    from miniray.cluster_server import follow_lease

    calls: list[str] = []
    thread = threading.Thread(  # a daemon: a lease that never ends must not hang the run
        target=follow_lease,
        args=(pipe[0], lambda: calls.append("interrupt"), lambda: calls.append("end")),
        daemon=True,
    )
    thread.start()
    os.write(pipe[1], b"interr")
    wait_until(lambda: unread_bytes(pipe[0]) == 0)  # read on its own: half a line
    os.write(pipe[1], b"upt\nnonsense\ninterrupt\n")
    wait_until(lambda: len(calls) >= 2)
    assert calls == ["interrupt", "interrupt"]
    os.close(pipe[1])
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert calls == ["interrupt", "interrupt", "end"]


@pytest.mark.ex03_3
def test_a_read_error_ends_the_lease_once(tmp_path: os.PathLike[str]) -> None:
    from miniray.cluster_server import follow_lease

    calls: list[str] = []
    fd = os.open(tmp_path, os.O_RDONLY)  # reading a directory fails: EISDIR
    try:
        follow_lease(fd, lambda: calls.append("interrupt"), lambda: calls.append("end"))
    finally:
        os.close(fd)
    assert calls == ["end"]


@pytest.mark.ex03_3
def test_a_server_and_its_workers_end_when_its_stdin_closes(tag: str) -> None:
    """The whole lease: a cluster server started by hand, one worker; close its stdin."""
    from miniray import RemoteWorker
    from miniray.launch import read_ready_line, ready_mac
    from miniray.ranks import assign_ranks

    env = {**os.environ, "MINIRAY_TEST_TAG": tag}
    command = [sys.executable, "-m", "miniray.cluster_server", "--work-fn",
               "cluster_workfns.sleeper", "--workers", "1", "--host", "127.0.0.1"]  # fmt: skip
    server = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=TESTS_DIR
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        server.stdin.write(b"a-secret-of-the-right-length-0123456789 a-nonce\n")
        server.stdin.flush()
        ready, _ = read_ready_line(server.stdout.fileno(), timeout=20)
        secret = "a-secret-of-the-right-length-0123456789"
        assert ready["mac"] == ready_mac(secret, "a-nonce", ready["host"], ready["port"])
        worker = RemoteWorker(ready["host"], ready["port"],
                              secret="a-secret-of-the-right-length-0123456789")  # fmt: skip
        worker.send(assign_ranks([("here", 1)])[0][0].message())
        assert worker.recv(timeout=10)["rank"] == 0
        server.stdin.close()  # the lease ends
        assert server.wait(timeout=5) == 0
        assert wait_for_no_processes(tag, 5.0) == []
        worker.close()
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


# --- 3.4 ranks ------------------------------------------------------------------------------


@pytest.mark.ex03_4
def test_ranks_go_node_by_node_then_by_local_index() -> None:
    from miniray.ranks import assign_ranks

    ranks = assign_ranks([("a", 2), ("b", 3), ("c", 1)])
    flat = [(r.rank, r.local_rank, r.world_size, r.local_world_size, r.group_rank, r.host)
            for node in ranks for r in node]  # fmt: skip
    assert flat == [
        (0, 0, 6, 2, 0, "a"), (1, 1, 6, 2, 0, "a"),
        (2, 0, 6, 3, 1, "b"), (3, 1, 6, 3, 1, "b"), (4, 2, 6, 3, 1, "b"),
        (5, 0, 6, 1, 2, "c"),
    ]  # fmt: skip
    assert assign_ranks([]) == []


@pytest.mark.ex03_4
def test_a_rank_becomes_torchrun_s_environment() -> None:
    from miniray.ranks import assign_ranks

    info = assign_ranks([("a", 1), ("b", 2)])[1][1]
    assert info.environment() == {
        "RANK": "2", "LOCAL_RANK": "1", "WORLD_SIZE": "3", "LOCAL_WORLD_SIZE": "2",
        "GROUP_RANK": "1", "MINIRAY_HOST": "b",
    }  # fmt: skip


def test_a_worker_refuses_a_first_message_that_is_no_rank() -> None:
    from miniray import ProtocolError
    from miniray.ranks import RankInfo

    out_of_range = {"rank": 3, "local_rank": 0, "world_size": 2, "local_world_size": 1}
    out_of_range |= {"group_rank": 0, "host": "h"}
    for bad in [
        {"cmd": "train"},
        {"miniray_rank": {"rank": 5}},
        None,
        {"miniray_rank": out_of_range},
    ]:
        with pytest.raises(ProtocolError):
            RankInfo.from_message(bad)


def test_ssh_runs_in_batch_mode_and_leaves_host_keys_to_the_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from miniray.launch import ssh_command

    monkeypatch.delenv("MINIRAY_SSH_COMMAND", raising=False)
    argv = ssh_command(
        "node1", "CMD", user="me", port=2222, identity_file="/k", options=["-F", "/c"]
    )
    assert argv[0] == "ssh" and argv[-2:] == ["node1", "CMD"]
    joined = " ".join(argv)
    for wanted in ["BatchMode=yes", "ConnectTimeout=", "ServerAliveInterval=", "-l me",
                   "-p 2222", "-i /k", "-F /c"]:  # fmt: skip
        assert wanted in joined
    assert "StrictHostKeyChecking" not in joined and "KnownHosts" not in joined
    monkeypatch.setenv("MINIRAY_SSH_COMMAND", "ssh -F '/my config'")
    assert ssh_command("n", "CMD")[:3] == ["ssh", "-F", "/my config"]
