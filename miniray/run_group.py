# @6+
"""The coordinator's half of ``miniray run``: one group of ranks, run to its end, restarted.

A `RankGroup` holds one rank supervisor per rank (the cluster's workers, see
``run_supervisor``) and runs *attempts*: ask node 0 for a port it holds, send every supervisor
its command and environment, then wait on all of them at once, printing output as it
comes, until every rank has reported its exit. The first rank to fail ends the attempt:
every other rank gets SIGTERM, then SIGKILL ``stop_grace`` seconds later (each supervisor
does it on its node). `restart_decision` then says whether to run the group again.

"First to fail" is the first rank whose script raised, not the first to end: when a rank
raises, the ranks waiting for it in a collective fail too, and often end sooner, while the
one that raised is still printing its traceback or shutting down (see `_name_failure`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .cluster_node import ClusterWorker
from .env_check import check_same_software, script_dir
from .errors import ClusterError, MiniRayError
from .node_config import NodeConfig
from .run_logs import RunLogs
from .run_stacks import format_stack_groups, without_boot
from .worker import wait_any

INTERRUPTED, TIMED_OUT = 130, 124  # exit statuses of the launcher, as shells and timeout(1)


# --8<-- [start:restart_decision]
def restart_decision(
    exit_codes: Sequence[int | None], restarts_done: int, max_restarts: int
) -> str:
    """What to do after an attempt: ``"done"``, ``"restart"`` or ``"fail"``.

    ``exit_codes``: each rank's exit status (None: the rank's supervisor was lost, it never
    said). All 0 is done. Otherwise the whole group runs again, as torchrun does, while
    fewer than ``max_restarts`` restarts were made; then it fails.
    """
    if all(code == 0 for code in exit_codes):
        return "done"
    if restarts_done < max_restarts:
        return "restart"
    return "fail"


# --8<-- [end:restart_decision]


@dataclass
class RunOptions:
    """What ``miniray run`` was asked to do (see ``run.py``'s options)."""

    argv: list[str]
    nodes: list[NodeConfig]
    max_restarts: int = 0
    timeout: float | None = None  # seconds for the whole run
    hang_after: float = 30.0  # seconds of heartbeat silence before a rank is called hung
    stop_grace: float = 5.0  # seconds from SIGTERM to SIGKILL when a group is stopped
    interrupt_grace: float = 10.0  # seconds the ranks get after a Ctrl-C
    bind_gpus: bool = False
    env_check: bool = True  # compare the nodes' software before the first start
    env: dict[str, str] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class Attempt:
    """How one attempt went: each rank's exit status, and the first rank to fail."""

    codes: dict[int, int | None] = field(default_factory=dict)
    first_failure: tuple[int, int | None] | None = None  # (rank, status)
    raised: dict[int, float] = field(default_factory=dict)  # in order: rank -> when we heard
    failed: dict[int, str] = field(default_factory=dict)  # ended failing, in order: how
    stacks: dict[int, str] = field(default_factory=dict)
    no_stack: dict[int, str] = field(default_factory=dict)


class RankGroup:
    """The ranks of one ``miniray run`` (see the module's docstring)."""

    def __init__(
        self, workers: Sequence[ClusterWorker], options: RunOptions, logs: RunLogs, wake: Any
    ) -> None:
        self.workers, self.options, self.logs, self.wake = list(workers), options, logs, wake
        self.ctrl_c = 0  # Ctrl-Cs seen (the signal handler counts them)
        self.dump_wanted = False  # SIGUSR1 seen
        self.lost: set[int] = set()  # ranks whose supervisor is gone
        self.deadline = None if options.timeout is None else time.monotonic() + options.timeout
        self.now: Attempt = Attempt()
        self.probes: dict[int, dict[str, Any]] = {}  # each rank's node: its answer to probe
        self._interrupted_at: float | None = None
        self.stopping = False

    def run(self) -> tuple[int, int, Attempt]:
        """Attempts until done or failed: ``(exit status, restarts made, last attempt)``."""
        restarts = 0
        while True:
            attempt = self.attempt(restarts)
            failure = attempt.first_failure
            if self.ctrl_c or self._timed_out():
                status = TIMED_OUT if self._timed_out() and not self.ctrl_c else INTERRUPTED
                return (failure[1] or status) if failure else status, restarts, attempt
            decision = restart_decision(
                list(attempt.codes.values()), restarts, self.options.max_restarts
            )
            if decision == "restart" and not self.lost:
                restarts += 1
                self.logs.say(f"restarting the group ({restarts} of {self.options.max_restarts})")
                continue
            if decision == "done":
                return 0, restarts, attempt
            return (failure[1] if failure and failure[1] else 1), restarts, attempt

    def attempt(self, restart: int) -> Attempt:
        """Start every rank, relay until each has ended; the first failure stops the rest."""
        self.now = attempt = Attempt()
        self.stopping = False
        self.probes.clear()
        check = self.options.env_check and restart == 0
        self._broadcast({"probe": {"script_dir": script_dir(self.options.argv)} if check else {}})
        deadline = time.monotonic() + 30.0
        while len(self.probes) < len(self.workers) and not self.lost:
            if time.monotonic() > deadline:
                raise ClusterError("a rank supervisor did not answer within 30 s")
            self._pump(deadline - time.monotonic())
        if self.lost:
            raise ClusterError(f"rank supervisors lost before the start: {sorted(self.lost)}")
        if check:  # one answer per node: its first rank's
            by_node = {w.host: self.probes[w.rank] for w in reversed(self.workers)}
            check_same_software({host: probe.get("facts", {}) for host, probe in by_node.items()})
        master_addr, master_port = self._master()
        for worker in self.workers:
            spec = {
                "argv": self.options.argv,
                "env": self._environment(worker, master_addr, master_port, restart),
                "cwd": self._node(worker).cwd,
                "hang_after": self.options.hang_after,
                "route_to": master_addr,
            }
            worker.send({"run": spec})
        stop_by: float | None = None  # the deadline of a stop under way
        while len(attempt.codes) < len(self.workers):
            now = time.monotonic()
            if stop_by is not None and now > stop_by:
                break  # supervisors that do not answer: Cluster.stop ends them
            if stop_by is None and (self._timed_out() or self._interrupt_over()):
                if self._timed_out():
                    self.logs.say(f"--timeout {self.options.timeout:g} s reached; stacks:")
                    self.dump_stacks(3.0)
                stop_by = self._stop_all()
            if self.ctrl_c == 1 and self._interrupted_at is None:
                self._interrupted_at = now
                self.logs.say("Ctrl-C: SIGINT sent to every rank (again to stop everything)")
                self._broadcast({"signal": "SIGINT"})
            if self.dump_wanted:
                self.dump_wanted = False
                self.dump_stacks(3.0)
            self._pump(self._wait_limit(stop_by))
            self._name_failure()  # a rank that raised may have had its time to end
            # A failure stops the others; not after a Ctrl-C, where ranks end as they handle
            # SIGINT (one saving a checkpoint is slower than one that just exits) until the
            # interrupt's grace is over.
            interrupted = self._interrupted_at is not None
            if attempt.first_failure is not None and stop_by is None and not interrupted:
                stop_by = self._stop_all()
        return attempt

    def dump_stacks(self, timeout: float) -> None:
        """Ask every running rank for its stacks; print them grouped by identical stack."""
        attempt = self.now
        attempt.stacks.clear()
        attempt.no_stack.clear()
        asked = self._broadcast({"dump": timeout})
        deadline = time.monotonic() + timeout + 2.0
        while set(attempt.stacks) | set(attempt.no_stack) < asked:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._pump(left)
        for rank in asked - set(attempt.stacks) - set(attempt.no_stack):
            attempt.no_stack[rank] = "its supervisor did not answer in time"
        self.logs.say(format_stack_groups(attempt.stacks, attempt.no_stack))

    def _pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for messages; handle every one that has arrived."""
        live = [w for w in self.workers if w.rank not in self.lost]
        try:
            ready = wait_any([*live, self.wake], timeout=max(0.0, timeout))
        except TimeoutError:
            return
        for worker in ready:
            if worker is self.wake:
                self.wake.drain()
                continue
            try:
                while worker.poll():
                    self._handle(worker, worker.recv(timeout=0))
            except (MiniRayError, OSError) as e:
                self.lost.add(worker.rank)
                self._ended(worker, None, f"its supervisor was lost: {e}")

    def _handle(self, worker: ClusterWorker, msg: Any) -> None:
        rank = worker.rank
        if not isinstance(msg, dict):
            return
        for stream in ("out", "err"):
            if isinstance(msg.get(stream), list):
                self.logs.lines(worker.host, rank, stream, [str(t) for t in msg[stream]])
        if "exit" in msg:
            self._ended(worker, int(msg["exit"]), "")
        elif "raised" in msg:
            self.now.raised.setdefault(rank, time.monotonic())
        elif "hung" in msg:
            self.logs.say(f"rank {rank} on {worker.host} is hung: {msg['hung']}")
        elif isinstance(msg.get("probe"), dict):
            self.probes[rank] = msg["probe"]
        elif "alive" in msg:
            self.logs.say(f"rank {rank} on {worker.host} answers again")
        elif "stacks" in msg:
            if isinstance(msg["stacks"], str):
                self.now.stacks[rank] = without_boot(msg["stacks"])
            else:
                self.now.no_stack[rank] = str(msg.get("why") or "none")

    def _ended(self, worker: ClusterWorker, code: int | None, why: str) -> None:
        attempt = self.now
        attempt.codes[worker.rank] = code
        if code != 0 and not self.stopping:
            attempt.failed[worker.rank] = f"exit code {code}" if code is not None else why
        self._name_failure()

    def _name_failure(self) -> None:
        """Once a rank has failed, name the first failure: the first rank whose script raised
        (once it has ended, or has had ``stop_grace`` seconds to), else the first to end."""
        attempt = self.now
        if attempt.first_failure is not None or not attempt.failed:
            return
        first_ended = rank = next(iter(attempt.failed))
        for raiser, heard_at in attempt.raised.items():
            if raiser in attempt.failed:
                rank = raiser
                break
            if raiser not in attempt.codes:  # still ending: its traceback is still to come
                if time.monotonic() < heard_at + self.options.stop_grace:
                    return
                rank = raiser
                break
            # it raised, then ended with status 0 (or was stopped): not the failure
        if rank not in attempt.failed:
            said = f"raised first, not ended {self.options.stop_grace:g} s later"
        else:
            said = attempt.failed[rank] + (", raised first" if rank != first_ended else "")
        attempt.first_failure = (rank, attempt.codes.get(rank))
        worker = next(w for w in self.workers if w.rank == rank)
        last = "\n".join("    " + line for line in self.logs.last[rank])
        told = f"its last lines:\n{last}" if last else "it printed nothing"
        self.logs.say(f"rank {rank} on {worker.host} failed ({said}); {told}")

    def _stop_all(self) -> float:
        self.stopping = True  # ranks ending from now on were stopped: none is "the failure"
        self._broadcast({"stop": self.options.stop_grace})
        return time.monotonic() + self.options.stop_grace + 5.0

    def _broadcast(self, msg: dict[str, Any]) -> set[int]:
        """Send ``msg`` to every rank still running; return their ranks."""
        sent = set()
        for worker in self.workers:
            if worker.rank not in self.now.codes and worker.rank not in self.lost:
                try:
                    worker.send(msg, timeout=5.0)
                    sent.add(worker.rank)
                except (MiniRayError, OSError, TimeoutError):
                    self.lost.add(worker.rank)
        return sent

    def _wait_limit(self, stop_by: float | None) -> float:
        waiting_for_raiser = bool(self.now.failed) and self.now.first_failure is None
        limits = [0.5 if self.ctrl_c or waiting_for_raiser else 3600.0]
        for deadline in (stop_by, self.deadline):
            if deadline is not None:
                limits.append(deadline - time.monotonic())
        return max(0.0, min(limits))

    def _timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _interrupt_over(self) -> bool:
        started = self._interrupted_at
        return started is not None and time.monotonic() > started + self.options.interrupt_grace

    def _node(self, worker: ClusterWorker) -> NodeConfig:
        return next(n for n in self.options.nodes if n.host == worker.host)

    def _master(self) -> tuple[str, int]:
        """MASTER_ADDR: node 0 as the coordinator reached it, or, if node 0 is this machine
        and others are remote, this machine as they see it. MASTER_PORT: held on node 0 by
        its supervisor until the next attempt (``netprobe.reserve_port``)."""
        nodes, address = self.options.nodes, self.workers[0].address
        if nodes[0].is_local and not all(n.is_local for n in nodes):
            remote = next(w for w in self.workers if not self._node(w).is_local)
            peer = self.probes[remote.rank].get("peer")
            if not isinstance(peer, str):
                raise ClusterError(f"node {remote.host} did not say where we are")
            address = peer
        port = self.probes[self.workers[0].rank].get("port")
        if not isinstance(port, int):
            raise ClusterError(f"node {self.workers[0].host} found no free port")
        return address, port

    def _environment(
        self, worker: ClusterWorker, addr: str, port: int, restart: int
    ) -> dict[str, str]:
        """torchrun's variables for this rank (the cluster already set RANK, LOCAL_RANK...)."""
        nproc = sum(1 for w in self.workers if w.host == worker.host)
        env = {
            **self.options.env,
            "MASTER_ADDR": addr,
            "MASTER_PORT": str(port),
            "ROLE_RANK": str(worker.rank),
            "ROLE_NAME": "default",
            "ROLE_WORLD_SIZE": str(len(self.workers)),
            "GROUP_WORLD_SIZE": str(len(self.options.nodes)),
            "TORCHELASTIC_RUN_ID": self.options.run_id,
            "TORCHELASTIC_RESTART_COUNT": str(restart),
            "TORCHELASTIC_MAX_RESTARTS": str(self.options.max_restarts),
            "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
        }
        if nproc > 1:  # what torchrun does, unless the node's environment sets it
            env["MINIRAY_DEFAULT_OMP_NUM_THREADS"] = "1"
        if self.options.bind_gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(worker.local_rank)
        return env
