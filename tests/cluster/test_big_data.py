"""Real-sized data on a cluster with default settings: a 256 MiB tensor to each of 4
workers on 2 nodes and back, bit-exact, on localhost and over SSH to network-namespace
hosts; and a limit that names the Cluster when it is hit.
"""

from __future__ import annotations

from typing import Any

import pytest
from sshhosts import SshHosts, wait_for_no_processes

pytestmark = pytest.mark.needs("cluster", "buffers")

MiB = 1 << 20


def _tensor(nbytes: int) -> Any:
    """A tensor of ``nbytes`` bytes whose every 8 bytes differ (torch, else a numpy array)."""
    try:
        import torch

        return torch.arange(nbytes // 8, dtype=torch.float64)
    except ImportError:
        numpy = pytest.importorskip("numpy", reason="neither torch nor numpy is installed")
        return numpy.arange(nbytes // 8, dtype=numpy.float64)


def _as_numpy(value: Any) -> Any:
    return value.numpy() if hasattr(value, "numpy") else value


def _round_trip_each(workers: list[Any], data: Any) -> None:
    """Send ``data`` to every worker, then check each answer as it comes, one at a time
    (so at most one answer is held here beside ``data``)."""
    for worker in workers:
        worker.send({"data": data})
    for worker in workers:
        back = worker.recv(timeout=120)["data"]
        assert back.dtype == data.dtype and back.shape == data.shape
        same = _as_numpy(back) == _as_numpy(data)  # bit-exact: no NaN in an arange
        assert same.all(), f"rank {worker.rank}: the data changed on the way"
        del back


def test_256_mib_to_each_of_4_workers_on_2_local_nodes_and_back(node: Any, tag: str) -> None:
    from miniray import Cluster

    data = _tensor(256 * MiB)
    nodes = [node("localhost", 2), node("127.0.0.1", 2)]
    with Cluster(nodes, log=lambda line: None) as cluster:
        _round_trip_each(cluster.start(work_fn="tensor_workfns.echo_arrays"), data)
    assert wait_for_no_processes(tag, 10.0) == []


def test_256_mib_to_each_of_4_workers_on_2_ssh_hosts_and_back(
    use_ssh_config: SshHosts, ns_hosts: list[tuple[str, str]], node: Any, tag: str
) -> None:
    from miniray import Cluster

    data = _tensor(256 * MiB)
    with Cluster([node("h1", 2), node("h2", 2)], log=lambda line: None) as cluster:
        _round_trip_each(cluster.start(work_fn="tensor_workfns.echo_arrays"), data)
    assert wait_for_no_processes(tag, 10.0) == []
    for namespace, _ in ns_hosts[:2]:
        assert use_ssh_config.namespace_pids(namespace) <= use_ssh_config.sshd_pids()


def test_buffers_over_a_clusters_budget_name_the_cluster_and_a_node_may_set_its_own(
    node: Any, tag: str
) -> None:
    import miniray
    from miniray import Cluster

    nodes = [node("localhost", 1), node("127.0.0.1", 1, max_buffer_bytes=8 * MiB)]
    with Cluster(nodes, max_buffer_bytes=2 * MiB, log=lambda line: None) as cluster:
        first, second = cluster.start(work_fn="cluster_workfns.echo")
        message = r"4 MiB of buffers exceed max_buffer_bytes=2 MiB; not sent: pass "
        with pytest.raises(miniray.Unsendable, match=message + r"max_buffer_bytes= to Cluster"):
            first.send(bytes(4 * MiB))
        second.send(bytes(4 * MiB))  # this node's own budget: 8 MiB, on both ends
        assert second.recv(timeout=30) == bytes(4 * MiB)
        with pytest.raises(miniray.Unsendable, match=r"to NodeConfig\(\.\.\.\)"):
            second.send(bytes(9 * MiB))
        first.send("still here")  # refused before a byte was written: the worker goes on
        assert first.recv(timeout=10) == "still here"
    assert wait_for_no_processes(tag, 10.0) == []
