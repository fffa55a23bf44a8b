"""Stage 4 without torch: rank configs, the environment they make, what the nodes report,
and the coordinator's side of gather, train_step and the preflight timeout (with ranks
that play their part without torch). Real clusters, real processes."""

from __future__ import annotations

import errno
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from distributed_support import EXAMPLE
from sshhosts import SshHosts, wait_for_no_processes

pytestmark = pytest.mark.needs("distributed")

ENV_NAMES = ["MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK"]
ENV_NAMES += ["LOCAL_WORLD_SIZE", "GROUP_RANK", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"]


# --- create_nccl_configs and NCCLConfig ----------------------------------------------------


def test_configs_come_in_rank_order_node_by_node() -> None:
    from miniray import create_nccl_configs

    configs = create_nccl_configs(master_addr="10.0.0.1", nodes=[("node1", 4), ("node2", 4)])
    assert [c.rank for c in configs] == list(range(8))
    assert [c.local_rank for c in configs] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert [c.group_rank for c in configs] == [0] * 4 + [1] * 4
    assert [c.host for c in configs] == ["node1"] * 4 + ["node2"] * 4
    assert {(c.world_size, c.local_world_size, c.master_addr) for c in configs} == {
        (8, 4, "10.0.0.1")
    }


def test_configs_for_uneven_nodes_and_their_interfaces() -> None:
    from miniray import create_nccl_configs

    configs = create_nccl_configs(
        "10.0.0.1", [("a", 1), ("b", 3), ("c", 2)], master_port=41000,
        socket_ifnames=["eth0", "ib0", None],
    )  # fmt: skip
    assert [(c.rank, c.local_rank, c.local_world_size, c.group_rank) for c in configs] == [
        (0, 0, 1, 0), (1, 0, 3, 1), (2, 1, 3, 1), (3, 2, 3, 1), (4, 0, 2, 2), (5, 1, 2, 2),
    ]  # fmt: skip
    assert [c.socket_ifname for c in configs] == ["eth0", "ib0", "ib0", "ib0", None, None]
    assert {c.world_size for c in configs} == {6} and {c.master_port for c in configs} == {41000}


def test_bad_configs_are_refused() -> None:
    from miniray import DistributedConfigError, NCCLConfig, create_nccl_configs

    with pytest.raises(DistributedConfigError, match=re.escape("rank 4 is not in 0..3")):
        NCCLConfig("10.0.0.1", 29500, world_size=4, rank=4, local_rank=0, local_world_size=1)
    with pytest.raises(DistributedConfigError, match="not a TCP port"):
        NCCLConfig("10.0.0.1", 0, world_size=1, rank=0, local_rank=0, local_world_size=1)
    with pytest.raises(DistributedConfigError, match="3 interface names for 2 nodes"):
        create_nccl_configs("h", [("a", 1), ("b", 1)], socket_ifnames=["x", "y", "z"])


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("master_port", "29500", "master_port must be an int, not '29500'"),
        ("world_size", 2.0, "world_size must be an int, not 2.0"),
        ("rank", True, "rank must be an int, not True"),
        ("local_rank", None, "local_rank must be an int, not None"),
        ("group_rank", "0", "group_rank must be an int, not '0'"),
        ("master_addr", 10, "master_addr must be a str, not 10"),
        ("host", ["h"], "host must be a str, not ['h']"),
        ("socket_ifname", 0, "socket_ifname must be a str or None, not 0"),
    ],
)
def test_a_config_field_of_the_wrong_type_is_refused_by_name(
    field: str, value: object, says: str
) -> None:
    # A config arrives as a message (NCCLConfig(**handle.recv())): a str port was a bare
    # TypeError from a comparison, a float world size and a bool rank were taken
    from miniray import DistributedConfigError, NCCLConfig

    fields: dict[str, object] = dict(
        master_addr="10.0.0.1", master_port=29500, world_size=2, rank=1, local_rank=0,
        local_world_size=1, group_rank=1, host="n2", socket_ifname=None,
    )  # fmt: skip
    fields[field] = value
    with pytest.raises(DistributedConfigError, match=re.escape(says)):
        NCCLConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("nodes", "says"),
    [
        ([], "a process group needs at least one node"),
        ([("a", 0)], "node a: num_workers=0: a count, 1 or more"),
        ([("a", 1), ("b", -1)], "node b: num_workers=-1: a count, 1 or more"),
        ([("a", "2")], "node a: num_workers must be an int, not '2'"),
    ],
)
def test_nodes_without_ranks_make_no_configs(nodes: list[tuple[str, object]], says: str) -> None:
    # [] and a node of 0 or -1 workers gave fewer configs than nodes, without a word
    from miniray import DistributedConfigError, create_nccl_configs

    with pytest.raises(DistributedConfigError, match=re.escape(says)):
        create_nccl_configs("10.0.0.1", nodes)  # type: ignore[arg-type]


