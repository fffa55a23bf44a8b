"""The launcher contract (issue 21): what each launcher runs, and how a Cluster picks one."""

from __future__ import annotations

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
