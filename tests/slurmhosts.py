"""A real SLURM on this machine, for tests: munged, slurmctld and two slurmd (NodeNames n1
and n2 on this one host), every file in a temporary folder, each daemon run by hand.

No miniray in here. ``SlurmHosts.start()`` raises `SlurmUnavailable` with the exact reason
where the daemons cannot start (not installed, not root, a daemon that exits or never
reports its nodes idle); ``close()`` cancels every job and stops every daemon, also after a
failure. Clients (srun, salloc, sinfo) need the environment of ``client_env()``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ["munged", "slurmctld", "slurmd"]
CLIENTS = ["srun", "salloc", "sinfo", "scancel", "sbatch"]


class SlurmUnavailable(RuntimeError):
    """SLURM cannot run here; the message says why."""


def slurm_missing_reason() -> str | None:
    """Why no SLURM can be started here, or None if it might."""
    missing = [name for name in DAEMONS + CLIENTS if shutil.which(name) is None]
    missing = [n for n in missing if not os.path.exists(f"/usr/sbin/{n}")]
    if missing:
        names = ", ".join(missing)
        return f"SLURM is not installed (missing {names}): apt-get install slurm-wlm munge"
    if os.geteuid() != 0:
        return "SLURM's daemons need root here (SlurmUser=root)"
    return None


def _free_ports(count: int) -> list[int]:
    """``count`` consecutive free TCP ports on loopback."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = int(s.getsockname()[1])
        if first + count > 65535:
            continue
        try:
            held = []
            for port in range(first, first + count):
                probe = socket.socket()
                held.append(probe)
                probe.bind(("127.0.0.1", port))
            return list(range(first, first + count))
        except OSError:
            continue
        finally:
            for probe in held:
                probe.close()
    raise SlurmUnavailable("no run of free ports for slurmctld and slurmd")


class SlurmHosts:
    """munged + slurmctld + slurmd n1, n2 on this host, all files under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.conf = workdir / "slurm.conf"
        self._procs: list[subprocess.Popen[bytes]] = []
        self._pid_files: list[Path] = []

    def client_env(self) -> dict[str, str]:
        """The environment for srun, salloc...: this process's, with our slurm.conf."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 30.0) -> None:
        """Start every daemon; return once sinfo shows both nodes idle (SlurmUnavailable if not)."""
        reason = slurm_missing_reason()
        if reason:
            raise SlurmUnavailable(reason)
        d = self.dir
        os.chmod(d, 0o755)  # munged checks the folders on the way to its socket
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)
        (d / "munge").mkdir(mode=0o755)
        socket_path = d / "munge" / "munge.socket"
        self._daemon(
            [
                "munged",
                f"--key-file={key}",
                "-f",
                f"--socket={socket_path}",
                f"--pid-file={d / 'munge' / 'munged.pid'}",
                f"--log-file={d / 'munge' / 'munged.log'}",
                f"--seed-file={d / 'munge' / 'seed'}",
                "-F",
            ],
            "munged",
        )
        self._wait_for(socket_path.exists, timeout, "munged made no socket", "munged")
        ctld_port, *node_ports = _free_ports(3)
        host = socket.gethostname()
        lines = [
            "ClusterName=miniray",
            f"SlurmctldHost={host}(127.0.0.1)",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={socket_path}",
            "SlurmUser=root",
            f"SlurmctldPort={ctld_port}",
            f"StateSaveLocation={d / 'state'}",
            f"SlurmdSpoolDir={d / 'spool'}/%n",
            f"SlurmctldPidFile={d / 'slurmctld.pid'}",
            f"SlurmdPidFile={d / 'slurmd'}-%n.pid",
            f"SlurmctldLogFile={d / 'slurmctld.log'}",
            f"SlurmdLogFile={d / 'slurmd'}-%n.log",
            "ProctrackType=proctrack/pgid",
            "TaskPlugin=task/none",
            "SelectType=select/linear",
            "MpiDefault=none",
            "ReturnToService=2",
            "SchedulerType=sched/builtin",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "KillWait=2",
            # Bind the daemons (and srun) to their addresses, 127.0.0.1, not to every
            # interface: nothing beyond loopback may receive the tests' traffic.
            "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny",
            f"NodeName=n[1-2] NodeHostname={host} NodeAddr=127.0.0.1 "
            f"Port=[{node_ports[0]}-{node_ports[1]}] CPUs=2 State=UNKNOWN",
            # OverSubscribe: a batch job may share the nodes with the tests' held allocation.
            "PartitionName=p Nodes=n[1-2] Default=YES State=UP MaxTime=INFINITE "
            "OverSubscribe=FORCE:4",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        (d / "state").mkdir()
        (d / "spool").mkdir()
        self._daemon(["slurmctld", "-D", "-c", "-f", str(self.conf)], "slurmctld")
        for name in ("n1", "n2"):
            self._daemon(["slurmd", "-D", "-N", name, "-f", str(self.conf)], f"slurmd-{name}")
        self._wait_for(self._nodes_idle, timeout, "the nodes never showed idle in sinfo", "")

    def _daemon(self, argv: list[str], name: str) -> None:
        log = open(self.dir / f"{name}.out", "wb")  # noqa: SIM115
        env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._procs.append(subprocess.Popen(argv, stdout=log, stderr=log, env=env))
        log.close()

    def _nodes_idle(self) -> bool:
        done = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %t"],
            capture_output=True, text=True, timeout=10, env=self.client_env(),
        )  # fmt: skip
        states = dict(line.split() for line in done.stdout.splitlines() if line.strip())
        return states.get("n1") == "idle" and states.get("n2") == "idle"

    def _wait_for(self, ready: object, timeout: float, problem: str, name: str) -> None:
        assert callable(ready)
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p for p in self._procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                said = self._tail_logs()
                raise SlurmUnavailable(f"{problem} (exited: {[p.args[0] for p in dead]}){said}")
            time.sleep(0.1)

    def _tail_logs(self) -> str:
        tails = []
        for log in sorted(self.dir.glob("*.out")) + sorted(self.dir.glob("*.log")):
            text = log.read_text(errors="replace").strip().splitlines()[-3:]
            if text:
                tails.append(f"{log.name}: " + " | ".join(text))
        return ("; " + "; ".join(tails)) if tails else ""

    def close(self) -> None:
        """Cancel every job, stop every daemon (SIGTERM, then SIGKILL after 5 s)."""
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["scancel", "--full", "--partition=p"],
                capture_output=True, timeout=10, env=self.client_env(),
            )  # fmt: skip
        for proc in reversed(self._procs):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for pid in self._stragglers():  # a slurmstepd outlives its slurmd
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _stragglers(self) -> list[int]:
        """Processes started by our daemons (their environment names our slurm.conf)."""
        needle = f"SLURM_CONF={self.conf}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                with contextlib.suppress(OSError):
                    if needle in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                        found.append(int(entry))
        return found