def test_a_config_survives_the_trip_to_a_worker_and_back() -> None:
    """The original design's round trip: worker.send(config.__dict__) -> NCCLConfig(**recv())."""
    import workfns

    from miniray import NCCLConfig, Worker, create_nccl_configs

    config = create_nccl_configs("10.0.0.1", [("n1", 2), ("n2", 2)], 41234, ["eth0", "eth1"])[3]
    with Worker(workfns.echo) as worker:
        worker.send(config.__dict__)
        assert NCCLConfig(**worker.recv(timeout=10)) == config


# --- setup_nccl_env ----------------------------------------------------------------------


def env_after_setup(config: Any, preset: dict[str, str] | None = None) -> dict[str, str]:
    """Run setup_nccl_env in a fresh process; return the variables it left."""
    code = (
        "import json, os, sys\nfrom miniray import NCCLConfig, setup_nccl_env\n"
        "setup_nccl_env(NCCLConfig(**json.loads(sys.argv[1])))\n"
        f"print(json.dumps({{k: os.environ.get(k) for k in {ENV_NAMES!r}}}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(config.__dict__)],
        env={**env, **(preset or {})}, capture_output=True, text=True, check=True, timeout=30,
        cwd="/",  # not the repository root: `-c` would import its miniray, not the stage's
    )  # fmt: skip
    result: dict[str, str] = json.loads(done.stdout)
    return result


@pytest.mark.ex04_2
def test_setup_nccl_env_sets_what_init_process_group_and_the_transports_read() -> None:
    from miniray import create_nccl_configs

    config = create_nccl_configs("10.0.0.1", [("n1", 2), ("n2", 3)], 41234, ["eth0", "ib0"])[4]
    assert env_after_setup(config) == {
        "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "41234", "WORLD_SIZE": "5", "RANK": "4",
        "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "3", "GROUP_RANK": "1",
        "NCCL_SOCKET_IFNAME": "ib0", "GLOO_SOCKET_IFNAME": "ib0",
    }  # fmt: skip


@pytest.mark.ex04_2
def test_setup_nccl_env_replaces_what_an_earlier_run_left() -> None:
    """A stale MASTER_PORT or RANK (a reused process, an inherited environment) would send
    the rank to another rendezvous, as another rank: every rank variable is the config's."""
    from miniray import create_nccl_configs

    config = create_nccl_configs("10.0.0.1", [("n1", 2)], 41234)[1]
    stale = {"MASTER_ADDR": "10.9.9.9", "MASTER_PORT": "29500", "WORLD_SIZE": "8", "RANK": "5",
             "LOCAL_RANK": "5", "LOCAL_WORLD_SIZE": "8", "GROUP_RANK": "3"}  # fmt: skip
    env = env_after_setup(config, preset=stale)
    assert {k: env[k] for k in stale} == {
        "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "41234", "WORLD_SIZE": "2", "RANK": "1",
        "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0",
    }  # fmt: skip


