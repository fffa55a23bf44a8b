"""Fixtures for the engine tests: the cluster tests' hosts (reused, not copied), and engines.

* ``node``, ``lines``: those of ``tests/cluster/conftest.py``, imported (``ssh_hosts``,
  ``ns_hosts``, ``use_ssh_config`` and ``tag`` are every test's: ``tests/ssh_fixtures.py``).
* ``engine``: each launcher in turn (``local``, ``ssh``, ``netns`` for the template
  ``ip netns exec {host}``, ``srun``, ``ray``), as an `Engine` that makes a 2-node cluster;
  skipped with the reason where this machine lacks it.
* ``slurm`` (session): munged + slurmctld + slurmd n1, n2 (``slurmhosts``), and a job of both.
* ``ray_cluster`` (session): Ray's test cluster of two nodes on this host.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from slurmhosts import SlurmHosts, SlurmUnavailable, slurm_missing_reason
from sshhosts import TESTS_DIR, SshHosts

_CLUSTER_CONFTEST = Path(__file__).resolve().parent.parent / "cluster" / "conftest.py"
_spec = importlib.util.spec_from_file_location("miniray_tests_cluster_fixtures", _CLUSTER_CONFTEST)
assert _spec is not None and _spec.loader is not None
_cluster = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cluster)

node = _cluster.node
lines = _cluster.lines

# --- engines ------------------------------------------------------------------------------

ENGINES = ["local", "ssh", "netns", "srun", "ray"]


@dataclass
class Engine:
    """One launcher under the contract suite: how to make a 2-node cluster with it.

    ``nodes``: `NodeConfig` keyword arguments (JSON-able) of the two nodes, None for Ray
    (``Cluster.on_ray``); ``env``: what the coordinator's environment needs (set here by
    the fixture, and given to coordinator subprocesses); ``ray_address``: Ray's, for Ray.
    """

    name: str
    tag: str
    nodes: list[dict[str, Any]] | None
    env: dict[str, str] = field(default_factory=dict)
    ray_address: str | None = None

    def cluster(self, workers_per_node: int, **options: Any) -> Any:
        """An unstarted Cluster of two nodes with ``workers_per_node`` each."""
        from miniray import Cluster, NodeConfig

        if self.nodes is None:
            return Cluster.on_ray(2, workers_per_node, **self._ray_options(), **options)
        configs = [NodeConfig(**spec, num_workers=workers_per_node) for spec in self.nodes]
        return Cluster(configs, **options)

    def program(self, workers_per_node: int) -> str:
        """Python source that defines ``cluster`` as ``cluster()`` does, for a subprocess."""
        if self.nodes is None:
            return (
                f"import ray\nray.init(address={self.ray_address!r})\n"
                f"cluster = Cluster.on_ray(2, {workers_per_node}, **{self._ray_options()!r})\n"
            )
        return (
            f"nodes = [NodeConfig(**spec, num_workers={workers_per_node}) "
            f"for spec in {self.nodes!r}]\ncluster = Cluster(nodes)\n"
        )

    def _ray_options(self) -> dict[str, Any]:
        env = {"MINIRAY_TEST_TAG": self.tag, "PYTHONPATH": os.environ["PYTHONPATH"]}
        return {"env": env, "cwd": str(TESTS_DIR)}


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tag: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Each launcher this machine has, in turn (skipped, saying why, where it has not)."""
    name: str = request.param
    env = {"MINIRAY_TEST_TAG": tag}
    base = {"env": env, "cwd": str(TESTS_DIR)}
    if name == "local":
        made = Engine(name, tag, [{"host": "localhost", **base}, {"host": "127.0.0.1", **base}])
    elif name == "ssh":
        hosts: SshHosts = request.getfixturevalue("ssh_hosts")
        specs = [{"host": h, **base} for h in ("node1", "node2")]
        made = Engine(name, tag, specs, {"MINIRAY_SSH_COMMAND": f"ssh -F {hosts.ssh_config}"})
    elif name == "netns":
        made_hosts: list[tuple[str, str]] = request.getfixturevalue("ns_hosts")
        template = ["ip", "netns", "exec", "{host}"]
        specs = [
            {"host": ns, "launcher": template, "address": address, **base}
            for ns, address in made_hosts[:2]
        ]
        made = Engine(name, tag, specs)
    elif name == "srun":
        slurm: tuple[SlurmHosts, str] = request.getfixturevalue("slurm")
        specs = [{"host": h, "launcher": "srun", **base} for h in ("n1", "n2")]
        coordinator_env = {"SLURM_CONF": str(slurm[0].conf), "SLURM_JOB_ID": slurm[1]}
        made = Engine(name, tag, specs, coordinator_env)
    else:
        made = Engine(name, tag, None, ray_address=request.getfixturevalue("ray_cluster"))
    for key, value in made.env.items():
        monkeypatch.setenv(key, value)
    return made


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SlurmHosts, str]]:
    """A SLURM of two nodes (n1, n2) on this host, and a job holding both (its id)."""
    reason = slurm_missing_reason()
    if reason:
        pytest.skip(reason)
    hosts = SlurmHosts(tmp_path_factory.mktemp("slurm"))
    try:
        try:
            hosts.start()
        except SlurmUnavailable as e:
            pytest.skip(f"SLURM could not start here: {e}")
        done = subprocess.run(
            ["salloc", "-N2", "--no-shell", "--time=60"],
            capture_output=True, text=True, timeout=30, env=hosts.client_env(),
        )  # fmt: skip
        granted = re.search(r"Granted job allocation (\d+)", done.stderr)
        if not granted:
            pytest.skip(f"salloc -N2 got no allocation: {done.stderr.strip()}")
        yield hosts, granted.group(1)
    finally:
        hosts.close()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A Ray cluster of two nodes on this host (one CPU each, loopback only): its address."""
    # Ray's processes, and the addresses it hands out, on 127.0.0.1: nothing else may
    # receive the tests' traffic. Read when Ray is imported.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
        from ray.cluster_utils import Cluster as RayCluster
    except ImportError:
        pytest.skip("Ray is not installed (pip install miniray[ray]; CI installs it)")
    from ray._private import ray_constants

    if ray_constants.ENABLE_RAY_CLUSTER:  # imported before this fixture set the variable
        pytest.skip("Ray was imported before the fixture: it would listen beyond loopback")
    cluster = RayCluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes(timeout=60)
        ray.init(address=cluster.address)
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()
