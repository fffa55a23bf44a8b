"""Cluster: start, ranks, logs and stop, on localhost and over real SSH (loopback sshd and
network-namespace hosts). Every test checks that no server or worker is left."""

from __future__ import annotations

import json
import re
import socket
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from sshhosts import SshHosts, processes_with_tag, wait_for_no_processes
from testutil import exclusive_port

pytestmark = pytest.mark.needs("cluster")

RANK_VARIABLES = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK"]


def ask_all(workers: list[Any], msg: Any = "hi") -> list[Any]:
    for worker in workers:
        worker.send(msg)
    return [worker.recv(timeout=10) for worker in workers]


def port_in_use(address: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((address, port)) == 0


def expected_env(node_sizes: list[tuple[str, int]]) -> list[dict[str, str]]:
    world = sum(n for _, n in node_sizes)
    envs, rank = [], 0
    for group, (host, count) in enumerate(node_sizes):
        for local in range(count):
            values = [rank, local, world, count, group]
            envs.append(
                {**dict(zip(RANK_VARIABLES, map(str, values), strict=True)), "MINIRAY_HOST": host}
            )
            rank += 1
    return envs


def test_localhost_nodes_start_in_rank_order_with_their_environment(
    node: Any, tag: str, lines: list[Any]
) -> None:
    from miniray import Cluster, ClusterWorker

    nodes = [node("localhost", 3), node("127.0.0.1", 2)]
    with Cluster(nodes, log=lines.append) as cluster:
        workers = cluster.start(work_fn="cluster_workfns.whoami")
        assert all(isinstance(w, ClusterWorker) for w in workers)
        assert [(w.rank, w.local_rank, w.host) for w in workers] == [
            (0, 0, "localhost"), (1, 1, "localhost"), (2, 2, "localhost"),
            (3, 0, "127.0.0.1"), (4, 1, "127.0.0.1"),
        ]  # fmt: skip
        answers = ask_all(workers)
        assert [a["env"] for a in answers] == expected_env([("localhost", 3), ("127.0.0.1", 2)])
        assert len({a["pid"] for a in answers}) == 5
    assert cluster.workers == []
    assert wait_for_no_processes(tag, 5.0) == []


def test_stop_is_idempotent_and_a_cluster_starts_once(node: Any, tag: str) -> None:
    from miniray import Cluster, ClusterError

    cluster = Cluster([node("localhost", 1)], log=lambda line: None)
    cluster.start(work_fn="cluster_workfns.whoami")
    with pytest.raises(ClusterError, match="already started"):
        cluster.start(work_fn="cluster_workfns.whoami")
    cluster.stop()
    cluster.stop()
    assert wait_for_no_processes(tag, 5.0) == []


def test_settings_that_cannot_work_are_refused_when_the_cluster_is_made(node: Any) -> None:
    from miniray import Cluster, ConfigError

    with pytest.raises(ConfigError, match=r"node 0 is 'localhost', not a NodeConfig"):
        Cluster(["localhost"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"a list of NodeConfigs, not one: \[NodeConfig"):
        Cluster(node("localhost", 1))
    with pytest.raises(ConfigError, match="a launcher template is a non-empty list of words"):
        Cluster([node("localhost", 1)], launcher=42)  # type: ignore[arg-type]
    for not_a_size in ("4096", 2048.5):  # a bare TypeError from a comparison; taken
        with pytest.raises(ConfigError, match=r"^max_frame must be an int, in bytes, not "):
            Cluster([node("localhost", 1)], max_frame=not_a_size)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"^node h: max_frame must be an int, in bytes"):
            node("h", 1, max_frame=not_a_size)
    with pytest.raises(ConfigError, match=r"^max_frame=100: a size in bytes, 1024 or more"):
        Cluster([node("localhost", 1)], max_frame=100)
    for name in ("start_timeout", "stop_grace", "connect_timeout"):
        for value in (-1.0, float("nan"), float("inf"), "5"):
            with pytest.raises(ConfigError, match=f"{name}=.*: a finite number of seconds"):
                Cluster([node("localhost", 1)], **{name: value})


@pytest.mark.parametrize("value", [2.5, "2", True, None, 0])
def test_a_node_s_worker_count_that_is_not_a_count_is_refused_when_it_is_made(
    value: object,
) -> None:
    from miniray import ConfigError, NodeConfig

    # "2" and None raised a bare TypeError from a comparison; 2.5 and True were taken, and
    # failed once the cluster started (range() of a float; the server's --workers True)
    with pytest.raises(
        ConfigError, match=r"node h: num_workers(=0: a count, 1 or more| must be an int, not )"
    ):
        NodeConfig("h", num_workers=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("host", 1, "bad host name 1"),
        ("host", "a b", "bad host name 'a b'"),
        ("env", {"A": 1}, "node h: env: environment names and values are str, not 'A': int"),
        ("env", {"A B": "1"}, "node h: env: 'A B' is not a shell name"),
        ("env", {"A": "x\0y"}, "node h: env: the value of A holds a NUL byte"),
        ("env", {"A": "x\ny"}, "node h: env: the value of A holds a line break"),
        ("cwd", "/a\nb", "node h: cwd must be a path (of one line), not '/a\\nb'"),
        ("env", "A=1", "node h: env must be a dict of str to str, not a str"),
        ("ssh_options", "-v", "node h: ssh_options must be a list of str, not '-v'"),
        ("ssh_options", [1], "node h: ssh_options must be a list of str, not [1]"),
        ("python", "", "node h: python must be a path (of one line), not ''"),
        ("cwd", None, "node h: cwd must be a path (of one line), not None"),
        ("user", 7, "node h: user must be a str or None, not 7"),
        ("identity_file", b"k", "node h: identity_file must be a str or None, not b'k'"),
        ("ssh_port", "22", "node h: ssh_port: port must be an int"),
        ("ssh_port", 0, "node h: ssh_port: port 0 is not in 1-65535"),
    ],
)
def test_a_node_setting_that_cannot_work_is_refused_when_the_node_is_made(
    field: str, value: object, says: str
) -> None:
    from miniray import ConfigError, NodeConfig

    # Each was taken, then failed (or, worse, did something else) once the cluster started:
    # an int host's AttributeError, env values made str, ssh_options "-v" as "-" and "v",
    # python "" as "exec: : Permission denied", an env name only at start
    arguments: dict[str, object] = {"host": "h", field: value}
    with pytest.raises(ConfigError, match=re.escape(says)):
        NodeConfig(**arguments)  # type: ignore[arg-type]