@pytest.mark.ex04_2
def test_setup_nccl_env_without_an_interface_and_with_the_users_choice() -> None:
    from miniray import create_nccl_configs

    unknown = create_nccl_configs("10.0.0.1", [("n1", 1)])[0]
    env = env_after_setup(unknown)
    assert env["NCCL_SOCKET_IFNAME"] is None and env["GLOO_SOCKET_IFNAME"] is None
    assert env["RANK"] == "0" and env["MASTER_PORT"] == "29500"
    known = create_nccl_configs("10.0.0.1", [("n1", 1)], socket_ifnames=["eth0"])[0]
    env = env_after_setup(known, preset={"NCCL_SOCKET_IFNAME": "ib0"})
    assert env["NCCL_SOCKET_IFNAME"] == "ib0"  # the user's explicit choice wins
    assert env["GLOO_SOCKET_IFNAME"] == "eth0"


def test_import_miniray_does_not_import_torch() -> None:
    code = "import sys, miniray, miniray.preflight, miniray.training; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30,
        cwd="/",
    )  # fmt: skip
    assert done.stdout.strip() == "False"


def test_the_network_probe_writes_its_report_and_nothing_else() -> None:
    # A probe that fails is reported with its stderr: nothing of ours may crowd it there
    # (runpy warned on every run while the package imported netprobe before running it).
    done = subprocess.run(
        [sys.executable, "-m", "miniray.netprobe", "--route-to", "127.0.0.1"],
        capture_output=True, text=True, check=True, timeout=30, cwd="/",
    )  # fmt: skip
    assert done.stderr == ""
    assert done.stdout.startswith("MINIRAY_PROBE {")


# --- distributed_configs: asking the nodes -----------------------------------------------


def test_distributed_configs_on_localhost_nodes(node: Any, tag: str) -> None:
    from miniray import Cluster

    with Cluster([node("localhost", 2), node("127.0.0.1", 1)]) as cluster:
        cluster.start(work_fn="fake_ranks.echo_rank")
        configs = cluster.distributed_configs()
        port = configs[0].master_port
        assert cluster.distributed_configs()[0].master_port == port  # one port, held
        with socket.socket() as stranger, pytest.raises(OSError) as taken:
            stranger.bind(("", port))  # node 0's server holds it: no one else gets it...
        assert taken.value.errno == errno.EADDRINUSE
        with socket.create_server(("127.0.0.1", port)):  # ...but rank 0's store can listen
            pass  # there (it binds with SO_REUSEADDR, as create_server does)
        assert [(c.rank, c.local_rank, c.group_rank, c.world_size) for c in configs] == [
            (0, 0, 0, 3), (1, 1, 0, 3), (2, 0, 1, 3),
        ]  # fmt: skip
        assert {(c.master_addr, c.master_port, c.socket_ifname) for c in configs} == {
            ("127.0.0.1", port, "lo")
        }
        assert cluster.distributed_configs(master_port=12345)[2].master_port == 12345
    assert wait_for_no_processes(tag, 5.0) == []
    with socket.socket() as after:
        after.bind(("", port))  # given back with the cluster


def test_distributed_configs_over_ssh(use_ssh_config: SshHosts, node: Any, tag: str) -> None:
    from miniray import Cluster

    with Cluster([node("node1", 1), node("node2", 1)]) as cluster:
        cluster.start(work_fn="fake_ranks.echo_rank")
        configs = cluster.distributed_configs()
    assert [c.master_addr for c in configs] == ["127.0.0.2", "127.0.0.2"]  # node1, via ssh
    assert [c.socket_ifname for c in configs] == ["lo", "lo"]
    assert wait_for_no_processes(tag, 5.0) == []


def test_distributed_configs_on_namespace_hosts(
    use_ssh_config: SshHosts, ns_hosts: list[tuple[str, str]], node: Any, tag: str
) -> None:
    from miniray import Cluster

    with Cluster([node("h1", 1), node("h2", 2)]) as cluster:
        cluster.start(work_fn="fake_ranks.echo_rank")
        configs = cluster.distributed_configs()
    assert {c.master_addr for c in configs} == {ns_hosts[0][1]}  # h1's own address
    assert [c.socket_ifname for c in configs] == ["eth0", "eth0", "eth0"]
    assert wait_for_no_processes(tag, 5.0) == []


