"""The WorkerServer under pressure: strangers, resource limits, and workers that fork.

Every test runs a real ``python -m miniray.worker_server`` on loopback; the attackers
are real processes with real sockets, from the loopback addresses 127.0.0.2 and up.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from testutil import ServerProcess, process_exists, secret_env

pytestmark = pytest.mark.needs("tcp")
SECRET = "test-secret-0123456789abcdef"

ATTACKER = r"""
import socket, sys, threading, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
addresses = [f"127.0.0.{i}" for i in range(2, 12)]
stop = time.monotonic() + seconds

def connect(address):
    return socket.create_connection(("127.0.0.1", port), 1, source_address=(address, 0))

def idle(address):  # send nothing; when hung up on, connect again
    while time.monotonic() < stop:
        try:
            with connect(address) as sock:
                sock.settimeout(max(0.01, stop - time.monotonic()))
                while sock.recv(100):
                    pass
        except OSError:
            time.sleep(0.01)

def slow(address):  # one byte a second
    while time.monotonic() < stop:
        try:
            with connect(address) as sock:
                while time.monotonic() < stop:
                    sock.sendall(b"x")
                    time.sleep(1)
        except OSError:
            time.sleep(0.01)

def churn(address):  # half an answer, hang up, again
    while time.monotonic() < stop:
        try:
            with connect(address) as sock:
                sock.sendall(b"y" * 32)
        except OSError:
            pass
        time.sleep(0.005)

kinds = [idle] * 6 + [slow] * 2
threads = [threading.Thread(target=k, args=(a,), daemon=True) for a in addresses for k in kinds]
threads += [threading.Thread(target=churn, args=(a,), daemon=True) for a in addresses[:2]]
for thread in threads:
    thread.start()
print("attacking", flush=True)
time.sleep(seconds)
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return secret_env(str(tmp_path), SECRET)


def connect(port: int, **options: object) -> object:
    from miniray import RemoteWorker

    return RemoteWorker("127.0.0.1", port, secret=SECRET, **options)  # type: ignore[arg-type]


def serve_once(port: int, timeout: float = 2.0) -> None:
    """A legitimate client: connect, one echo, close."""
    worker = connect(port, connect_timeout=timeout)
    try:
        worker.send("hello")  # type: ignore[attr-defined]
        assert worker.recv(timeout=timeout) == "hello"  # type: ignore[attr-defined]
    finally:
        worker.close()  # type: ignore[attr-defined]


def test_strangers_cannot_lock_out_a_client_that_knows_the_secret(env: dict[str, str]) -> None:
    """Idle, slow and reconnecting strangers from 10 addresses; a client still gets in."""
    server = ServerProcess("echo", "--workers", "4", env=env)
    attacker = subprocess.Popen(
        [sys.executable, "-c", ATTACKER, str(server.port), "4"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert attacker.stdout is not None and attacker.stdout.readline() == "attacking\n"
        time.sleep(0.5)  # let the strangers fill every unauthenticated place
        attempts, served, failures = 20, 0, []
        for _ in range(attempts):
            started = time.monotonic()
            try:
                serve_once(server.port)
                served += time.monotonic() - started < 2.0
            except Exception as e:  # ServerFull, TimeoutError, ...: counted, shown below
                failures.append(repr(e))
            time.sleep(0.05)
        assert attacker.poll() is None, "the attack ended before the client's last attempt"
        assert served >= 0.95 * attempts, f"served {served} of {attempts}: {failures[:3]}"
    finally:
        attacker.kill()
        attacker.wait()
    assert server.stop() == 0
    log = server.stderr().splitlines()
    refusals = [line for line in log if "refused unauthenticated connections" in line]
    assert 1 <= len(refusals) <= 3, log[:10]  # thousands of strangers, a few summary lines
    assert len(log) <= 2 * attempts + 10  # the rest: each client's worker started and ended


def test_a_burst_of_clients_within_the_workers_is_served_in_full(env: dict[str, str]) -> None:
    """200 clients that know the secret connect at once, from one address: all are served.

    The server's pending table holds fewer; the rest must wait in the kernel's listen
    backlog, not be accepted and then hung up on to make room for younger ones.
    """
    import threading

    clients = 200
    server = ServerProcess("echo", "--workers", str(clients), env=env)
    start = threading.Barrier(clients)
    results: dict[int, str] = {}
    workers: list[object] = []

    def client(n: int) -> None:
        try:
            start.wait(timeout=10)
            worker = connect(server.port, connect_timeout=20)
            workers.append(worker)
            worker.send(n)  # type: ignore[attr-defined]
            echo = worker.recv(timeout=20)  # type: ignore[attr-defined]
            results[n] = "ok" if echo == n else f"echo {echo!r}"
        except Exception as e:  # counted, shown below
            results[n] = repr(e)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    began = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.1, began + 25 - time.monotonic()))
        failed = {n: r for n, r in results.items() if r != "ok"}
        assert len(results) == clients, f"{clients - len(results)} clients still waiting"
        assert not failed, f"{len(failed)} of {clients} failed, e.g. {list(failed.values())[:3]}"
    finally:
        for worker in list(workers):
            worker.close(timeout=0)  # type: ignore[attr-defined]
        assert server.stop() == 0