def test_more_workers_than_this_process_may_hold_sockets_for_are_refused_at_once(
    node: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo (``slots=100000``) used to fork workers on the nodes for minutes, until this
    process ran out of files: each worker holds a socket here."""
    import resource

    from miniray import Cluster, ConfigError

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1000, soft), hard))
    try:
        message = r"100001 workers on 2 nodes need .* open files here; this process may open 1000"
        with pytest.raises(ConfigError, match=message):
            Cluster([node("localhost", 100000), node("127.0.0.1", 1)])
        Cluster([node("localhost", 900)])  # within the limit: made (nothing starts yet)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_work_function_not_given_as_its_import_path_is_refused(node: Any, tag: str) -> None:
    import cluster_workfns

    from miniray import Cluster

    cluster = Cluster([node("localhost", 1)], log=lambda line: None)
    with pytest.raises(TypeError, match=r"work_fn='cluster_workfns\.whoami'"):
        cluster.start(work_fn=cluster_workfns.whoami)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="the import path each node loads"):
        cluster.start(work_fn=42)  # type: ignore[arg-type]
    assert cluster.start(work_fn="cluster_workfns.whoami")  # nothing had started
    cluster.stop()
    assert wait_for_no_processes(tag, 5.0) == []


def test_logs_arrive_line_by_line_with_rank_and_the_last_line_is_kept(
    node: Any, tag: str, lines: list[Any]
) -> None:
    from miniray import Cluster

    with Cluster([node("localhost", 2)], log=lines.append) as cluster:
        workers = cluster.start(work_fn="cluster_workfns.chatty")
        assert ask_all(workers, 50) == ["done", "done"]
    texts = {(line.rank, line.text) for line in lines if line.rank is not None}
    for rank in (0, 1):
        for i in range(50):
            assert (rank, f"line {i} of rank {rank}") in texts
            assert (rank, f"err {i} of rank {rank}") in texts
        assert (rank, f"last words of rank {rank}") in texts  # no newline, still there
    assert len([line for line in lines if line.rank is not None]) == 2 * 101
    assert wait_for_no_processes(tag, 5.0) == []


def test_logs_go_to_stderr_by_default_and_to_per_rank_files(
    node: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from miniray import Cluster

    with Cluster([node("localhost", 2)]) as cluster:
        ask_all(cluster.start(work_fn="cluster_workfns.chatty"), 1)
    err = capfd.readouterr().err
    assert "[localhost r1] line 0 of rank 1\n" in err
    assert "[localhost r0] last words of rank 0\n" in err

    with Cluster([node("localhost", 2)], log=tmp_path / "logs") as cluster:
        ask_all(cluster.start(work_fn="cluster_workfns.chatty"), 1)
    rank1 = (tmp_path / "logs" / "rank-1.log").read_text().splitlines()
    assert sorted(rank1) == sorted(["line 0 of rank 1", "err 0 of rank 1", "last words of rank 1"])


@pytest.mark.parametrize("log", [42, "", b"logs"])
def test_a_log_that_is_no_sink_nor_folder_is_refused_when_the_cluster_is_made(log: object) -> None:
    from miniray import Cluster, ConfigError, NodeConfig

    # 42 was Path()'s TypeError, and "" logged into the working directory
    says = "log: a function of a LogLine, a folder or None, not "
    with pytest.raises(ConfigError, match=re.escape(says)):
        Cluster([NodeConfig("localhost")], log=log)  # type: ignore[arg-type]


def test_a_worker_printing_50_megabytes_never_blocks(node: Any, tag: str) -> None:
    from miniray import Cluster

    counted = {"lines": 0, "bytes": 0, "whole": True}

    def count(line: Any) -> None:
        if line.rank is not None:
            counted["lines"] += 1
            counted["bytes"] += len(line.text) + 1
            counted["whole"] = counted["whole"] and line.text == str(line.rank) * 9999

    with Cluster([node("localhost", 2)], log=count) as cluster:
        workers = cluster.start(work_fn="cluster_workfns.flood")
        for worker in workers:
            worker.send(25)  # 2 workers x 25 MB
        assert [w.recv(timeout=60) for w in workers] == [2500, 2500]
    assert counted == {"lines": 5000, "bytes": 50_000_000, "whole": True}
    assert wait_for_no_processes(tag, 5.0) == []


def test_stop_kills_workers_that_ignore_end_of_file_and_says_so(
    node: Any, tag: str, caplog: pytest.LogCaptureFixture
) -> None:
    from miniray import Cluster

    with Cluster([node("localhost", 2)], log=lambda line: None, stop_grace=0.3) as cluster:
        workers = cluster.start(work_fn="cluster_workfns.stubborn")
        assert [w.recv(timeout=10) for w in workers] == ["ready", "ready"]
    assert "killed workers that did not end in time: ranks [0, 1]" in caplog.text
    assert wait_for_no_processes(tag, 5.0) == []


def test_wait_any_takes_local_workers_and_cluster_workers(node: Any, tag: str) -> None:
    import cluster_workfns

    from miniray import Cluster, Worker, wait_any

    with Cluster([node("localhost", 2)], log=lambda line: None) as cluster:
        workers = [*cluster.start(work_fn="cluster_workfns.whoami")]
        local = Worker(cluster_workfns.whoami)
        try:
            pending = {*workers, local}
            for worker in pending:
                worker.send("x")
            seen = []
            while pending:
                for worker in wait_any(pending, timeout=10):
                    assert worker.recv(timeout=0)["msg"] == "x"
                    seen.append(worker)
                    pending.discard(worker)
            assert set(seen) == {*workers, local}
        finally:
            local.close()
    assert wait_for_no_processes(tag, 5.0) == []


@pytest.mark.parametrize("hosts", [("localhost", "localhost"), ("node1.local", "node2.local")])
def test_the_first_snippet_of_the_original_design_runs(
    hosts: tuple[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Verbatim but for the host names: localhost (no SSH), or ssh aliases (loopback sshd)."""
    if hosts[0] != "localhost":
        request.getfixturevalue("use_ssh_config")
    monkeypatch = request.getfixturevalue("monkeypatch")
    (tmp_path / "module.py").write_text("def train_fn(handle):\n    handle.send(handle.recv())\n")
    monkeypatch.chdir(tmp_path)
    snippet = """
        from miniray import Cluster, NodeConfig

        # Define cluster
        cluster = Cluster(nodes=[
            NodeConfig("node1.local", num_workers=4),
            NodeConfig("node2.local", num_workers=4),
        ])

        # Launch workers (SSH + connect)
        workers = cluster.start(work_fn="module.train_fn")

        # Use them (same API as local!)
        for worker in workers:
            worker.send({"cmd": "train", "batch": batch})

        results = [w.recv() for w in workers]

        # Cleanup
        cluster.stop()
    """
    snippet = snippet.replace("node1.local", hosts[0]).replace("node2.local", hosts[1])
    scope: dict[str, Any] = {"batch": [1, 2]}
    exec(textwrap.dedent(snippet), scope)
    assert scope["results"] == [{"cmd": "train", "batch": [1, 2]}] * 8
    assert [w.host for w in scope["workers"]] == [hosts[0]] * 4 + [hosts[1]] * 4


# --- over SSH ---------------------------------------------------------------------------


def test_a_node_over_ssh_runs_its_workers_with_ranks(
    use_ssh_config: SshHosts, node: Any, tag: str, lines: list[Any]
) -> None:
    from miniray import Cluster

    nodes = [node("sshnode", 2), node("localhost", 1)]
    with Cluster(nodes, log=lines.append) as cluster:
        workers = cluster.start(work_fn="cluster_workfns.chatty")
        assert ask_all(workers, 1) == ["done"] * 3
    assert {(line.host, line.rank, line.text) for line in lines if line.rank is not None} >= {
        ("sshnode", 0, "line 0 of rank 0"),
        ("sshnode", 1, "last words of rank 1"),
        ("localhost", 2, "err 0 of rank 2"),
    }
    assert wait_for_no_processes(tag, 5.0) == []


def test_env_values_show_in_no_process_list_while_the_cluster_runs(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    """A token in ``env`` was ssh's (and srun's) last argument for the cluster's lifetime:
    every local user could read it with ``ps``. The command line travels on the lease."""
    import os
    import secrets

    from miniray import Cluster

    token = f"token-{secrets.token_hex(8)}"
    with Cluster([node("node1", 1, env={"MY_TOKEN": token})], log=lambda line: None) as cluster:
        (worker,) = cluster.start(work_fn="cluster_workfns.echo_env")
        worker.send("MY_TOKEN")
        assert worker.recv(timeout=10) == token  # it did reach the worker
        shown = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if token.encode() in f.read():
                        shown.append(pid)
            except OSError:  # gone meanwhile
                continue
        assert shown == [], f"processes showing the token in their arguments: {shown}"
    assert wait_for_no_processes(tag, 5.0) == []


def test_a_command_line_that_cannot_travel_is_refused_without_showing_it(node: Any) -> None:
    from miniray import Cluster, ClusterError

    nodes = [node("localhost", 1, env={"MY_TOKEN": "token-not-to-be-shown"})]
    with Cluster(nodes) as cluster, pytest.raises(ClusterError, match="cannot travel") as caught:
        cluster.start(work_fn="cluster_workfns.echo\nsomething")
    assert "token-not-to-be-shown" not in str(caught.value)


def test_the_second_snippet_of_the_original_design_runs_over_ssh(
    use_ssh_config: SshHosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with exclusive_port(10000):  # another stage's run of this test takes its turn
        _run_the_second_snippet(tmp_path, monkeypatch)


def _run_the_second_snippet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # node1 and node2 are ssh aliases for 127.0.0.2 and 127.0.0.3: each server binds
    # port 10000 on the address its ssh connection arrived at.
    (tmp_path / "my_module.py").write_text(
        "import os\ndef train_fn(handle):\n"
        "    handle.send({'got': handle.recv(), 'rank': os.environ['RANK']})\n"
    )
    monkeypatch.chdir(tmp_path)
    for address in ("127.0.0.2", "127.0.0.3"):
        if port_in_use(address, 10000):
            pytest.skip(f"port 10000 on {address} is taken by another program")
    snippet = """
        from miniray import Cluster, NodeConfig

        cluster = Cluster(nodes=[
            NodeConfig("node1", num_workers=4, base_port=10000),
            NodeConfig("node2", num_workers=4, base_port=10000),
        ])

        workers = cluster.start(work_fn="my_module.train_fn")

        # Use workers
        for worker in workers:
            worker.send({"cmd": "train"})

        results = [w.recv() for w in workers]
        cluster.stop()
    """
    scope: dict[str, Any] = {}
    exec(textwrap.dedent(snippet), scope)
    assert scope["results"] == [{"got": {"cmd": "train"}, "rank": str(r)} for r in range(8)]
    assert {w.address for w in scope["workers"]} == {"127.0.0.2", "127.0.0.3"}
    deadline = time.monotonic() + 5.0  # both servers are gone: their ports are free again
    while any(port_in_use(a, 10000) for a in ("127.0.0.2", "127.0.0.3")):
        assert time.monotonic() < deadline, "a server still listens on port 10000"
        time.sleep(0.05)


def test_three_namespace_hosts_each_run_their_own_workers(
    use_ssh_config: SshHosts, ns_hosts: list[tuple[str, str]], node: Any, tag: str
) -> None:
    from miniray import Cluster

    nodes = [node("h1", 2), node("h2", 1), node("h3", 2)]
    with Cluster(nodes, log=lambda line: None) as cluster:
        answers = ask_all(cluster.start(work_fn="cluster_workfns.whoami"))
        assert [a["env"] for a in answers] == expected_env([("h1", 2), ("h2", 1), ("h3", 2)])
        addresses = [address for _, address in ns_hosts]
        where = [(a["hostname"], a["address"]) for a in answers]
        assert where == [
            ("h1", addresses[0]), ("h1", addresses[0]), ("h2", addresses[1]),
            ("h3", addresses[2]), ("h3", addresses[2]),
        ]  # fmt: skip
    assert wait_for_no_processes(tag, 5.0) == []
    for namespace, _ in ns_hosts:  # nothing but the sshd is left on any host
        assert use_ssh_config.namespace_pids(namespace) <= use_ssh_config.sshd_pids()


def test_the_cluster_demo_runs(stage_path: Path) -> None:
    import os
    import subprocess
    import sys

    demo = Path(__file__).resolve().parents[2] / "examples" / "cluster_demo.py"
    env = {**os.environ, "PYTHONPATH": str(stage_path)}
    result = subprocess.run([sys.executable, str(demo)], cwd="/", env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "rank 0 on localhost: {'cmd': 'echo', 'data': 'hello rank 0'}"
    assert lines[8] == "cluster stopped: 8 workers, exit codes [0]"


def test_a_log_function_that_raises_does_not_stop_the_logs(
    node: Any, tag: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from miniray import Cluster

    def broken(line: Any) -> None:
        raise RuntimeError("full disk")

    with Cluster([node("localhost", 1)], log=broken) as cluster:
        workers = cluster.start(work_fn="cluster_workfns.chatty")
        assert ask_all(workers, 3) == ["done"]
    assert "log sink failed" in caplog.text
    assert "[localhost r0] last words of rank 0" in capfd.readouterr().err
    assert wait_for_no_processes(tag, 5.0) == []


def test_the_secret_is_in_no_command_line_and_no_environment(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    from miniray import Cluster

    secret = re.compile(rb"[0-9a-f]{64}")  # what Cluster makes: secrets.token_hex(32)
    with Cluster([node("localhost", 1), node("sshnode", 1)], log=lambda line: None) as cluster:
        ask_all(cluster.start(work_fn="cluster_workfns.whoami"))
        servers_and_workers = processes_with_tag(tag)
        assert len(servers_and_workers) == 2 + 2 + 2  # servers, their watchdogs, workers
        for pid in servers_and_workers:
            for part in ("cmdline", "environ"):
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    assert not secret.search(f.read().replace(tag.encode(), b"")), (pid, part)


@pytest.mark.parametrize("host", ["localhost", "sshnode"])
def test_a_ready_line_printed_before_the_server_s_is_skipped(
    use_ssh_config: SshHosts,
    node: Any,
    tag: str,
    host: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a login script prints comes first on the server's stdout: a fake ready line
    there must not send the coordinator, and its proof, to an address of its choosing."""
    from miniray import Cluster

    with socket.create_server(("127.0.0.1", 0)) as relay:
        fake = {"host": "127.0.0.1", "port": relay.getsockname()[1], "pid": 1, "mac": "0" * 64}
        odd = {"host": "\ud800", "port": 1, "pid": 1, "mac": "\u00e9"}  # cannot even encode
        fakes = "".join(f"MINIRAY_READY {json.dumps(line)}\n" for line in [fake, odd])
        python = tmp_path / "python"  # the node's Python, after a login script's lines
        python.write_text(f"#!/bin/sh\nprintf '%s' '{fakes}'\nexec {sys.executable} \"$@\"\n")
        python.chmod(0o755)
        nodes = [node(host, 2, python=str(python))]
        with Cluster(nodes, log=lambda line: None, connect_timeout=2) as cluster:
            answers = ask_all(cluster.start(work_fn="cluster_workfns.whoami"))
            assert [answer["env"]["RANK"] for answer in answers] == ["0", "1"]
            relay.settimeout(0)
            with pytest.raises(BlockingIOError):
                relay.accept()  # nobody connected to it
    assert caplog.text.count(f"node {host}: skipped a ready line without our MAC") == 2
    assert wait_for_no_processes(tag, 5.0) == []


def test_interrupt_raises_keyboard_interrupt_in_every_work_fn(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    from miniray import Cluster, RemoteError

    with Cluster([node("localhost", 2), node("sshnode", 1)], log=lambda line: None) as cluster:
        workers = cluster.start(work_fn="cluster_workfns.sleeper")
        assert [w.recv(timeout=10)["rank"] for w in workers] == [0, 1, 2]
        cluster.interrupt()
        for worker in workers:
            with pytest.raises(RemoteError) as caught:
                worker.recv(timeout=10)
            assert caught.value.remote_type == "KeyboardInterrupt"
    assert wait_for_no_processes(tag, 5.0) == []


def test_max_frame_reaches_every_node_server_and_worker(node: Any, tag: str) -> None:
    # A cluster's messages are as big as its max_frame allows, both ways: the node servers
    # (their --max-frame) and the coordinator's connections take it from Cluster(...).
    import miniray
    from miniray import Cluster

    big = "x" * (6 << 20)  # 6 MiB of JSON: over the 4 MiB default
    with Cluster([node("localhost", 1)], max_frame=8 << 20) as cluster:
        (worker,) = cluster.start(work_fn="cluster_workfns.echo")
        worker.send(big)
        assert worker.recv(timeout=30) == big
    with Cluster([node("localhost", 1)]) as cluster:
        (worker,) = cluster.start(work_fn="cluster_workfns.echo")
        with pytest.raises(miniray.Unsendable, match="max_frame=4194304"):
            worker.send(big)
        worker.send("still here")  # refused before a byte was written: the worker goes on
        assert worker.recv(timeout=10) == "still here"
    with pytest.raises(miniray.ConfigError, match="max_frame"):
        Cluster([node("localhost", 1)], max_frame=10)
    assert wait_for_no_processes(tag, 10) == []