def test_a_local_first_node_with_remote_nodes_uses_our_address_as_they_see_it(
    use_ssh_config: SshHosts, node: Any, tag: str
) -> None:
    from miniray import Cluster

    with Cluster([node("localhost", 1), node("node2", 1)]) as cluster:
        cluster.start(work_fn="fake_ranks.echo_rank")
        configs = cluster.distributed_configs()
    # node2 is 127.0.0.3, reached from 127.0.0.1: that is where node2 finds us.
    assert {c.master_addr for c in configs} == {"127.0.0.1"}
    assert wait_for_no_processes(tag, 5.0) == []


# --- gather and train_step: the coordinator's side ---------------------------------------


def numbers_in(text: str) -> set[str]:
    """The numbers a message names ("ranks 1, 2 ... 0.5 s" -> {"1", "2", "0.5"})."""
    return set(re.findall(r"\d+(?:\.\d+)?", text))


@pytest.mark.ex04_1
def test_gather_returns_replies_in_rank_order(node: Any, tag: str) -> None:
    from miniray import Cluster, gather

    with Cluster([node("localhost", 3)]) as cluster:
        workers = cluster.start(work_fn="fake_ranks.echo_rank")
        for worker in workers:
            worker.send(worker.rank * 10)
        assert gather(workers, timeout=10) == [{"rank": r, "msg": r * 10} for r in range(3)]
        with pytest.raises(TimeoutError) as caught:
            gather(workers, timeout=0.2)
        assert {"0", "1", "2"} <= numbers_in(str(caught.value)), "it names the late ranks"
    assert wait_for_no_processes(tag, 5.0) == []


@pytest.mark.ex04_1
def test_gather_names_the_rank_that_died_without_waiting_for_the_others(
    node: Any, tag: str
) -> None:
    import signal

    from miniray import Cluster, WorkerDied, gather

    with Cluster([node("localhost", 2), node("127.0.0.1", 2)], stop_grace=0.5) as cluster:
        workers = cluster.start(work_fn="fake_ranks.echo_rank")
        os.kill(workers[2].pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(WorkerDied) as caught:
            gather(workers, timeout=30)  # no rank was asked anything: only the death answers
        assert time.monotonic() - started < 5
        assert caught.value.pid == workers[2].pid
        assert "2" in numbers_in(str(caught.value)) and "127.0.0.1" in str(caught.value)
    assert wait_for_no_processes(tag, 5.0) == []


# --- gather, train_step and await_phase with ranks played in this process ------------------


class ScriptedRank:
    """A rank in this process, for the coordinator's functions: the test queues what its
    ``recv`` returns, or the error it raises from then on (a rank's end).  Its one wait_fd
    is readable while something is queued, as a real rank's is while a message waits.
    ``recv`` honours its timeout and counts its calls; ``send`` calls ``on_send``.
    """

    def __init__(self, rank: int, host: str) -> None:
        self.rank, self.host, self.pid = rank, host, 1000 + rank
        self._ready, self._bell = socket.socketpair()
        self._queue: list[object] = []
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self.recv_calls = 0
        self.sent: list[Any] = []
        self.on_send: Callable[[Any], None] = lambda msg: None

    def say(self, outcome: object, after: float = 0.0) -> None:
        """Queue ``outcome`` (a message, or an exception), now or ``after`` seconds."""
        if after > 0:
            timer = threading.Timer(after, self.say, [outcome])
            self._timers.append(timer)
            timer.start()
            return
        with self._lock:
            self._queue.append(outcome)
        self._bell.send(b"!")

    def recv(self, timeout: float | None = None) -> Any:
        self.recv_calls += 1
        if not select.select([self._ready], [], [], timeout)[0]:
            raise TimeoutError(f"nothing from rank {self.rank} within {timeout} s")
        with self._lock:
            outcome = self._queue[0]
            if isinstance(outcome, BaseException):
                raise outcome  # an end: every later recv raises it too
            self._queue.pop(0)
        self._ready.recv(1)
        return outcome

    def send(self, msg: Any, timeout: float | None = None) -> None:
        self.sent.append(msg)
        self.on_send(msg)

    def wait_fds(self) -> list[int]:
        return [self._ready.fileno()]

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
            timer.join(timeout=5)
        self._ready.close()
        self._bell.close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., list[ScriptedRank]]]:
    """``scripted(n, hosts=...)``: ranks 0..n-1, on the hosts given (default "node-a")."""
    made: list[ScriptedRank] = []

    def make(n: int, hosts: Sequence[str] | None = None) -> list[ScriptedRank]:
        ranks = [ScriptedRank(r, (hosts or ["node-a"] * n)[r]) for r in range(n)]
        made.extend(ranks)
        return ranks

    yield make
    for rank in made:
        rank.close()


