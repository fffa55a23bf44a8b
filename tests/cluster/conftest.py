"""Fixtures for the cluster tests: ``node(...)``, a NodeConfig carrying the test's tag, and
``lines``, a log sink that keeps every line. The SSH hosts (``ssh_hosts``, ``ns_hosts``,
``use_ssh_config``) and ``tag`` are shared with other folders: see tests/ssh_fixtures.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sshhosts import TESTS_DIR


@pytest.fixture
def node(tag: str) -> Any:
    """``node(host, n, **options)``: a NodeConfig whose processes carry the test's tag."""
    from miniray import NodeConfig

    def make(host: str, num_workers: int = 1, **options: Any) -> Any:
        env = {"MINIRAY_TEST_TAG": tag, **options.pop("env", {})}
        options.setdefault("cwd", str(TESTS_DIR))  # not the repo root: see TESTS_DIR
        return NodeConfig(host, num_workers=num_workers, env=env, **options)

    return make


@pytest.fixture
def lines() -> Iterator[list[Any]]:
    """A log sink for ``Cluster(log=...)`` that keeps every LogLine."""
    kept: list[Any] = []
    yield kept
