"""Cluster.dump_stacks: every rank's Python stack, all threads, from its node's server, on
localhost and over SSH; a stopped worker or a stopped server costs its ranks their stack,
never the caller more than its timeout. No process is left after any test."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sshhosts import SshHosts, wait_for_no_processes

pytestmark = pytest.mark.needs("run", "cluster")
FUNCTIONS = ["parked_even", "parked_odd"]  # tests/cluster_workfns.py: by the rank's parity


@contextmanager
def parked(nodes: list[Any]) -> Iterator[tuple[Any, list[int]]]:
    """A started cluster whose workers wait in ``parked_even``/``parked_odd``; their pids."""
    from miniray import Cluster

    with Cluster(nodes, log=lambda line: None) as cluster:
        workers = cluster.start(work_fn="cluster_workfns.parked_by_rank")
        pids = [w.recv(timeout=10) for w in workers]
        # A worker that has sent its pid may not be back from send() yet: wait until every
        # one waits in its function (the dumps are what is tested, from here on).
        deadline = time.monotonic() + 10
        while bad(cluster.dump_stacks(timeout=5.0)):
            assert time.monotonic() < deadline, bad(cluster.dump_stacks(timeout=5.0))
        yield cluster, pids


def wait_until_stopped(pid: int, timeout: float = 5.0) -> None:
    """Until ``pid`` is stopped (a signal is delivered some time after ``kill`` returns)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, f"pid {pid} did not stop"
        time.sleep(0.01)


def bad(stacks: list[Any]) -> list[Any]:
    """The ranks whose stack does not name their function: rank, why, the stack's start."""
    return [
        (s.rank, s.why, (s.stack or "")[:2000])
        for s in stacks
        if not names_its_function(s.stack, s.rank)
    ]


def names_its_function(stack: str | None, rank: int) -> bool:
    return stack is not None and f"in {FUNCTIONS[rank % 2]}" in stack


def test_each_ranks_stack_names_the_function_it_waits_in(
    node: Any, tag: str, tmp_path: Path
) -> None:
    from miniray import RankStack, format_rank_stacks
    from miniray.run_stacks import group_stacks

    env = {"TMPDIR": str(tmp_path)}  # where the servers make their stacks directories
    nodes = [node("localhost", 2, env=env), node("127.0.0.1", 2, env=env)]
    with parked(nodes) as (cluster, _):
        for _ in range(2):  # each dump gets fresh stacks, not the one before's again
            stacks = cluster.dump_stacks(timeout=5.0)
            assert [(s.rank, s.host) for s in stacks] == [
                (0, "localhost"), (1, "localhost"), (2, "127.0.0.1"), (3, "127.0.0.1"),
            ]  # fmt: skip
            assert bad(stacks) == []
            assert all(s.why == "" for s in stacks)
            assert all(s.stack is not None and s.stack.count("File ") < 60 for s in stacks)
            groups = group_stacks({s.rank: s.stack for s in stacks if s.stack})
            assert [ranks for ranks, _ in groups] == [[0, 2], [1, 3]]
        report = format_rank_stacks([*stacks, RankStack(9, "far", None, "no answer")])
        assert report.startswith("ranks 0,2: ")
        assert "\nranks 1,3: " in report and "in parked_odd" in report
        assert report.endswith("\nrank 9: no stack (no answer)")
        modes = [p.stat().st_mode & 0o777 for p in tmp_path.glob("miniray-stacks-*")]
        assert modes == [0o700, 0o700]  # one per node server, for its user only
    assert wait_for_no_processes(tag, 5.0) == []
    assert list(tmp_path.iterdir()) == []  # each server removed its directory