def died(rank: ScriptedRank) -> Exception:
    from miniray import WorkerDied

    return WorkerDied(f"worker pid {rank.pid} was killed by SIGKILL", pid=rank.pid, returncode=-9)


def raised(rank: ScriptedRank, message: str) -> Exception:
    from miniray import RemoteError

    return RemoteError("RuntimeError", message, "Traceback: ...", pid=rank.pid, host=rank.host)


@pytest.mark.ex04_1
def test_gather_puts_replies_in_rank_order_whatever_order_they_arrive(
    scripted: Callable[..., list[ScriptedRank]],
) -> None:
    from miniray import gather

    ranks = scripted(3)
    for rank, after in zip(ranks, (0.3, 0.2, 0.1), strict=True):
        rank.say({"rank": rank.rank}, after=after)  # rank 2 first, rank 0 last
    assert gather(ranks, timeout=10) == [{"rank": 0}, {"rank": 1}, {"rank": 2}]


@pytest.mark.ex04_1
def test_gather_stops_at_a_death_while_the_others_are_silent(
    scripted: Callable[..., list[ScriptedRank]],
) -> None:
    """The living ranks sit in a collective that waits for the dead one: they never answer."""
    from miniray import WorkerDied, gather

    ranks = scripted(3, hosts=["node-a", "node-b", "node-c"])
    ranks[1].say(died(ranks[1]))
    started = time.monotonic()
    with pytest.raises(WorkerDied) as caught:
        gather(ranks, timeout=5)
    assert time.monotonic() - started < 2.5
    assert caught.value.pid == ranks[1].pid
    assert "1" in numbers_in(str(caught.value)) and "node-b" in str(caught.value)


@pytest.mark.ex04_1
def test_gather_reports_a_death_over_the_errors_it_caused(
    scripted: Callable[..., list[ScriptedRank]],
) -> None:
    """Rank 2 dies; rank 0's collective fails first because of it: the death is the news."""
    from miniray import WorkerDied, gather

    ranks = scripted(3)
    ranks[0].say(raised(ranks[0], "Connection closed by peer"))
    ranks[2].say(died(ranks[2]), after=0.3)
    with pytest.raises(WorkerDied) as caught:
        gather(ranks, timeout=10)
    assert caught.value.pid == ranks[2].pid


@pytest.mark.ex04_1
def test_gather_reports_an_error_when_no_rank_died(
    scripted: Callable[..., list[ScriptedRank]],
) -> None:
    from miniray import RemoteError, gather

    ranks = scripted(2)
    ranks[0].say({"rank": 0})
    ranks[1].say(raised(ranks[1], "bad batch"))
    with pytest.raises(RemoteError, match="bad batch") as caught:
        gather(ranks, timeout=10)
    assert caught.value.pid == ranks[1].pid


