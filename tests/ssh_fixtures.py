"""Real sshd hosts and a tag to find leftover processes: fixtures for every test folder
(tests/conftest.py imports them; tests/cluster and tests/run use them).

* ``ssh_hosts`` (session): one private sshd on 127.0.0.1-3, a free port, its own host key
  and authorized_keys; ssh aliases ``sshnode`` (127.0.0.1), ``node1`` (127.0.0.2), ``node2``
  (127.0.0.3), ``node1.local`` and ``node2.local`` (the same two), ``wrongkey`` (no key
  of ours) and ``deadhost`` (a port nobody listens on).
* ``ns_hosts`` (session): three network namespaces ``h1``-``h3``, each a host with its own
  address and sshd; skipped, saying why, where namespaces cannot be made.
* ``use_ssh_config``: points ``MINIRAY_SSH_COMMAND`` at the hosts' ssh config.
* ``tag``: a fresh ``MINIRAY_TEST_TAG`` value; a test puts it in its processes' environment
  (tests/cluster's ``node(...)``), and checks that no process holding it is left.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from sshhosts import SshHosts, netns_missing_reason, sshd_missing_reason


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def ssh_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHosts]:
    reason = sshd_missing_reason()
    if reason:
        pytest.skip(reason)
    hosts = SshHosts(tmp_path_factory.mktemp("ssh"), os.environ["PYTHONPATH"])
    try:
        port = free_port()
        hosts.start_sshd("loopback", ["127.0.0.1", "127.0.0.2", "127.0.0.3"], port)
        for alias, address in [
            ("sshnode", "127.0.0.1"),
            ("node1", "127.0.0.2"),
            ("node2", "127.0.0.3"),
            ("node1.local", "127.0.0.2"),
            ("node2.local", "127.0.0.3"),
        ]:
            hosts.add_alias(alias, address, port)
        hosts.add_alias("wrongkey", "127.0.0.1", port, key=False)
        hosts.add_alias("deadhost", "127.0.0.1", free_port())
        hosts.wait_until_reachable(["sshnode", "node1", "node2"])
        yield hosts
    finally:
        hosts.close()


@pytest.fixture(scope="session")
def ns_hosts(ssh_hosts: SshHosts) -> list[tuple[str, str]]:
    """``[(namespace, address)]`` of hosts h1, h2, h3 (aliases in the same ssh config)."""
    reason = netns_missing_reason()
    if reason:
        pytest.skip(reason)
    made = ssh_hosts.make_namespace_hosts(3)  # torn down with ssh_hosts
    for i, (_, address) in enumerate(made, start=1):
        ssh_hosts.add_alias(f"h{i}", address, 22)
    ssh_hosts.wait_until_reachable([f"h{i}" for i in range(1, 4)])
    return made


@pytest.fixture
def use_ssh_config(ssh_hosts: SshHosts, monkeypatch: pytest.MonkeyPatch) -> SshHosts:
    monkeypatch.setenv("MINIRAY_SSH_COMMAND", f"ssh -F {ssh_hosts.ssh_config}")
    return ssh_hosts


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex
