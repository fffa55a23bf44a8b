# @4+
"""From a started Cluster to torch.distributed: every rank's config, and gathering replies.

    configs = cluster.distributed_configs()        # asks the nodes, in parallel
    replies = gather(cluster.workers, timeout=60)  # one reply per rank, in rank order

`distributed_configs` fills in what only the nodes know, by running ``miniray.netprobe``
on each node exactly as the node's server was started (ssh, or a local shell):

* ``master_addr``: node 0's address as the other nodes reach it. That is the address the
  coordinator's ssh connection arrived at on node 0 (the same network). When node 0 is
  this machine (``localhost``) but other nodes are remote, it is this machine's address
  as the first remote node sees it (its ``$SSH_CONNECTION``).
* ``master_port``: a port node 0 found free just now, not a constant such as 29500.
* ``socket_ifname``: on each node, the interface that routes to ``master_addr``.

`gather` is the coordinator's half of a collective step: it waits for every rank, and
when one rank dies it does not wait for the others (stuck in a collective, they would
never answer): it raises `WorkerDied` naming that rank.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import time
from collections.abc import Sequence
from typing import Any, Protocol

from .channel import wait_readable
from .errors import ClusterError, MiniRayError, RemoteError, WorkerDied
from .launch import (
    remote_command,
)
from .node_config import NodeConfig, total_workers
from .rendezvous import NCCLConfig, create_nccl_configs
from .timeouts import check_timeout, deadline_after

_SETTLE = 1.0  # seconds gather waits, after a first failure, for the failure's cause


class RankedWorker(Protocol):
    """A cluster worker as `gather` sees it (`ClusterWorker` is one)."""

    rank: int
    host: str

    def recv(self, timeout: float | None = None) -> Any: ...

    def wait_fds(self) -> list[int]: ...


class StartedCluster(Protocol):
    """What `distributed_configs` reads of a started `Cluster`: its nodes and workers."""

    @property
    def nodes(self) -> Sequence[NodeConfig]: ...

    @property
    def workers(self) -> Sequence[AddressedWorker]: ...


class AddressedWorker(Protocol):
    """A cluster worker as `distributed_configs` sees it: the address it was reached at."""

    @property
    def address(self) -> str: ...

    @property
    def rendezvous_port(self) -> int | None: ...  # held by its node's server


# --8<-- [start:distributed_configs]
def distributed_configs(
    cluster: StartedCluster,
    *,
    master_addr: str | None = None,
    master_port: int | None = None,
    timeout: float = 30.0,
) -> list[NCCLConfig]:
    """Every rank's `NCCLConfig` for a started cluster, in rank order.

    Args:
        cluster: A started `Cluster`.
        master_addr: Override node 0's address (say, a faster network's).
        master_port: Override the rendezvous port (else the one node 0's server holds).
        timeout: Seconds for each node to answer.

    Raises:
        ClusterError: The cluster is not started, a node did not answer, or a node has
            no route to ``master_addr``.
    """
    nodes, workers = cluster.nodes, cluster.workers
    if len(workers) != total_workers(nodes):
        raise ClusterError("distributed_configs() needs a started cluster")
    first, addresses = 0, []
    for node in nodes:  # workers are in node order: the first of each node gives its address
        addresses.append(workers[first].address)
        first += node.num_workers
    if master_addr is None:
        master_addr = addresses[0]
        if nodes[0].is_local and not all(n.is_local for n in nodes):
            remote = next(i for i, n in enumerate(nodes) if not n.is_local)
            seen = _probe(nodes[remote], [], timeout).get("peer")
            if not isinstance(seen, str):
                raise ClusterError(f"node {nodes[remote].host} did not say where we are")
            master_addr = seen  # this machine, as the remote nodes reach it
    reports = _probe_all(nodes, master_addr, timeout)
    problems = [r["problem"] for r in reports if r.get("problem")]
    if problems:
        raise ClusterError("; ".join(problems))
    if master_port is None:
        master_port = workers[0].rendezvous_port
        if master_port is None:
            raise ClusterError(f"node {nodes[0].host}'s server holds no rendezvous port")
    return create_nccl_configs(
        master_addr,
        [(n.host, n.num_workers) for n in nodes],
        master_port=master_port,
        socket_ifnames=[r.get("ifname") for r in reports],
    )


# --8<-- [end:distributed_configs]


# --8<-- [start:gather]
def gather(workers: Sequence[RankedWorker], timeout: float | None = None) -> list[Any]:
    """One message from each worker, in the order given (rank order).

    Raises:
        WorkerDied: A rank died; names it. The other ranks are not waited for: stop the
            cluster (``with Cluster(...)`` does) to tear them down.
        RemoteError: A rank's work function raised, and no rank died within a second
            (a death would be the cause: its peers' collectives fail because of it).
        TimeoutError: Not every rank answered within ``timeout`` seconds.
        TypeError: ``timeout`` is not a number of seconds (nor None).
        ValueError: ``timeout`` is negative or NaN.
    """
    deadline = deadline_after(check_timeout(timeout))  # as recv checks it
    replies: dict[int, Any] = {}
    failures: dict[int, MiniRayError] = {}
    settle_until: float | None = None  # after a first failure: time for its cause to show
    while True:
        pending = [i for i in range(len(workers)) if i not in replies and i not in failures]
        for i in pending:
            try:
                replies[i] = workers[i].recv(timeout=0)
            except TimeoutError:
                continue
            except (WorkerDied, RemoteError) as e:
                failures[i] = e
                settle_until = settle_until or time.monotonic() + _SETTLE
        pending = [i for i in pending if i not in replies and i not in failures]
        now = time.monotonic()
        settled = settle_until is not None and now >= settle_until
        if not pending or settled or _any_died(failures):
            break
        if deadline is not None and now >= deadline:
            late = ", ".join(str(workers[i].rank) for i in pending)
            raise TimeoutError(f"ranks {late} did not answer within {timeout} s")
        waits = [t - now for t in (deadline, settle_until) if t is not None]
        fds = [fd for i in pending for fd in workers[i].wait_fds()]
        wait_readable(fds, min(waits) if waits else None)
    if failures:
        raise _root_cause(workers, failures)
    return [replies[i] for i in range(len(workers))]


# --8<-- [end:gather]


def _root_cause(workers: Sequence[RankedWorker], failures: dict[int, MiniRayError]) -> Exception:
    """A death explains its peers' collective errors, not the other way round: report it."""
    died = [i for i, e in failures.items() if isinstance(e, WorkerDied)]
    i = died[0] if died else min(failures)
    error = failures[i]
    others = ", ".join(str(workers[j].rank) for j in sorted(failures) if j != i)
    also = f" (ranks {others} failed too)" if others else ""
    where = f"rank {workers[i].rank} on {workers[i].host}"
    if isinstance(error, WorkerDied):
        return WorkerDied(f"{where}: {error}{also}", pid=error.pid, returncode=error.returncode)
    error.add_note(f"in {where}{also}")
    return error


def _any_died(failures: dict[int, MiniRayError]) -> bool:
    return any(isinstance(e, WorkerDied) for e in failures.values())


def _probe_all(
    nodes: Sequence[NodeConfig], master_addr: str, timeout: float
) -> list[dict[str, Any]]:
    """Run the probe on every node at once."""
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        futures = [pool.submit(_probe, n, ["--route-to", master_addr], timeout) for n in nodes]
        return [f.result() for f in futures]


def _probe(node: NodeConfig, args: list[str], timeout: float) -> dict[str, Any]:
    """``python -m miniray.netprobe ARGS`` on the node; its report."""
    # Imported here, not with the package: a module that ``import miniray`` has imported
    # makes ``python -m`` warn on stderr as it runs it, and that stderr is our error message.
    from .netprobe import PROBE_PREFIX

    command = remote_command(
        node.python, ["-m", "miniray.netprobe", *args], cwd=node.cwd, env=node.env
    )
    launcher = node.get_launcher()  # on the node: over ssh, srun, a template, a Ray actor
    try:
        stdout, stderr = launcher.run_command(node, command, timeout)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"node {node.host}: the network probe took over {timeout} s") from None
    for line in stdout.decode(errors="replace").splitlines():
        if line.startswith(PROBE_PREFIX):
            try:
                report = json.loads(line[len(PROBE_PREFIX) :])
            except ValueError:
                break
            if isinstance(report, dict):
                return report
            break
    said = stderr.decode(errors="replace").strip()[-2000:]
    raise ClusterError(f"node {node.host}: the network probe failed: {said}")
