# @6+
"""The rank supervisor: the work function each cluster worker of ``miniray run`` runs.

One supervisor per rank, on the rank's node. It answers the coordinator's messages:

* ``{"probe": {}}``: this node's view, ``{"probe": {"port", "peer", "hostname"}}``: a port
  held here for rank 0's store (node 0's is ``MASTER_PORT``; see `netprobe.reserve_port`),
  held until the next probe, so that each attempt gets a fresh one; and the coordinator's
  address as seen from here (``MASTER_ADDR`` when node 0 is the coordinator's own
  machine); asked with ``{"script_dir": path}``, also ``"facts"``: this node's software,
  to compare.
* ``{"run": {"argv", "env", "cwd", "hang_after"}}``: start the rank and watch it to its end
  (`RankProcess`), then ``{"exit": code}`` (one that cannot start, such as no such
  program, says why in ``{"err": [line]}`` and ends 127 or 126, as under a shell; see
  `start_failure`). While it runs: ``{"signal": "SIGINT"}``,
  ``{"stop": grace}`` and ``{"dump": timeout}`` act on it; its output comes back as
  ``{"out": [lines]}`` / ``{"err": [lines]}``, a silence as ``{"hung": why}``, the end of
  it as ``{"alive": true}``, a stack dump as ``{"stacks": text or None, "why": ...}``.

The coordinator closing the connection ends the supervisor (``recv`` raises), and the
rank with it: nothing a rank started outlives its supervisor, not even a daemon that left
the rank's process group (see `RankProcess` and `process.become_subreaper`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from .channel import Channel
from .env_check import software_facts
from .errors import ProtocolError
from .netprobe import reserve_port, route_to, ssh_peer
from .orphans import end_orphans
from .process import become_subreaper
from .run_rank import RankProcess

BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_boot.py")
_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")


@dataclass(frozen=True)
class RunSpec:
    """What to run for one rank: the command, the variables to add, where, how patient."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    hang_after: float
    route_to: str | None = None  # MASTER_ADDR: the interface towards it goes in the env

    @classmethod
    def from_message(cls, fields: object) -> RunSpec:
        """Read a ``run`` message's fields; `ProtocolError` if they are not what we send."""
        ok = isinstance(fields, dict) and _strings(fields.get("argv")) and fields["argv"]
        env = fields.get("env") if isinstance(fields, dict) else None
        ok = ok and isinstance(env, dict) and _strings([*env, *env.values()])
        if not ok or not isinstance(fields, dict) or not isinstance(fields.get("cwd"), str):
            raise ProtocolError(f"not a run request: {fields!r:.200}")
        hang_after = fields.get("hang_after")
        if not isinstance(hang_after, (int, float)) or hang_after <= 0:
            raise ProtocolError(f"hang_after must be a positive number, not {hang_after!r}")
        target = fields.get("route_to")
        return cls(
            list(fields["argv"]),
            dict(env),  # type: ignore[arg-type]
            fields["cwd"],
            float(hang_after),
            target if isinstance(target, str) else None,
        )


def _strings(values: object) -> bool:
    return isinstance(values, list) and all(isinstance(v, str) for v in values)


# --8<-- [start:boot_argv]
def boot_argv(argv: Sequence[str]) -> tuple[list[str], bool]:
    """The command that starts a rank, and whether it runs through ``run_boot``.

    ``python train.py ARGS`` (or ``python -m pkg.mod``, or plain ``train.py ARGS``, as
    torchrun takes it) becomes ``PYTHON -u run_boot.py train.py ARGS``: this node's Python
    (a bare ``python``/``python3`` means the Python that runs MiniRay here, as torchrun uses
    its own), unbuffered as torchrun runs it. Anything else (a shell script, a binary,
    ``python -O ...``) runs as given, without stack dumps or a heartbeat.
    """
    first, rest = argv[0], list(argv[1:])
    if first.endswith(".py"):
        return [sys.executable, "-u", BOOT, *argv], True
    if _is_this_python(first) and rest and (rest[0] == "-m" or not rest[0].startswith("-")):
        return [sys.executable, "-u", BOOT, *rest], True
    return list(argv), False


