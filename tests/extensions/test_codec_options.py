"""Choosing codecs from the outside: ``worker_server --codecs`` and ``Cluster(codec=)``.

Real processes throughout: ``python -m miniray.worker_server`` in a subprocess with a real
``RemoteWorker``, and a localhost ``Cluster`` whose node server is a new interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sshhosts import wait_for_no_processes
from testutil import ServerProcess, secret_env

pytestmark = pytest.mark.needs("marshal")

TESTS_DIR = Path(__file__).resolve().parent.parent
TYPED = {"shape": (2, 3), "blob": b"\x00\xff", 7: "int key", "nested": [(1, {2: b"x"})]}


def server_command(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m miniray.worker_server ARGS`` to its end (for --help and bad input)."""
    return subprocess.run(
        [sys.executable, "-m", "miniray.worker_server", *args],
        cwd=TESTS_DIR,  # not the repo root, whose own miniray/ would shadow the stage's
        capture_output=True,
        text=True,
        timeout=20,
    )


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def wait_for_no_children(pid: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := children_of(pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def test_help_documents_the_codecs_option() -> None:
    done = server_command("--help")
    assert done.returncode == 0, done.stderr
    assert "--codecs" in done.stdout and "json,marshal" in done.stdout


@pytest.mark.parametrize("value", ["json,pickle", "", "json,,marshal"])
def test_an_unknown_codec_name_exits_2_naming_it(value: str) -> None:
    done = server_command("--work-fn", "workfns.echo", "--port", "0", "--codecs", value)
    assert done.returncode == 2
    assert "argument --codecs:" in done.stderr and "known: json, marshal" in done.stderr
    assert "MINIRAY_READY" not in done.stdout  # it never listened
    if value == "json,pickle":
        assert "unknown codec 'pickle'" in done.stderr


def test_a_server_started_with_both_codecs_serves_marshal(tmp_path: Path) -> None:
    import miniray

    env = secret_env(str(tmp_path))
    server = ServerProcess("echo", "--codecs", "json,marshal", env=env)
    try:
        secret = (tmp_path / "secret").read_text()
        with miniray.RemoteWorker("127.0.0.1", server.port, secret=secret, codec="marshal") as w:
            w.send(TYPED)
            assert w.recv(timeout=10) == TYPED
    finally:
        assert server.stop() == 0


def test_a_json_only_server_refuses_marshal_clearly_and_keeps_nothing(tmp_path: Path) -> None:
    import miniray

    env = secret_env(str(tmp_path))
    server = ServerProcess("echo", "--codecs", "json", env=env)
    try:
        secret = (tmp_path / "secret").read_text()
        with pytest.raises(miniray.CodecRefused) as refused:
            miniray.RemoteWorker("127.0.0.1", server.port, secret=secret, codec="marshal")
        message = str(refused.value)
        assert f"127.0.0.1:{server.port} speaks only json" in message
        assert "codec='json'" in message and "--codecs json,marshal" in message
        assert refused.value.server_codecs == ("json",)
        assert wait_for_no_children(server.proc.pid, 5.0) == []  # its worker ended, reaped
        with miniray.RemoteWorker("127.0.0.1", server.port, secret=secret) as w:  # JSON: yes
            w.send((1, 2))
            assert w.recv(timeout=10) == [1, 2]
    finally:
        assert server.stop() == 0
    assert "refused codec 'marshal'" in server.stderr()


@pytest.mark.needs("cluster")
def test_a_marshal_cluster_keeps_types_on_every_worker() -> None:
    import miniray

    tag = uuid.uuid4().hex
    node = miniray.NodeConfig(
        "localhost", num_workers=2, cwd=str(TESTS_DIR), env={"MINIRAY_TEST_TAG": tag}
    )
    with miniray.Cluster([node], codec="marshal", log=lambda line: None) as cluster:
        workers = cluster.start(work_fn="workfns.echo")
        for worker in workers:
            worker.send(TYPED)
        replies = [worker.recv(timeout=10) for worker in workers]
        assert replies == [TYPED, TYPED]
        assert all(type(reply["shape"]) is tuple for reply in replies)
    assert wait_for_no_processes(tag, 5.0) == []


@pytest.mark.needs("cluster")
def test_a_cluster_with_an_unknown_codec_fails_before_launching() -> None:
    import miniray

    with pytest.raises(ValueError, match="unknown codec 'pickle'; known: json, marshal"):
        miniray.Cluster([miniray.NodeConfig("localhost")], codec="pickle")


@pytest.mark.needs("cluster")
def test_cluster_node_servers_take_codecs_too() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "miniray.cluster_server", "--help"],
        cwd=TESTS_DIR,
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ},
    )
    assert done.returncode == 0 and "--codecs" in done.stdout
