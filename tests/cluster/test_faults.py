"""Cluster faults: each one gives a typed error naming the host, within its timeout, and
leaves no server or worker process on any host (checked by the tag in their environment).

The coordinator-side faults (kill -9, Ctrl-C) run the coordinator in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from sshhosts import TESTS_DIR, SshHosts, processes_with_tag, wait_for_no_processes
from testutil import process_exists

pytestmark = pytest.mark.needs("cluster")
LEASE_END = 5.0  # seconds within which every process of a cluster must be gone
HUNG_AFTER = 5.0  # seconds past its lease after which a server's watchdog kills it


# --- start failures -------------------------------------------------------------------------


def test_an_unreachable_host_fails_the_start_and_stops_the_others(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    from miniray import Cluster, ClusterError

    cluster = Cluster([node("localhost", 2), node("deadhost", 1)], log=lambda line: None)
    with pytest.raises(ClusterError, match=r"node deadhost: .*(?s:.*)Connection refused"):
        cluster.start(work_fn="cluster_workfns.whoami")
    assert cluster.workers == []
    assert wait_for_no_processes(tag, LEASE_END) == []


def test_a_refused_key_is_a_cluster_error_with_ssh_s_words(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    from miniray import Cluster, ClusterError

    wrong = node("wrongkey", 1, identity_file=str(use_ssh_config.wrong_key))
    with pytest.raises(ClusterError, match=r"node wrongkey: (?s:.*)Permission denied"):
        Cluster([wrong], log=lambda line: None).start(work_fn="cluster_workfns.whoami")
    assert wait_for_no_processes(tag, LEASE_END) == []


def test_a_bad_work_fn_is_reported_with_the_server_s_message(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    from miniray import Cluster, ClusterError

    cluster = Cluster([node("localhost", 1), node("sshnode", 1)], log=lambda line: None)
    with pytest.raises(ClusterError) as caught:
        cluster.start(work_fn="no_such_module.train_fn")
    message = str(caught.value)
    assert "node localhost: the server did not start (exit code 2)" in message
    assert "node sshnode: the server did not start (exit code 2)" in message
    assert "cannot import 'no_such_module'" in message
    assert wait_for_no_processes(tag, LEASE_END) == []


def test_a_busy_base_port_names_the_host_and_port(node: Any, tag: str) -> None:
    from miniray import Cluster, ClusterError

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        cluster = Cluster([node("localhost", 1, base_port=port)], log=lambda line: None)
        with pytest.raises(ClusterError, match=rf"node localhost: (?s:.*)port {port} .* in use"):
            cluster.start(work_fn="cluster_workfns.whoami")
    assert wait_for_no_processes(tag, LEASE_END) == []


def test_a_server_not_ready_in_time_is_stopped(node: Any, tag: str) -> None:
    from miniray import Cluster, ClusterError

    cluster = Cluster([node("localhost", 1)], log=lambda line: None, start_timeout=0.5)
    with pytest.raises(ClusterError, match=r"did not report ready within 0\.5 s"):
        cluster.start(work_fn="cluster_slow_import.work_fn")
    assert wait_for_no_processes(tag, LEASE_END) == []


def test_bad_node_settings_are_config_errors() -> None:
    from miniray import MiniRayError, NodeConfig

    for bad in [dict(host="-oProxyCommand=x"), dict(host="a", num_workers=0),
                dict(host="a", base_port=70000), dict(host="a", base_port="8000")]:  # fmt: skip
        with pytest.raises(MiniRayError):
            NodeConfig(**bad)  # type: ignore[arg-type]


# --- faults while running ---------------------------------------------------------------


def test_a_killed_server_fails_only_its_own_workers(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    from miniray import Cluster, WorkerDied

    nodes = [node("localhost", 2), node("sshnode", 2, env={"NODE_MARK": "victim"})]
    with Cluster(nodes, log=lambda line: None) as cluster:
        workers = cluster.start(work_fn="cluster_workfns.whoami")
        victim = server_pid(tag, "NODE_MARK=victim")
        os.kill(victim, signal.SIGKILL)
        for worker in workers[2:]:
            with pytest.raises(WorkerDied):  # the connection ends without an exit report
                worker.wait(timeout=10)
            with pytest.raises(WorkerDied):
                worker.send("still there?")
        for worker in workers[:2]:
            worker.send("still there?")
            assert worker.recv(timeout=10)["msg"] == "still there?"
    assert wait_for_no_processes(tag, LEASE_END) == []


def test_a_coordinator_killed_with_sigkill_leaves_nothing_behind(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    coordinator = start_coordinator(tag, "cluster_workfns.sleeper", "time.sleep(60)")
    try:
        Lines(coordinator.stdout).wait_for("ready", timeout=30)
        assert len(processes_with_tag(tag)) == 2 + 2 + 4  # servers, their watchdogs, workers
        coordinator.kill()
        coordinator.wait(timeout=5)
    finally:
        coordinator.kill()
    assert wait_for_no_processes(tag, LEASE_END) == []


@pytest.mark.parametrize("host", ["sshnode", "localhost"])
def test_a_daemon_a_worker_started_does_not_outlive_the_cluster(
    use_ssh_config: SshHosts, node: Any, tag: str, host: str
) -> None:
    """A worker's process in a session of its own escapes the group kill that ends the
    worker; once the worker ends it is given to the node's server (a child subreaper),
    which ends it as it stops."""
    from miniray import Cluster

    with Cluster([node(host, 1)], log=lambda line: None) as cluster:
        (worker,) = cluster.start(work_fn="workfns.start_daemons")  # the contract test's
        daemon = worker.recv(timeout=30)[0]  # the one in a session of its own
        # Not processes_with_tag: its environment may read empty for a moment after exec.
        assert process_exists(daemon)
    assert wait_for_no_processes(tag, LEASE_END) == []


@pytest.mark.parametrize("host", ["sshnode", "localhost"])
def test_a_stopped_server_is_gone_soon_after_stop(
    use_ssh_config: SshHosts, node: Any, tag: str, host: str
) -> None:
    """A server that cannot run (SIGSTOP) cannot act on the end of its lease, and sshd sends
    it no signal when ssh goes: its watchdog kills it, and its workers die with it."""
    from miniray import Cluster

    nodes = [node(host, 2, env={"NODE_MARK": "victim"})]
    cluster = Cluster(nodes, log=lambda line: None, stop_grace=0.5)
    try:
        cluster.start(work_fn="cluster_workfns.sleeper")
        os.kill(server_pid(tag, "NODE_MARK=victim"), signal.SIGSTOP)
        cluster.stop()
        assert wait_for_no_processes(tag, LEASE_END) == []
    finally:
        cluster.stop()
        kill_tagged(tag)


def test_stopped_servers_of_a_coordinator_killed_with_sigkill_are_killed(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    """No coordinator is left to kill ssh or a local server: only the watchdogs can act."""
    coordinator = start_coordinator(tag, "cluster_workfns.sleeper", "time.sleep(60)")
    try:
        Lines(coordinator.stdout).wait_for("ready", timeout=30)
        stopped = servers(tag)
        assert len(stopped) == 2
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        coordinator.kill()
        coordinator.wait(timeout=5)
        assert wait_for_no_processes(tag, HUNG_AFTER + LEASE_END) == []
    finally:
        coordinator.kill()
        kill_tagged(tag)


def test_ctrl_c_once_interrupts_the_workers_and_returns_control(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    after_ready = """
        outcomes = []
        for worker in workers:
            try:
                outcomes.append(worker.recv(timeout=20))
            except RemoteError as e:
                outcomes.append(e.remote_type)
        print(json.dumps(outcomes), flush=True)
    """
    coordinator = start_coordinator(tag, "cluster_workfns.sleeper", after_ready)
    try:
        out = Lines(coordinator.stdout)
        out.wait_for("ready", timeout=30)
        coordinator.send_signal(signal.SIGINT)
        outcomes = json.loads(out.wait_for("[", timeout=20))
        assert outcomes == ["KeyboardInterrupt"] * 4
        assert out.wait_for("stopped", timeout=20)
        assert coordinator.wait(timeout=10) == 0
    finally:
        coordinator.kill()
    assert wait_for_no_processes(tag, LEASE_END) == []


def test_ctrl_c_twice_stops_the_cluster_at_once(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    after_ready = """
        workers[0].recv(timeout=60)  # never answers: the workers ignore the first Ctrl-C
    """
    coordinator = start_coordinator(tag, "cluster_workfns.unbothered", after_ready)
    try:
        out, err = Lines(coordinator.stdout), Lines(coordinator.stderr)
        out.wait_for("ready", timeout=30)
        coordinator.send_signal(signal.SIGINT)
        for _ in range(4):
            err.wait_for("ignored KeyboardInterrupt", timeout=20)
        coordinator.send_signal(signal.SIGINT)
        assert coordinator.wait(timeout=LEASE_END) != 0  # KeyboardInterrupt ended it
    finally:
        coordinator.kill()
    assert wait_for_no_processes(tag, LEASE_END) == []


def test_only_a_ctrl_c_soon_after_another_stops_the_cluster(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    """A researcher who handled one Ctrl-C long ago must not find that the next one kills
    the cluster: past the window, a Ctrl-C interrupts the workers again."""
    after_ready = """
        time.sleep(60)  # each Ctrl-C that only interrupts the workers lets this sleep go on
    """
    window = 1.0
    coordinator = start_coordinator(
        tag, "cluster_workfns.unbothered", after_ready, ctrl_c_window=window
    )
    try:
        out, err = Lines(coordinator.stdout), Lines(coordinator.stderr)
        out.wait_for("ready", timeout=30)
        coordinator.send_signal(signal.SIGINT)
        err.wait_for(f"again within {window:g} s to stop the cluster", timeout=20)
        time.sleep(window + 0.3)
        coordinator.send_signal(signal.SIGINT)  # late: it counts as a first one
        err.wait_for("Ctrl-C: interrupting the workers", timeout=20)
        assert coordinator.poll() is None
        coordinator.send_signal(signal.SIGINT)  # soon after the last one: stop
        assert coordinator.wait(timeout=LEASE_END) != 0  # KeyboardInterrupt ended it
    finally:
        coordinator.kill()
    assert wait_for_no_processes(tag, LEASE_END) == []


# --- helpers ----------------------------------------------------------------------------


def start_coordinator(
    tag: str, work_fn: str, after_ready: str, ctrl_c_window: float | None = None
) -> subprocess.Popen[str]:
    """A coordinator program: a cluster of localhost x2 and sshnode x2 running ``work_fn``;
    it prints "ready" once each worker sent its first message, then runs ``after_ready``,
    stops the cluster and prints "stopped". ``ctrl_c_window``: the cluster's, if given."""
    program = f"""
        import json
        import time
        from miniray import Cluster, NodeConfig, RemoteError
        env = {{"MINIRAY_TEST_TAG": {tag!r}}}
        nodes = [NodeConfig("localhost", num_workers=2, env=env),
                 NodeConfig("sshnode", num_workers=2, env=env)]  # cwd: tests/
        with Cluster(nodes) as cluster:
            {"" if ctrl_c_window is None else f"cluster.ctrl_c_window = {ctrl_c_window!r}"}
            workers = cluster.start(work_fn={work_fn!r})
            for worker in workers:
                worker.recv(timeout=20)
            print("ready", flush=True)
    """
    program = textwrap.dedent(program) + textwrap.indent(textwrap.dedent(after_ready), "    ")
    program += '\nprint("stopped", flush=True)\n'
    return subprocess.Popen(
        [sys.executable, "-c", program],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
        cwd=TESTS_DIR,  # so that neither it nor its nodes import the repo root's miniray
    )