@pytest.mark.parametrize("share", [0.1, 0.0])  # 0: every place is past its protected share
def test_a_newcomer_takes_an_overdue_place_or_one_of_a_more_crowded_address(
    share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pending table's rule, on socketpairs: a young place is safe from its own address."""
    from miniray import pending_handshakes as handshakes

    monkeypatch.setattr(handshakes, "PROTECTED_SHARE", share)
    watched: set[int] = set()
    table = handshakes.Handshakes(
        b"k" * 32,
        timeout=10,
        max_pending=2,
        watch=lambda fd, _events, _handler: watched.add(fd),
        unwatch=watched.discard,
        on_authenticated=lambda *_: None,
    )
    pairs = [socket.socketpair() for _ in range(4)]
    ours = [end for end, _ in pairs]
    numbers = [end.fileno() for end in ours]
    try:
        table.start(ours[0], "10.0.0.1", "10.0.0.1:1")
        table.start(ours[1], "10.0.0.1", "10.0.0.1:2")
        table.start(ours[2], "10.0.0.1", "10.0.0.1:3")  # full, and from the same address:
        if share:  # all young: the newcomer is refused, not the clients before it
            assert ours[2].fileno() == -1 and watched == {numbers[0], numbers[1]}
        else:  # the oldest has had its share without answering: it gives way
            assert ours[0].fileno() == -1 and watched == {numbers[1], numbers[2]}
        table.start(ours[3], "10.0.0.2", "10.0.0.2:1")  # a less crowded address gets a place
        assert numbers[3] in watched and len(watched) == 2
    finally:
        table.close_all()
        for pair in pairs:
            for end in pair:
                end.close()


def unprivileged_uid() -> int:
    """A uid of this test's own, that no process has: RLIMIT_NPROC counts every process of
    the uid, and two suite steps run this file at once (stages 4 and 6). With ``nobody``
    for both, one step's server counted against the other's limit, and its first fork
    failed (seen once in a suite run)."""
    for uid in range(50_000 + os.getpid() % 10_000, 65_000):
        if processes_of(uid) == 0:
            return uid
    raise AssertionError("no unused uid between 50000 and 65000")


def uid_cannot_run_python(uid: int) -> str | None:
    """Why a server cannot run as ``uid`` here (or None if it can)."""
    if os.geteuid() != 0:
        return "needs root, to start the server as another user (root ignores RLIMIT_NPROC)"
    if shutil.which("setpriv") is None:
        return "needs setpriv (util-linux) to start the server as another user"
    probe = [*run_as(uid), sys.executable, "-c", "import miniray"]
    if subprocess.run(probe, capture_output=True, timeout=30).returncode != 0:
        return f"uid {uid} cannot run this Python or import miniray from here"
    return None


def run_as(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", "--regid=nogroup", "--clear-groups"]


def processes_of(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(FileNotFoundError):
                count += os.stat(f"/proc/{entry}").st_uid == uid
    return count


def test_a_failed_fork_refuses_that_client_and_the_server_goes_on() -> None:
    """With RLIMIT_NPROC reached, fork() fails (EAGAIN): that client is told, others wait."""
    from miniray import ServerFull

    uid = unprivileged_uid()
    reason = uid_cannot_run_python(uid)
    if reason:
        pytest.skip(reason)
    limit = processes_of(uid) + 2  # the server and one worker

    def one_worker_at_most() -> None:
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))

    server = ServerProcess(
        "echo",
        "--workers",
        "4",
        env={**os.environ, "MINIRAY_SECRET": SECRET},
        run_as=run_as(uid),
        preexec_fn=one_worker_at_most,
    )
    try:
        first = connect(server.port, connect_timeout=5)
        with pytest.raises(ServerFull, match="could not start a worker"):
            connect(server.port, connect_timeout=5)
        assert server.proc.poll() is None, "the server died"
        first.close()  # type: ignore[attr-defined]
        serve_after_load_drops(server)
    finally:  # a failed check must not leave the server running
        assert server.stop() == 0
    assert "cannot start a worker" in server.stderr()


@pytest.mark.parametrize("limit", [16, 17])  # which call runs out first depends on parity
def test_running_out_of_descriptors_delays_clients_but_never_kills_the_server(
    env: dict[str, str], limit: int
) -> None:
    """With RLIMIT_NOFILE reached, accept() and pidfd_open() fail (EMFILE): serve on."""

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    server = ServerProcess(
        "echo", "--workers", "64", "--handshake-timeout", "1", env=env, preexec_fn=few_descriptors
    )

    strangers = [
        socket.create_connection(("127.0.0.1", server.port), source_address=(f"127.0.0.{i}", 0))
        for i in range(2, 6)
        for _ in range(6)
    ]
    try:
        serve_after_load_drops(server)
        assert server.proc.poll() is None, "the server died"
    finally:
        for sock in strangers:
            sock.close()
    assert server.stop() == 0
    log = server.stderr()
    assert "Too many open files" in log, log  # the limit was reached, and survived


def serve_after_load_drops(server: ServerProcess, within: float = 15.0) -> None:
    from miniray import ServerFull, ServerUnreachable

    deadline = time.monotonic() + within
    while True:
        try:
            serve_once(server.port, timeout=5.0)
            return
        except (ServerFull, ServerUnreachable, TimeoutError, ConnectionError):
            assert time.monotonic() < deadline, "never served again"
            assert server.proc.poll() is None, "the server died"
            time.sleep(0.1)


@pytest.fixture
def grandchild_server(
    env: dict[str, str],
) -> Iterator[tuple[ServerProcess, object, dict[str, int]]]:
    """A server whose worker forked a grandchild that holds the connection; its pids."""
    server = ServerProcess("fork_grandchild", env=env)
    worker = connect(server.port)
    pids: dict[str, int] = worker.recv(timeout=10)  # type: ignore[attr-defined]
    yield server, worker, pids
    for pid in pids.values():
        if process_exists(pid):
            os.kill(pid, signal.SIGKILL)
    server.stop()


def wait_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while process_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not process_exists(pid)


def test_a_killed_worker_ends_the_stream_a_grandchild_holds_and_its_group(
    grandchild_server: tuple[ServerProcess, object, dict[str, int]],
) -> None:
    from miniray import WorkerDied

    _, worker, pids = grandchild_server
    os.kill(pids["pid"], signal.SIGKILL)
    with pytest.raises(WorkerDied) as died:
        worker.recv(timeout=5)  # type: ignore[attr-defined]
    assert died.value.returncode == -signal.SIGKILL  # the server's report: it reaped the worker
    assert not worker.is_alive()  # type: ignore[attr-defined]
    assert wait_gone(pids["grandchild"]), "the worker's process group outlived it"
    worker.close()  # type: ignore[attr-defined]
    assert worker.returncode == -signal.SIGKILL  # type: ignore[attr-defined]


def test_a_worker_that_returns_takes_what_it_forked_with_it(
    grandchild_server: tuple[ServerProcess, object, dict[str, int]],
) -> None:
    _, worker, pids = grandchild_server
    worker.send("done")  # type: ignore[attr-defined]
    assert worker.wait(timeout=5) == 0  # type: ignore[attr-defined]
    assert wait_gone(pids["grandchild"]), "the worker's process group outlived it"


def test_after_kill_9_of_the_server_the_client_learns_promptly_despite_a_grandchild(
    grandchild_server: tuple[ServerProcess, object, dict[str, int]],
) -> None:
    """No one is left to send a report, but every holder of the connection dies with it."""
    from miniray import WorkerDied

    server, worker, pids = grandchild_server
    server.proc.kill()
    with pytest.raises(WorkerDied) as died:
        worker.recv(timeout=5)  # type: ignore[attr-defined]
    assert died.value.returncode is None  # nobody could tell how the worker ended
    assert not worker.is_alive()  # type: ignore[attr-defined]
    assert wait_gone(pids["pid"]) and wait_gone(pids["grandchild"])


def test_a_stale_event_never_reaches_the_new_owner_of_a_reused_descriptor() -> None:
    """One poll batch: an earlier handler closes a descriptor, and a new one takes its number.

    Under load this happened for real: a reap freed a pidfd's number, the next worker's
    pidfd or connection took it, and the stale event of the same batch reaped (killed) the
    new worker, or wrote its exit report into a client's handshake.
    """
    from miniray import WorkerServer

    server = WorkerServer(lambda handle: None, secret=SECRET)
    first, first_peer = socket.socketpair()
    doomed, doomed_peer = socket.socketpair()
    first_peer.send(b"x")
    doomed_peer.send(b"x")  # both readable: one batch holds both events, first's first
    doomed_number = doomed.fileno()
    calls: list[str] = []
    reused: list[socket.socket] = []
    numbers: list[int] = []

    def close_doomed_and_reuse_its_number(_events: int) -> None:
        server._unwatch(first.fileno())
        server._unwatch(doomed_number)
        doomed.close()
        newcomer, newcomer_peer = socket.socketpair()
        reused.extend([newcomer, newcomer_peer])
        numbers.append(newcomer.fileno())
        server._watch(newcomer.fileno(), 1, lambda _: calls.append("newcomer"))
        server._stopping = True  # this batch is the last

    server._watch(first.fileno(), 1, close_doomed_and_reuse_its_number)
    server._watch(doomed_number, 1, lambda _: calls.append("doomed"))
    server.serve_forever()
    for sock in [first, first_peer, doomed_peer, *reused]:
        sock.close()
    assert numbers == [doomed_number], "the kernel did not reuse the number: nothing tested"
    assert calls == [], "a stale event was handed to a closed or reused descriptor's handler"