@pytest.mark.ex04_1
def test_gather_sleeps_on_the_ranks_descriptors_until_its_deadline(
    scripted: Callable[..., list[ScriptedRank]],
) -> None:
    """No spinning and no sleep-polling: it looks at a rank when its descriptor says so."""
    from miniray import gather

    ranks = scripted(3)
    ranks[0].say({"rank": 0})
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        gather(ranks, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 0.5 + 2.5
    assert {"1", "2"} <= numbers_in(str(caught.value)), "it names the late ranks"
    assert "0" not in numbers_in(str(caught.value)), "rank 0 answered"
    assert max(r.recv_calls for r in ranks[1:]) <= 3, "it polled instead of waiting"


@pytest.mark.ex04_1
@pytest.mark.parametrize(
    ("timeout", "error"),
    [(-1, ValueError), ("5", TypeError), (True, TypeError)],  # were: a TimeoutError at once,
)  # a TypeError about '+', and a 1-second timeout
def test_gather_refuses_a_timeout_as_recv_does(
    scripted: Callable[..., list[ScriptedRank]], timeout: object, error: type[Exception]
) -> None:
    from miniray import gather

    ranks = scripted(2)
    ranks[0].say({"rank": 0})
    with pytest.raises(error, match="timeout must be"):
        gather(ranks, timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.ex04_3
def test_train_step_sends_each_rank_its_shard_then_steps(node: Any, tag: str) -> None:
    from miniray import Cluster, train_step
    from miniray.training import command, wait_ready

    with Cluster([node("localhost", 2), node("127.0.0.1", 2)]) as cluster:
        workers = cluster.start(work_fn="fake_ranks.arithmetic_trainer")
        wait_ready(workers, timeout=10)
        shards = [{"inputs": [[rank, rank + 2]], "targets": [[0, 0]]} for rank in range(4)]
        assert train_step(workers, shards, timeout=10) == {"loss": (1 + 2 + 3 + 4) / 4}
        assert train_step(workers, shards[::-1], timeout=10) == {"loss": 2.5}
        states = command(workers, {"cmd": "optim_step"}, timeout=10)
        assert [s["step"] for s in states] == [3, 3, 3, 3]  # one optim_step per train_step
        expected = ["forward_backward", "optim_step"] * 2 + ["optim_step"]
        assert all(s["seen"] == expected for s in states)
        assert command(workers, {"cmd": "shutdown"}, timeout=10) == [{"status": "bye"}] * 4
    assert wait_for_no_processes(tag, 5.0) == []


@pytest.mark.ex04_3
def test_train_step_reports_a_dead_rank(node: Any, tag: str) -> None:
    import signal

    from miniray import Cluster, WorkerDied, train_step
    from miniray.training import wait_ready

    with Cluster([node("localhost", 2)], stop_grace=0.5) as cluster:
        workers = cluster.start(work_fn="fake_ranks.arithmetic_trainer")
        wait_ready(workers, timeout=10)
        os.kill(workers[1].pid, signal.SIGKILL)
        with pytest.raises(WorkerDied) as caught:
            train_step(workers, [{"inputs": [[1]]}, {"inputs": [[2]]}], timeout=10)
        assert "1" in numbers_in(str(caught.value)) and "localhost" in str(caught.value)
        assert caught.value.pid == workers[1].pid
    assert wait_for_no_processes(tag, 5.0) == []


@pytest.mark.ex04_3
@pytest.mark.parametrize(
    ("shards", "timeout", "error", "says"),
    [
        (2, 10, ValueError, "2 shards for 3 ranks"),
        (4, 10, ValueError, "4 shards for 3 ranks"),
        (3, -1, ValueError, "timeout must be"),
        (3, "5", TypeError, "timeout must be"),
    ],
)
def test_train_step_refuses_what_cannot_work_before_any_rank_hears(
    scripted: Callable[..., list[ScriptedRank]],
    shards: int,
    timeout: object,
    error: type[Exception],
    says: str,
) -> None:
    """A step sent to some ranks only leaves them a command ahead of the others: the next
    step's replies would be this one's."""
    from miniray import train_step

    ranks = scripted(3)
    with pytest.raises(error, match=says):
        train_step(ranks, [{"inputs": [[r]]} for r in range(shards)], timeout=timeout)  # type: ignore[arg-type]
    assert [rank.sent for rank in ranks] == [[], [], []]


def test_a_command_with_a_bad_timeout_reaches_no_rank(
    scripted: Callable[..., list[ScriptedRank]],
) -> None:
    from miniray.training import command

    ranks = scripted(2)
    with pytest.raises(ValueError, match="timeout must be"):
        command(ranks, {"cmd": "optim_step"}, timeout=-1)
    assert [rank.sent for rank in ranks] == [[], []]


# --- the preflight's timeout, with ranks that hang where real ones do ----------------------


@pytest.mark.ex04_3
@pytest.mark.parametrize("slow", ["forward_backward", "optim_step"])
def test_train_step_keeps_the_timeout_in_each_phase(
    scripted: Callable[..., list[ScriptedRank]], slow: str
) -> None:
    """Rank 1 answers one command 3 s late: a phase that ignores the timeout would wait."""
    from miniray import train_step

    ranks = scripted(2)
    for rank in ranks:

        def answer(msg: Any, rank: ScriptedRank = rank) -> None:
            late = 3.0 if rank.rank == 1 and msg["cmd"] == slow else 0.0
            reply = {"loss": 1.0} if msg["cmd"] == "forward_backward" else {"step": 1}
            rank.say(reply, after=late)

        rank.on_send = answer
    shards = [{"inputs": [[0]]}, {"inputs": [[1]]}]
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        train_step(ranks, shards, timeout=0.5)
    assert time.monotonic() - started < 2.5


# slow by design: more than a learner's run gives a test (10 s, tools/exercise_runs.py)
@pytest.mark.timeout(60)
@pytest.mark.ex04_4
def test_preflight_names_the_ranks_that_did_not_join_within_its_timeout(
    node: Any, tag: str
) -> None:
    from miniray import Cluster, PreflightError, preflight

    with Cluster([node("localhost", 2), node("127.0.0.1", 1)], stop_grace=0.5) as cluster:
        cluster.start(work_fn="fake_ranks.stuck_in_init")
        configs = cluster.distributed_configs()
        started = time.monotonic()
        with pytest.raises(PreflightError) as caught:
            preflight(cluster, configs, timeout=1.5)
        elapsed = time.monotonic() - started
        assert cluster.workers == []  # the coordinator tore the ranks down
    assert 1.5 <= elapsed < 1.5 + 5  # the timeout, then the teardown
    message = str(caught.value)
    assert caught.value.missing == [1, 2]
    assert "ranks 1, 2 did not join the process group" in message
    port = configs[0].master_port
    assert f"rank 2 on 127.0.0.1: MASTER_ADDR=127.0.0.1 MASTER_PORT={port} via lo" in message
    assert "rank 0 on localhost" in message and ": ok" in message
    assert wait_for_no_processes(tag, 5.0) == []


@pytest.mark.ex04_4
def test_preflight_returns_the_backend_every_rank_got(node: Any, tag: str) -> None:
    from miniray import Cluster, gather, preflight

    with Cluster([node("localhost", 2)]) as cluster:
        workers = cluster.start(work_fn="fake_ranks.fake_preflight_ok")
        # Each rank's "joined" and "ok" arrive together: the second must not wait for more
        # bytes (a preflight that did would run into pytest's 60 s timeout).
        assert preflight(cluster, cluster.distributed_configs(), timeout=3600) == "gloo"
        assert gather(workers, timeout=10) == [{"backend": "gloo"}] * 2
    assert wait_for_no_processes(tag, 5.0) == []


def test_preflight_arguments_that_cannot_work_are_refused_before_any_rank_hears(
    node: Any, tag: str
) -> None:
    from miniray import Cluster, preflight

    with Cluster([node("localhost", 2)]) as cluster:
        cluster.start(work_fn="fake_ranks.fake_preflight_ok")
        configs = cluster.distributed_configs()
        # Each went out to the ranks first: a bogus backend reached init_process_group, a
        # negative timeout stopped the whole cluster, one config too few was zip()'s
        # ValueError after rank 0 had its config
        bad: list[tuple[dict[str, Any], str]] = [
            ({"backend": "bogus"}, "backend must be 'nccl', 'gloo' or 'auto', not 'bogus'"),
            ({"timeout": -1}, "timeout=-1: a finite number of seconds"),
            ({"configs": configs[:1]}, "1 configs for 2 ranks"),
            ({"configs": [c.__dict__ for c in configs]}, "configs are NCCLConfigs, not dict"),
        ]
        for arguments, says in bad:
            with pytest.raises(ValueError, match=re.escape(says)):
                preflight(cluster, **{"configs": configs, **arguments})
        assert preflight(cluster, configs, timeout=60) == "gloo"  # nothing was sent before
    assert wait_for_no_processes(tag, 5.0) == []


@pytest.mark.ex04_4
def test_await_phase_returns_the_phase_and_records_every_report(
    scripted: Callable[..., list[ScriptedRank]],
) -> None:
    from miniray.preflight import REPORT_KEY, await_phase

    ranks = scripted(2)
    for rank in ranks:
        rank.say({REPORT_KEY: "hello", "cuda_devices": 0})
    ranks[0].say({REPORT_KEY: "joined", "rank": 0})  # both of rank 0's reports are here
    ranks[1].say({REPORT_KEY: "joined", "rank": 1}, after=0.2)
    progress = {0: "config sent", 1: "config sent"}
    reports = await_phase(ranks, "joined", time.monotonic() + 10, progress)
    assert reports == [{REPORT_KEY: "joined", "rank": 0}, {REPORT_KEY: "joined", "rank": 1}]
    assert progress == {0: "joined", 1: "joined"}


@pytest.mark.ex04_4
def test_await_phase_records_a_failed_rank_and_stops(
    scripted: Callable[..., list[ScriptedRank]],
) -> None:
    """The error's first line goes into progress: the PreflightError shows it for that rank."""
    from miniray.preflight import REPORT_KEY, _Stalled, await_phase

    ranks = scripted(2)
    ranks[0].say({REPORT_KEY: "hello", "cuda_devices": 0})
    ranks[1].say(raised(ranks[1], "No module named 'torch'"))
    progress = {0: "config sent", 1: "config sent"}
    started = time.monotonic()
    with pytest.raises(_Stalled):
        await_phase(ranks, "hello", time.monotonic() + 10, progress)
    assert time.monotonic() - started < 2.5
    assert progress[0] == "hello"
    assert progress[1].startswith("failed: ") and "No module named 'torch'" in progress[1]


@pytest.mark.ex04_4
def test_await_phase_sleeps_on_the_ranks_descriptors_until_its_deadline(
    scripted: Callable[..., list[ScriptedRank]],
) -> None:
    from miniray.preflight import REPORT_KEY, _Stalled, await_phase

    ranks = scripted(3)
    ranks[0].say({REPORT_KEY: "hello", "cuda_devices": 0})
    progress = {r.rank: "config sent" for r in ranks}
    started = time.monotonic()
    with pytest.raises(_Stalled):
        await_phase(ranks, "hello", started + 0.5, progress)
    assert 0.5 <= time.monotonic() - started < 0.5 + 2.5
    assert progress == {0: "hello", 1: "config sent", 2: "config sent"}
    assert max(r.recv_calls for r in ranks[1:]) <= 3, "it polled instead of waiting"


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--steps", "-2", "is not a whole number >= 1"),
        ("--workers-per-node", "0", "is not a whole number >= 1"),
        ("--batch-per-rank", "0", "is not a whole number >= 1"),
        ("--save-every", "x", "is not a whole number >= 0"),
        ("--timeout", "-1", "is not a number above 0"),
        ("--lr", "nan", "is not a number above 0"),
    ],
)
def test_the_example_refuses_settings_that_cannot_train(option: str, value: str, says: str) -> None:
    """Before a node starts: a zero batch crashed every rank, a negative timeout failed the
    preflight, and negative steps trained nothing and exited 0."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), f"{option}={value}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"argument {option}: {value!r} {says}" in done.stderr
