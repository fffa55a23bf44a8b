"""The WorkerServer and its handshake: start-up, capacity, security, hostile clients, signals.

Every test runs a real ``python -m miniray.worker_server`` subprocess on loopback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import adapters
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testutil import WORKFNS, ServerProcess, exclusive_port, process_exists, secret_env

pytestmark = pytest.mark.needs("tcp")
SECRET = "test-secret-0123456789abcdef"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return secret_env(str(tmp_path), SECRET)


@pytest.fixture
def echo_server(env: dict[str, str]) -> Iterator[ServerProcess]:
    server = ServerProcess("echo", "--workers", "64", "--handshake-timeout", "1", env=env)
    yield server
    assert server.stop() == 0


def connect(server: ServerProcess, secret: str = SECRET, **options: object) -> object:
    from miniray import RemoteWorker

    return RemoteWorker("127.0.0.1", server.port, secret=secret, **options)  # type: ignore[arg-type]


def assert_serves(server: ServerProcess) -> None:
    """A legitimate client still gets a working worker."""
    with connect(server) as worker:  # type: ignore[attr-defined]
        worker.send({"still": "serving"})
        assert worker.recv(timeout=10) == {"still": "serving"}


@pytest.mark.ex02_3
@pytest.mark.ex02_5
def test_the_original_designs_quick_start_works_verbatim(tmp_path: Path) -> None:
    """The original design's two-terminal example, as written (port 10000, my_module.work_fn)."""
    with exclusive_port(10000):  # another stage's run of this test takes its turn
        _run_the_quick_start(tmp_path)


def _run_the_quick_start(tmp_path: Path) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 10000)) == 0:
            pytest.skip("port 10000 is in use by another program; the example needs it")
    (tmp_path / "my_module.py").write_text(
        "def work_fn(handle):\n"
        "    while True:\n"
        "        msg = handle.recv()\n"
        "        handle.send({'cmd': msg['cmd'], 'data': msg['data']})\n"
    )
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}  # a fresh per-user secret
    command = "python -m miniray.worker_server --port 10000 --workers 4 --work-fn my_module.work_fn"
    terminal_1 = subprocess.Popen(
        [sys.executable, *command.split()[1:]],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert terminal_1.stdout is not None
        assert terminal_1.stdout.readline().startswith("MINIRAY_READY")
        terminal_2 = (
            "from miniray import RemoteWorker\n"
            'worker = RemoteWorker("localhost", 10000)\n'
            'worker.send({"cmd": "echo", "data": "hello"})\n'
            "print(worker.recv())\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", terminal_2],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.stdout == "{'cmd': 'echo', 'data': 'hello'}\n", out.stderr
        assert (tmp_path / "config" / "miniray" / "secret").stat().st_mode & 0o777 == 0o600
    finally:
        terminal_1.terminate()
        assert terminal_1.wait(timeout=10) == 0


@pytest.mark.ex02_5
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuchmodule.work_fn", "cannot import 'nosuchmodule'"),
        (f"{WORKFNS}:no_such_function", "has no function 'no_such_function'"),
        ("/no/such/file.py:work_fn", "no such file"),
        ("justaname", "expected module.function"),
    ],
)
def test_a_bad_work_fn_fails_at_start_with_a_clear_message(
    env: dict[str, str], spec: str, message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "miniray.worker_server", "--port", "0", "--work-fn", spec],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=os.path.dirname(WORKFNS),
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "MINIRAY_READY" not in result.stdout


@pytest.mark.ex02_3
def test_a_connection_beyond_workers_is_told_server_full(env: dict[str, str]) -> None:
    from miniray import ServerFull

    server = ServerProcess("echo", "--workers", "1", env=env)
    try:
        first = connect(server)
        started = time.monotonic()
        with pytest.raises(ServerFull):
            connect(server)
        assert time.monotonic() - started < 5
        first.close()  # type: ignore[attr-defined]
        # The slot frees once the server reaps the worker: at once, or 5 s on a loaded
        # machine; less than the 10 s a learner's run gives the test, so a server that never
        # reaps fails here, with this message, not at the run's timeout.
        deadline = time.monotonic() + 5
        while True:
            try:
                assert_serves(server)
                break
            except ServerFull:
                assert time.monotonic() < deadline, "the slot never came back"
                time.sleep(0.05)
    finally:
        assert server.stop() == 0


@pytest.mark.ex02_3
def test_a_worker_holds_none_of_its_siblings_descriptors(env: dict[str, str]) -> None:
    """Each worker is forked while the earlier ones run: one that kept a sibling's
    connection or pidfd would hold that client's stream open, and leak with every fork."""
    server = ServerProcess("report_open_fds", "--workers", "3", env=env)
    workers = []
    try:
        for _ in range(3):
            workers.append(connect(server))
        counts = [w.recv(timeout=10) for w in workers]  # type: ignore[attr-defined]
        assert counts == [counts[0]] * 3, f"descriptors of the 1st, 2nd, 3rd worker: {counts}"
    finally:
        for worker in workers:
            worker.close()  # type: ignore[attr-defined]
        assert server.stop() == 0