# --8<-- [end:boot_argv]


def _is_this_python(word: str) -> bool:
    if not _PYTHON.fullmatch(os.path.basename(word)):
        return False
    if "/" not in word:
        return True  # a bare name: the node's Python (the one with MiniRay)
    found = shutil.which(word)
    return found is not None and os.path.realpath(found) == os.path.realpath(sys.executable)


def rank_environment(spec: RunSpec) -> dict[str, str]:
    """The rank's variables: this worker's (RANK... set by the cluster), the coordinator's
    additions, and the interface towards MASTER_ADDR unless the user chose one."""
    env = {**os.environ, **spec.env}
    if env.pop("MINIRAY_DEFAULT_OMP_NUM_THREADS", None):
        env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default, unless the node set one
    if spec.route_to:
        _, ifname, _ = route_to(spec.route_to)
        for name in ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"):
            if ifname and not env.get(name):
                env[name] = ifname
    return env


def probe(port: int, script_dir: object = None) -> dict[str, Any]:
    """This node's answer to ``probe``: a port held for rank 0's store (`reserve_port`),
    where the coordinator is, and (given the script's directory) its software
    (``env_check.software_facts``)."""
    answer: dict[str, Any] = {"port": port, "peer": ssh_peer()}
    answer["hostname"] = socket.gethostname()
    if isinstance(script_dir, str):
        answer["facts"] = software_facts(script_dir)
    return answer


def start_failure(error: OSError, spec: RunSpec) -> tuple[str, int]:
    """Why the rank could not start, and its exit status, as a shell has them: 127, nothing
    found to run (no such program, or no such folder to run it in); 126, not runnable."""
    where = f" in {spec.cwd!r}" if error.filename == spec.cwd else ""
    status = 127 if isinstance(error, FileNotFoundError) else 126
    return f"miniray run: cannot run {spec.argv[0]!r}{where}: {error.strerror}", status


def supervise(handle: Channel) -> None:
    """The work function: answer the coordinator until it hangs up (``recv`` raises)."""
    current: list[RankProcess] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        for rank in current:  # Cluster.interrupt() SIGINTs us: the rank's group gets it
            rank.signal_group(signal.Signals(signum))

    def terminate(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(143)  # the server stops us: `finally` below kills the rank's group

    signal.signal(signal.SIGINT, forward)  # Python handlers: the rank starts with defaults
    signal.signal(signal.SIGTERM, terminate)
    become_subreaper()
    held: socket.socket | None = None  # the port of our last probe answer, for rank 0's store
    try:
        while True:
            msg = handle.recv()
            if not isinstance(msg, dict):
                raise ProtocolError(f"unexpected message {msg!r:.200}")
            if "probe" in msg:  # once an attempt: the last attempt's ranks have all ended
                asked = msg["probe"] if isinstance(msg["probe"], dict) else {}
                if held is not None:
                    held.close()
                held = reserve_port()
                handle.send({"probe": probe(held.getsockname()[1], asked.get("script_dir"))})
            elif "run" in msg:
                spec = RunSpec.from_message(msg["run"])
                argv, booted = boot_argv(spec.argv)
                try:
                    rank = RankProcess(argv, rank_environment(spec), spec.cwd, booted=booted)
                except OSError as e:  # the rank's failure, not ours: said as a shell says it
                    why, code = start_failure(e, spec)
                    handle.send({"err": [why]})
                    handle.send({"exit": code})
                    continue
                current.append(rank)
                try:
                    code = rank.watch(handle, spec.hang_after)
                finally:
                    current.remove(rank)
                    rank.kill_group()
                    end_orphans()
                handle.send({"exit": code})
            elif "dump" in msg:  # the rank ended meanwhile
                handle.send({"stacks": None, "why": "the rank had ended"})
            # a "signal" or "stop" for a rank that already ended: nothing to do
    finally:
        for rank in current:
            rank.kill_group()
        end_orphans()
        if held is not None:
            held.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # no rank left to clean up after
        signal.signal(signal.SIGINT, signal.SIG_IGN)