class Lines:
    """The lines of a stream, read by a thread, so that a test can wait for one with a timeout."""

    def __init__(self, stream: Any) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []  # the lines wait_for has taken
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._queue.put(line)

    def wait_for(self, text: str, timeout: float) -> str:
        """The next line that contains ``text``, read within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                self.seen.append(line)
                if text in line:
                    return line
        except queue.Empty:
            lines = "".join(self.seen[-20:])  # what did come, to say why
            raise AssertionError(
                f"no line with {text!r} within {timeout} s; the last lines:\n{lines}"
            ) from None


def server_pid(tag: str, mark: str) -> int:
    """The cluster server among the tagged processes with ``mark`` in their environment."""
    marked = set()
    for pid in processes_with_tag(tag):
        with open(f"/proc/{pid}/environ", "rb") as f:
            if mark.encode() in f.read().split(b"\0"):
                marked.add(pid)
    found = [pid for pid in marked if parent(pid) not in marked]
    assert len(found) == 1, found
    return found[0]


def servers(tag: str) -> list[int]:
    """The cluster servers among the tagged processes: those whose parent is not one of
    them (their workers and watchdog are their children)."""
    tagged = set(processes_with_tag(tag))
    found = []
    for pid in tagged:
        with contextlib.suppress(OSError):  # gone meanwhile
            if parent(pid) not in tagged:
                found.append(pid)
    return found


def kill_tagged(tag: str) -> None:
    """SIGKILL what a failed test left (stopped or not), so that it holds no port."""
    for pid in processes_with_tag(tag):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_a_missing_ssh_program_is_a_cluster_error_naming_the_host(
    node: Any, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray import Cluster, ClusterError

    monkeypatch.setenv("MINIRAY_SSH_COMMAND", "/nonexistent/ssh")
    cluster = Cluster([node("localhost", 1), node("node1", 1)], log=lambda line: None)
    with pytest.raises(ClusterError, match=r"node node1: FileNotFoundError: .*/nonexistent/ssh"):
        cluster.start(work_fn="cluster_workfns.whoami")
    assert wait_for_no_processes(tag, LEASE_END) == []


def test_ctrl_c_while_starting_stops_every_node(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    program = f"""
        from miniray import Cluster, NodeConfig
        env = {{"MINIRAY_TEST_TAG": {tag!r}}}
        nodes = [NodeConfig("localhost", num_workers=1, env=env),
                 NodeConfig("sshnode", num_workers=1, env=env)]
        print("starting", flush=True)
        Cluster(nodes).start(work_fn="cluster_slow_import.work_fn")  # 3 s to import
    """
    coordinator = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(program)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=TESTS_DIR,
    )
    try:
        out, err = Lines(coordinator.stdout), Lines(coordinator.stderr)
        out.wait_for("starting", timeout=20)
        deadline = time.monotonic() + 10  # both servers are importing the slow module
        while len(servers(tag)) < 2:
            assert time.monotonic() < deadline, "the servers did not start"
            time.sleep(0.02)
        coordinator.send_signal(signal.SIGINT)
        assert coordinator.wait(timeout=LEASE_END) != 0
        err.wait_for("KeyboardInterrupt", timeout=5)
    finally:
        coordinator.kill()
    assert wait_for_no_processes(tag, LEASE_END) == []
