"""The launcher contract (issue 21): what each launcher runs, and how a Cluster picks one."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sshhosts import wait_for_no_processes

pytestmark = pytest.mark.needs("cluster", "run")


def test_each_launcher_is_an_argv_prefix_before_the_same_shell_command() -> None:
    from miniray import NodeConfig
    from miniray.launchers import get_launcher

    command = "cd /tmp && exec python -m miniray.cluster_server"
    node = NodeConfig("n2", user="me")
    assert get_launcher("local", "n2").argv(node, command, 10) == ["/bin/sh", "-c", command]
    ssh = get_launcher(None, "n2").argv(node, command, 10)
    assert ssh[0] == "ssh" and ssh[-2:] == ["n2", command] and "me" in ssh
    assert get_launcher("srun", "n2").argv(node, command, 10) == [
        "srun", "--nodes=1", "--ntasks=1", "-w", "n2", "--overlap", "--quiet",
        "/bin/sh", "-c", command,
    ]  # fmt: skip
    template = ["kubectl", "exec", "-i", "{host}", "--"]
    assert get_launcher(template, "n2").argv(node, command, 10) == [
        "kubectl", "exec", "-i", "n2", "--", "/bin/sh", "-c", command,
    ]  # fmt: skip
    assert get_launcher(None, "localhost").name == "local"


def test_an_unknown_launcher_or_an_empty_template_is_a_config_error() -> None:
    from miniray import Cluster, ConfigError, NodeConfig

    with pytest.raises(ConfigError, match="unknown launcher 'slurm'"):
        NodeConfig("n1", launcher="slurm")
    with pytest.raises(ConfigError, match="non-empty list"):
        NodeConfig("n1", launcher=[])
    with pytest.raises(ConfigError, match="unknown launcher"):
        Cluster([NodeConfig("n1")], launcher="kubectl exec")  # a template is a list


def test_a_cluster_s_launcher_applies_to_nodes_that_name_none() -> None:
    from miniray import Cluster, NodeConfig

    nodes = [NodeConfig("n1"), NodeConfig("n2", launcher="ssh")]
    cluster = Cluster(nodes, launcher="srun")
    assert [n.get_launcher().name for n in cluster.nodes] == ["srun", "ssh"]
    assert [n.get_launcher().name for n in Cluster(nodes).nodes] == ["ssh", "ssh"]


def test_the_local_launcher_runs_a_node_of_any_name_here(
    node: Any, tag: str, lines: list[Any]
) -> None:
    from miniray import Cluster

    with Cluster([node("n1", 2), node("n2", 1)], launcher="local", log=lines.append) as cluster:
        workers = cluster.start(work_fn="cluster_workfns.whoami")
        for worker in workers:
            worker.send("hi")
        answers = [worker.recv(timeout=10) for worker in workers]
    assert [a["env"]["RANK"] for a in answers] == ["0", "1", "2"]
    assert [a["env"]["MINIRAY_HOST"] for a in answers] == ["n1", "n1", "n2"]
    assert [w.address for w in workers] == ["127.0.0.1"] * 3
    assert wait_for_no_processes(tag, 5.0) == []


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ((0, 1), "num_nodes=0: a count, 1 or more"),
        ((2, "2"), "workers_per_node must be an int, not '2'"),
        ((True, 1), "num_nodes must be an int, not True"),
        ((2, 1.5), "workers_per_node must be an int, not 1.5"),
    ],
)
def test_on_ray_refuses_a_count_that_is_not_one_before_it_connects(
    arguments: tuple[object, object], says: str
) -> None:
    from miniray import Cluster, ConfigError

    # Before anything reaches Ray: "2" and 1.5 failed in a comparison, True was one node
    with pytest.raises(ConfigError, match=f"Cluster.on_ray: {re.escape(says)}"):
        Cluster.on_ray(*arguments)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"timeout=-1: a finite number of seconds"):
        Cluster.on_ray(1, 1, timeout=-1)
    with pytest.raises(ConfigError, match="node ray-node: env: 'A B' is not a shell name"):
        Cluster.on_ray(1, 1, env={"A B": "1"})
