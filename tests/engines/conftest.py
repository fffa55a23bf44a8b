"""Fixtures for the engine tests: the cluster tests' hosts (reused, not copied), and engines.

* ``ssh_hosts``, ``ns_hosts``, ``use_ssh_config``, ``tag``, ``node``, ``lines``: those of
  ``tests/cluster/conftest.py``, imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_CLUSTER_CONFTEST = Path(__file__).resolve().parent.parent / "cluster" / "conftest.py"
_spec = importlib.util.spec_from_file_location("miniray_tests_cluster_fixtures", _CLUSTER_CONFTEST)
assert _spec is not None and _spec.loader is not None
_cluster = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cluster)

ssh_hosts = _cluster.ssh_hosts
ns_hosts = _cluster.ns_hosts
use_ssh_config = _cluster.use_ssh_config
tag = _cluster.tag
node = _cluster.node
lines = _cluster.lines
free_port = _cluster.free_port