@pytest.mark.ex02_1
def test_a_wrong_secret_is_refused_and_logged_and_the_server_goes_on(
    echo_server: ServerProcess,
) -> None:
    from miniray import AuthenticationError

    with pytest.raises(AuthenticationError, match="rejected our secret"):
        connect(echo_server, secret="not-the-secret-at-all-000")
    assert_serves(echo_server)
    assert echo_server.stop() == 0
    assert "refused unauthenticated connections: 1 (1 wrong secret) from 127.0.0.1" in (
        echo_server.stderr()
    )


def test_refused_connection_says_is_the_server_running() -> None:
    from miniray import RemoteWorker, ServerUnreachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: refused
        with pytest.raises(ServerUnreachable, match="is the WorkerServer running"):
            RemoteWorker("127.0.0.1", port, secret=SECRET, connect_timeout=2)


@pytest.mark.ex02_2
@pytest.mark.parametrize(
    ("speech", "shown"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "b'HTTP/1.1 400 Bad Request"),  # 29 bytes, hang up
        (b"SSH-2.0-OpenSSH_9.2p1\r\n", "b'SSH-2.0-OpenSSH_9.2p1"),  # then silence
        (b"", "b''"),  # accept and hang up at once
    ],
    ids=["http", "ssh-banner", "hang-up"],
)
def test_a_peer_that_is_not_a_miniray_server_is_named_at_once(speech: bytes, shown: str) -> None:
    import threading

    from miniray import RemoteWorker, ServerUnreachable

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def speak() -> None:
            conn, _ = listener.accept()
            conn.sendall(speech)
            if speech.startswith(b"SSH"):
                time.sleep(3)  # an SSH server waits for the client's banner
            conn.close()

        threading.Thread(target=speak, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(ServerUnreachable) as caught:
            RemoteWorker("127.0.0.1", port, secret=SECRET, connect_timeout=2)
        assert time.monotonic() - started < 2  # from the first bytes, not a timeout
    assert f"127.0.0.1:{port} did not answer like a MiniRay server (got {shown}" in str(
        caught.value
    )


@pytest.mark.ex02_2
def test_a_miniray_server_of_another_version_is_named_as_such() -> None:
    """Not "unreachable", and not a timeout: the greeting carries the protocol's version."""
    import threading

    from miniray import ProtocolError, RemoteWorker
    from miniray.auth import GREETING_SIZE, PROTOCOL

    other = b"9" if PROTOCOL != b"9" else b"8"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def greet() -> None:
            conn, _ = listener.accept()
            conn.sendall((b"MINIRAY" + other).ljust(GREETING_SIZE, b"\0"))
            time.sleep(3)  # then silence: only the greeting may tell the client
            conn.close()

        threading.Thread(target=greet, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(ProtocolError) as caught:
            RemoteWorker("127.0.0.1", port, secret=SECRET, connect_timeout=2)
        assert time.monotonic() - started < 2
    assert str(caught.value) == (
        f"127.0.0.1:{port} speaks MiniRay protocol {other.decode()} and we speak "
        f"{PROTOCOL.decode()}: run the same MiniRay version on both ends"
    )


def test_a_silent_server_times_out_instead_of_hanging() -> None:
    from miniray import RemoteWorker

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
            RemoteWorker("127.0.0.1", port, secret=SECRET, connect_timeout=0.5)
        assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    "attack",
    [
        b"",  # connect, send nothing, hang up
        os.urandom(64),  # random bytes of exactly the answer's size
        os.urandom(10_000),  # more random bytes than the handshake reads
        adapters.frame(b"", length=2**63),  # a frame header where the answer belongs
        b"\x00" * 63,  # one byte short, then hang up mid-handshake
    ],
    ids=["nothing", "random-64", "random-10k", "length-2^63", "truncated"],
)
def test_hostile_bytes_before_authentication_break_nothing(
    echo_server: ServerProcess, attack: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", echo_server.port), timeout=5) as sock:
        greeting = sock.recv(41)
        assert greeting.startswith(b"MINIRAY")
        sock.sendall(attack)
    assert_serves(echo_server)


def test_a_client_that_sends_nothing_is_dropped_after_the_handshake_timeout(
    echo_server: ServerProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", echo_server.port), timeout=5) as sock:
        sock.recv(41)
        started = time.monotonic()
        assert sock.recv(100) == b""  # the server hangs up on us (handshake timeout: 1 s)
        assert 0.5 < time.monotonic() - started < 5
    assert_serves(echo_server)


# slow by design: more than a learner's run gives a test (10 s, tools/exercise_runs.py)
@pytest.mark.timeout(60)
@pytest.mark.ex02_1
def test_a_thousand_hostile_inputs_then_a_legitimate_client(echo_server: ServerProcess) -> None:
    @settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=200))
    def attack(data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", echo_server.port), timeout=5) as sock:
            sock.recv(41)
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # hang up mid-handshake: the server must not wait
            sock.settimeout(5)
            try:
                while sock.recv(4096):  # read the verdict (if any) until the server hangs up
                    pass
            except ConnectionResetError:
                pass

    attack()
    for _ in range(3):
        assert_serves(echo_server)


def test_a_garbled_frame_after_authentication_ends_only_that_worker(
    echo_server: ServerProcess,
) -> None:
    from miniray import RemoteError

    worker = connect(echo_server)
    adapters.raw_socket(worker._channel).sendall(adapters.frame(b"", length=2**63))  # type: ignore[attr-defined]
    with pytest.raises(RemoteError) as caught:
        worker.recv(timeout=10)  # type: ignore[attr-defined]
    assert caught.value.remote_type == "ProtocolError"
    assert_serves(echo_server)


@pytest.mark.ex02_3
def test_sigterm_stops_every_worker_and_the_server(env: dict[str, str]) -> None:
    from miniray import WorkerDied

    server = ServerProcess("sleep_forever", "--workers", "4", env=env)
    workers = [connect(server) for _ in range(3)]
    pids = [w.recv(timeout=10)["pid"] for w in workers]  # type: ignore[attr-defined]
    assert all(process_exists(pid) for pid in pids)
    assert server.stop() == 0
    assert not any(process_exists(pid) for pid in pids)
    for worker in workers:
        with pytest.raises(WorkerDied):
            worker.recv(timeout=5)  # type: ignore[attr-defined]


def test_sigint_stops_the_server_too(env: dict[str, str]) -> None:
    server = ServerProcess("sleep_forever", env=env)
    worker = connect(server)
    pid = worker.recv(timeout=10)["pid"]  # type: ignore[attr-defined]
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=10) == 0
    assert not process_exists(pid)
    server.stop()


def test_a_killed_server_takes_its_workers_with_it(env: dict[str, str]) -> None:
    from miniray import WorkerDied

    server = ServerProcess("sleep_forever", env=env)
    worker = connect(server)
    pid = worker.recv(timeout=10)["pid"]  # type: ignore[attr-defined]
    server.proc.kill()
    started = time.monotonic()
    with pytest.raises(WorkerDied):  # a ConnectionError, promptly: never a hang
        worker.recv(timeout=10)  # type: ignore[attr-defined]
    assert time.monotonic() - started < 5
    server.stop()
    deadline = time.monotonic() + 5
    while process_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process_exists(pid)


def test_a_signal_to_one_worker_leaves_its_siblings_alone(echo_server: ServerProcess) -> None:
    from miniray import WorkerDied

    doomed, sibling = connect(echo_server), connect(echo_server)
    os.kill(doomed.pid, signal.SIGTERM)  # type: ignore[attr-defined]
    with pytest.raises(WorkerDied):
        doomed.recv(timeout=10)  # type: ignore[attr-defined]
    sibling.send("fine")  # type: ignore[attr-defined]
    assert sibling.recv(timeout=10) == "fine"  # type: ignore[attr-defined]
    sibling.close()  # type: ignore[attr-defined]


@pytest.mark.library
def test_the_console_script_serves(env: dict[str, str], stage_path: Path) -> None:
    import shutil

    from miniray import RemoteWorker

    script = shutil.which("miniray-worker-server", path=os.path.dirname(sys.executable))
    if stage_path != Path(__file__).resolve().parents[2]:
        pytest.skip("the console script runs the installed package: tested in the plain run")
    if script is None:
        pytest.skip(
            f"miniray-worker-server is not installed beside {sys.executable} (pip install .)"
        )
    server = subprocess.Popen(
        [script, "--port", "0", "--work-fn", f"{WORKFNS}:echo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = json.loads(server.stdout.readline().removeprefix("MINIRAY_READY "))["port"]
        with RemoteWorker("127.0.0.1", port, secret=SECRET) as worker:
            worker.send("via the console script")
            assert worker.recv(timeout=10) == "via the console script"
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0


def test_connections_have_keepalives_so_a_vanished_host_is_noticed(
    echo_server: ServerProcess,
) -> None:
    worker = connect(echo_server)
    sock = adapters.raw_socket(worker._channel)  # type: ignore[attr-defined]
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
    probes = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
    interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
    assert idle + probes * interval <= 60  # gives up on a silent peer within a minute
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    worker.close()  # type: ignore[attr-defined]


def test_the_stop_log_counts_its_workers_in_words(env: dict[str, str]) -> None:
    server = ServerProcess("echo", env=env)
    worker = connect(server)
    worker.send("hello")  # type: ignore[attr-defined]
    assert worker.recv(timeout=10) == "hello"  # type: ignore[attr-defined]
    assert server.stop() == 0
    worker.close(timeout=2)  # type: ignore[attr-defined]
    assert "stopping: 1 worker\n" in server.stderr()


@pytest.mark.parametrize(
    ("port", "error", "says"),
    [
        (70000, ValueError, "port 70000 is not in 1-65535"),
        (0, ValueError, "port 0 is not in 1-65535"),
        ("8000", TypeError, "port must be an int"),
        (True, TypeError, "port must be an int"),
    ],
)
def test_a_client_given_a_bad_port_says_so_before_connecting(
    port: object, error: type[Exception], says: str
) -> None:
    from miniray import RemoteWorker

    with pytest.raises(error, match=says):
        RemoteWorker("127.0.0.1", port, secret=SECRET)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "error", "says"),
    [
        (None, TypeError, "host must be a str, not None"),  # it connected to localhost
        (1, TypeError, "host must be a str, not 1"),  # getaddrinfo()'s TypeError
        ("", ValueError, "host is empty: name the server's host or address"),
    ],
)
def test_a_client_given_a_host_that_is_no_name_says_so_before_connecting(
    host: object, error: type[Exception], says: str
) -> None:
    from miniray import RemoteWorker

    with pytest.raises(error, match=re.escape(says)):
        RemoteWorker(host, 9, secret=SECRET)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("secret", "says"),
    [(1, "the secret is a str or bytes, not int"), (["s" * 20], "not list")],
)
def test_a_secret_that_is_no_text_is_a_type_error_on_both_ends(secret: object, says: str) -> None:
    from miniray import RemoteWorker, WorkerServer

    with pytest.raises(TypeError, match=re.escape(says)):  # an AttributeError about strip()
        RemoteWorker("127.0.0.1", 9, secret=secret)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape(says)):
        WorkerServer(print, secret=secret)  # type: ignore[arg-type]


