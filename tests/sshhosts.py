"""Real SSH hosts for tests and benchmarks: a private sshd on loopback, and network
namespaces that act as separate machines, each with its own address and sshd.

No miniray in here. Everything made here is torn down by ``close()``, also after a failure.
The client side is one ssh config file (``ssh_config``): host aliases with their address,
port and key, and host-key checking off *for these test hosts only*.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
# The folder that test nodes' servers (and coordinator subprocesses) start in. Never the
# repo root: `python -m` puts its working directory first on sys.path, and the root's own
# miniray/ would shadow the stage under test.
TESTS_DIR = Path(__file__).resolve().parent


def sshd_missing_reason() -> str | None:
    """Why no private sshd can run here, or None if one can."""
    if not os.path.exists(SSHD):
        return f"no sshd at {SSHD} (apt-get install openssh-server; .ci/run does)"
    if shutil.which("ssh") is None:
        return "no ssh client (apt-get install openssh-client)"
    return None


def netns_missing_reason() -> str | None:
    """Why network namespaces cannot be made here, or None if they can."""
    if shutil.which("ip") is None:
        return "no `ip` command (apt-get install iproute2)"
    try:
        subprocess.run(["unshare", "--net", "true"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"`unshare --net true` fails here ({e}): no network namespaces"
    return None


class SshHosts:
    """Keys, sshd processes and an ssh config for a set of test hosts."""

    def __init__(self, workdir: Path, pythonpath: str) -> None:
        self.dir = workdir
        self.pythonpath = pythonpath
        self.key = self.dir / "id_ed25519"
        self.wrong_key = self.dir / "wrong_key"
        for key in (self.key, self.wrong_key):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / "host_key")])
        (self.dir / "authorized_keys").write_text(Path(f"{self.key}.pub").read_text())
        self.ssh_config = self.dir / "ssh_config"
        self._aliases: list[str] = []
        self._sshds: list[subprocess.Popen[bytes]] = []
        self._namespaces: list[str] = []
        self._links: list[str] = []
        if os.geteuid() == 0:  # sshd started by root wants its privilege-separation folder
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

    # --- sshd ----------------------------------------------------------------------------

    def start_sshd(self, name: str, addresses: Iterable[str], port: int, netns: str = "") -> None:
        """Start an sshd listening on ``addresses``:``port`` (inside ``netns`` if given)."""
        config = self.dir / f"sshd_{name}.conf"
        lines = [f"ListenAddress {a}" for a in addresses]
        lines += [
            f"Port {port}",
            f"HostKey {self.dir / 'host_key'}",
            f"PidFile {self.dir / f'sshd_{name}.pid'}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            "LogLevel ERROR",
            # Like a node where miniray is installed: the stage under test, and tests/.
            f"SetEnv PYTHONPATH={self.pythonpath}",
        ]
        config.write_text("\n".join(lines) + "\n")
        command = [SSHD, "-D", "-e", "-f", str(config)]
        if netns:
            script = f"hostname {name} && exec {' '.join(command)}"
            command = ["ip", "netns", "exec", netns, "unshare", "--uts", "sh", "-c", script]
        log = open(self.dir / f"sshd_{name}.log", "wb")  # noqa: SIM115
        self._sshds.append(subprocess.Popen(command, stdout=log, stderr=log))
        log.close()

    def add_alias(self, alias: str, address: str, port: int, *, key: bool = True) -> None:
        """An ssh config entry: ``ssh alias`` reaches ``address:port`` as root."""
        user = getpass.getuser()
        lines = [f"Host {alias}", f"  HostName {address}", f"  Port {port}", f"  User {user}"]
        if key:
            lines.append(f"  IdentityFile {self.key}")
        lines += [
            "  IdentitiesOnly yes",
            "  StrictHostKeyChecking no",  # test hosts only: fresh host keys every run
            "  UserKnownHostsFile /dev/null",
            "  LogLevel ERROR",
        ]
        self._aliases.append("\n".join(lines))
        self.ssh_config.write_text("\n\n".join(self._aliases) + "\n")

    def wait_until_reachable(self, aliases: Iterable[str], timeout: float = 20) -> None:
        """Poll ``ssh alias true`` until each answers (sshd takes a moment to listen)."""
        deadline = time.monotonic() + timeout
        for alias in aliases:
            while True:
                result = subprocess.run(
                    ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", alias, "true"],
                    capture_output=True,
                    timeout=timeout,
                )
                if result.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ssh {alias}: {result.stderr.decode()}")
                time.sleep(0.05)

    # --- network namespaces ------------------------------------------------------------------

    def make_namespace_hosts(self, count: int) -> list[tuple[str, str]]:
        """``count`` namespaces on a bridge, each with eth0 at its own address and an sshd on
        port 22; returns ``(namespace, address)`` for each. Names are unique to this process."""
        remove_stale_namespace_hosts()
        tag = f"mr{os.getpid()}"  # interface names stay within 15 characters
        subnet = f"10.{77 + os.getpid() % 100}.{os.getpid() % 250}"
        bridge = f"{tag}br"
        _run(["ip", "link", "add", bridge, "type", "bridge"])
        self._links.append(bridge)
        _run(["ip", "addr", "add", f"{subnet}.254/24", "dev", bridge])
        _run(["ip", "link", "set", bridge, "up"])
        hosts = []
        for i in range(1, count + 1):
            namespace, veth, address = f"{tag}h{i}", f"{tag}v{i}", f"{subnet}.{i}"
            _run(["ip", "netns", "add", namespace])
            self._namespaces.append(namespace)
            _run(
                [
                    "ip",
                    "link",
                    "add",
                    veth,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    namespace,
                ]
            )
            self._links.append(veth)
            _run(["ip", "link", "set", veth, "master", bridge, "up"])
            inside = ["ip", "netns", "exec", namespace, "ip"]
            _run([*inside, "addr", "add", f"{address}/24", "dev", "eth0"])
            _run([*inside, "link", "set", "eth0", "up"])
            _run([*inside, "link", "set", "lo", "up"])
            self.start_sshd(f"h{i}", [address], 22, netns=namespace)
            hosts.append((namespace, address))
        return hosts

    def namespace_pids(self, namespace: str) -> set[int]:
        """Pids of the processes in a namespace."""
        out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
        return {int(p) for p in out.stdout.split()}

    def sshd_pids(self) -> set[int]:
        """Pids of our sshd listeners (and their `ip netns exec` wrappers)."""
        pids = {p.pid for p in self._sshds}
        for pid_file in self.dir.glob("sshd_*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pids.add(int(pid_file.read_text()))
        return pids

    # --- teardown ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every sshd, then remove links and namespaces (each step even if one fails)."""
        for namespace in self._namespaces:
            for pid in self.namespace_pids(namespace):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for sshd in self._sshds:
            with contextlib.suppress(ProcessLookupError):
                sshd.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                sshd.wait(timeout=5)
        for link in self._links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        for namespace in self._namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def remove_stale_namespace_hosts() -> None:
    """Remove the namespaces and links of earlier runs whose process died without teardown
    (say, a test run killed with SIGKILL): names ``mr<pid>...`` of a pid that is gone."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for kind, found in [
        ("netns", names.split()),
        ("link", re.findall(r"^\d+: ([^:@]+)", links, re.M)),
    ]:
        for name in found:
            match = re.fullmatch(r"mr(\d+)(?:h|v|br)\d*", name)
            if match and not os.path.exists(f"/proc/{match[1]}"):
                command = (
                    ["ip", "netns", "del", name] if kind == "netns" else ["ip", "link", "del", name]
                )
                subprocess.run(command, capture_output=True)


def processes_with_tag(tag: str) -> list[int]:
    """Live processes (not zombies) whose environment holds ``tag`` (as MINIRAY_TEST_TAG)."""
    needle = f"MINIRAY_TEST_TAG={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        found.append(int(entry))
    return found


def wait_for_no_processes(tag: str, timeout: float) -> list[int]:
    """Poll until no process has ``tag``; return those left after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (left := processes_with_tag(tag)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)