def test_a_stopped_worker_has_no_stack_and_says_why(node: Any, tag: str) -> None:
    with parked([node("localhost", 2), node("127.0.0.1", 2)]) as (cluster, pids):
        os.kill(pids[1], signal.SIGSTOP)
        try:
            wait_until_stopped(pids[1])
            started = time.monotonic()
            stacks = cluster.dump_stacks(timeout=3.0)
            assert time.monotonic() - started < 3.0
        finally:
            os.kill(pids[1], signal.SIGCONT)
        assert stacks[1].stack is None and "stopped" in stacks[1].why
        assert all(names_its_function(s.stack, s.rank) for s in stacks if s.rank != 1)
    assert wait_for_no_processes(tag, 5.0) == []


def test_a_stopped_node_server_costs_its_ranks_only_and_only_the_timeout(
    node: Any, tag: str
) -> None:
    with parked([node("localhost", 2), node("127.0.0.1", 2)]) as (cluster, _):
        server = cluster._running[1].process.proc.pid  # localhost: /bin/sh exec'd the server
        os.kill(server, signal.SIGSTOP)
        try:
            wait_until_stopped(server)
            started = time.monotonic()
            stacks = cluster.dump_stacks(timeout=1.0)
            took = time.monotonic() - started
        finally:
            os.kill(server, signal.SIGCONT)
        assert 0.9 < took < 1.5
        assert [s.why for s in stacks[2:]] == ["no answer from the node server within 1 s"] * 2
        assert [s.stack for s in stacks[2:]] == [None, None]
        assert all(names_its_function(s.stack, s.rank) for s in stacks[:2])
        # The late answer to that request is not taken for the next one's.
        again = cluster.dump_stacks(timeout=5.0)
        assert bad(again) == []
    assert wait_for_no_processes(tag, 5.0) == []


def test_not_started_means_no_stacks(node: Any) -> None:
    from miniray import Cluster

    assert Cluster([node("localhost", 1)]).dump_stacks(timeout=0.1) == []


@pytest.mark.parametrize("timeout", [-1, float("nan"), float("inf"), None, "5"])
def test_a_timeout_that_is_no_finite_number_of_seconds_is_refused(
    node: Any, timeout: object
) -> None:
    """It was taken (-1, NaN: no wait at all) or a TypeError about '+' (None, "5")."""
    from miniray import Cluster

    with pytest.raises(ValueError, match=r"timeout=.*: a finite number of seconds >= 0"):
        Cluster([node("localhost", 1)]).dump_stacks(timeout=timeout)  # type: ignore[arg-type]


def test_stacks_come_back_over_ssh_from_a_namespace_host(
    use_ssh_config: SshHosts, ns_hosts: list[tuple[str, str]], node: Any, tag: str
) -> None:
    with parked([node("h1", 2)]) as (cluster, _):
        stacks = cluster.dump_stacks(timeout=5.0)
        assert [(s.rank, s.host) for s in stacks] == [(0, "h1"), (1, "h1")]
        assert bad(stacks) == []
    assert wait_for_no_processes(tag, 5.0) == []
    assert use_ssh_config.namespace_pids(ns_hosts[0][0]) <= use_ssh_config.sshd_pids()


def test_a_node_answers_for_its_own_ranks_and_this_request_only() -> None:
    from miniray.cluster_stacks import STACKS_PREFIX, NodeStacks

    sent: list[str] = []
    node = NodeStacks("n1", [2, 3], lambda line: sent.append(line) or True)
    assert node.ask(7, 0.5) and sent == ["stacks 7 0.500"]
    for record in [
        b"not json",
        b"[" * 100_000,  # too deep for json: dropped like any garbled record
        b'{"id": 6, "stacks": {"2": "old"}, "why": {}}',  # a late answer to request 6
        b'{"id": 7, "stacks": {"2": "new", "3": null, "0": "not its rank"}, '
        b'"why": {"3": "stopped"}}',
    ]:
        node.put(STACKS_PREFIX + record)
    assert node.take(7, time.monotonic() + 1) == {2: ("new", ""), 3: (None, "stopped")}
    assert node.take(7, time.monotonic() + 0.05) is None  # nothing more came