def test_a_server_given_a_host_that_is_no_name_says_so() -> None:
    from miniray import WorkerServer

    with pytest.raises(TypeError, match="host must be a str, not 1"):
        WorkerServer(print, host=1, secret=SECRET)  # type: ignore[arg-type]


@pytest.mark.needs("marshal")
def test_a_server_given_one_codec_name_for_its_codecs_says_so() -> None:
    from miniray import WorkerServer

    # a str was taken as its letters: "codecs must be some of [...], not ['j', 's', 'o', 'n']"
    with pytest.raises(TypeError, match=r"codecs: a tuple of codec names, not 'json'"):
        WorkerServer(print, secret=SECRET, codecs="json")  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf"), "10"])
def test_a_client_given_a_connect_timeout_that_cannot_work_says_so(seconds: object) -> None:
    from miniray import RemoteWorker

    with pytest.raises(ValueError, match=r"connect_timeout=.*: a finite number of seconds"):
        RemoteWorker("127.0.0.1", 9, secret=SECRET, connect_timeout=seconds)  # type: ignore[arg-type]


def test_a_server_given_a_bad_port_or_work_function_says_so() -> None:
    from miniray import WorkerServer

    def workfns_echo(handle: object) -> None:
        pass

    with pytest.raises(ValueError, match=r"port 70000 is not in 0-65535 \(0: any free port\)"):
        WorkerServer(workfns_echo, port=70000, secret=SECRET)
    with pytest.raises(TypeError, match="port must be an int"):
        WorkerServer(workfns_echo, port="8000", secret=SECRET)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="work_fn must be a callable"):
        WorkerServer(42, secret=SECRET)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"max_frame must be an int, in bytes, not 2\.5"):
        WorkerServer(workfns_echo, secret=SECRET, max_frame=2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("setting", "value", "error", "says"),
    [
        ("max_workers", 0, ValueError, "max_workers=0: a count, 1 or more"),
        ("max_workers", "2", TypeError, "max_workers must be an int, not '2'"),
        ("max_workers", 2.5, TypeError, "max_workers must be an int, not 2.5"),
        ("max_workers", True, TypeError, "max_workers must be an int, not True"),
        ("max_pending", None, TypeError, "max_pending must be an int, not None"),
        ("max_pending", -1, ValueError, "max_pending=-1: a count, 1 or more"),
    ],
)
def test_a_server_given_a_bad_count_names_it(
    setting: str, value: object, error: type[Exception], says: str
) -> None:
    from miniray import WorkerServer

    with pytest.raises(error, match=re.escape(says)):
        WorkerServer(print, secret=SECRET, **{setting: value})  # type: ignore[arg-type]
