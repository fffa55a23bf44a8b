# @4+
"""Preflight: join the process group and run one all_reduce, under a timeout the coordinator keeps.

A rank in ``init_process_group`` or in a collective is inside C++: it answers no message
and notices no deadline but its own (30 minutes by default for gloo). So the coordinator
keeps the time. Each rank reports its progress as it goes, and if not every rank has
finished one ``all_reduce`` in time, the coordinator stops the cluster (which kills
stuck ranks) and raises a `PreflightError` that names the ranks that did not make it,
and the address, port and interface each of them tried.

    # coordinator                                    # each rank, in work_fn
    configs = cluster.distributed_configs()          config = NCCLConfig(**handle.recv())
    backend = preflight(cluster, configs)            setup_nccl_env(config)
                                                     backend = join_process_group(handle, config)

The reports, in order (a rank's work function raising ends them with a RemoteError):
``hello`` (with how many CUDA devices the rank sees), then the coordinator's choice of
backend, then ``joined`` (``init_process_group`` returned), then ``ok`` (the
``all_reduce`` summed to the world size). ``join_process_group`` imports torch; the
coordinator's half does not.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .channel import wait_readable
from .errors import DistributedConfigError, PreflightError, RemoteError, WorkerDied
from .rendezvous import NCCLConfig, setup_nccl_env
from .timeouts import check_seconds

if TYPE_CHECKING:
    from .channel import Channel
    from .cluster import Cluster, ClusterWorker

PHASES = ("config sent", "hello", "joined", "ok")
REPORT_KEY = "preflight"
BACKEND_KEY = "preflight_backend"


# --8<-- [start:preflight]
def preflight(
    cluster: Cluster, configs: Sequence[NCCLConfig], *, backend: str = "auto", timeout: float = 30.0
) -> str:
    """Send each rank its config; return once every rank joined and all-reduced.

    Args:
        cluster: A started cluster whose work function calls `join_process_group`.
        configs: One per rank, in rank order (`Cluster.distributed_configs`).
        backend: ``"nccl"``, ``"gloo"``, or ``"auto"``: NCCL if every rank sees at least
            ``LOCAL_WORLD_SIZE`` CUDA devices, else gloo.
        timeout: Seconds for the whole preflight, all ranks together.

    Returns:
        The backend the ranks use.

    Raises:
        PreflightError: A rank failed or did not finish within ``timeout`` seconds; the
            cluster has been stopped.
        DistributedConfigError: An argument that cannot work (a backend that is none of
            the three, a negative timeout, not one config per rank); nothing was sent.
    """
    workers = cluster.workers
    _check_arguments(len(workers), configs, backend, timeout)
    progress = {w.rank: PHASES[0] for w in workers}
    started = time.monotonic()
    deadline = started + timeout
    chosen = backend
    try:
        for worker, config in zip(workers, configs, strict=True):
            worker.send(config.__dict__)
        hellos = await_phase(workers, "hello", deadline, progress)
        if backend == "auto":
            seen = zip(hellos, configs, strict=True)
            enough = all(h["cuda_devices"] >= c.local_world_size for h, c in seen)
            chosen = "nccl" if enough else "gloo"
        for worker in workers:
            worker.send({BACKEND_KEY: chosen})
        await_phase(workers, "ok", deadline, progress)
    except (_Stalled, WorkerDied, OSError) as e:
        cluster.stop()  # kills ranks stuck in C++: no hang outlives the timeout
        raise _error(e, progress, configs, chosen, time.monotonic() - started) from None
    return chosen


# --8<-- [end:preflight]


def _check_arguments(
    ranks: int, configs: Sequence[NCCLConfig], backend: str, timeout: float
) -> None:
    if backend not in ("nccl", "gloo", "auto"):
        raise DistributedConfigError(
            f"backend must be 'nccl', 'gloo' or 'auto', not {backend!r:.40}"
        )
    check_seconds("timeout", timeout, DistributedConfigError)
    if len(configs) != ranks:
        raise DistributedConfigError(f"{len(configs)} configs for {ranks} ranks")
    for config in configs:
        if not isinstance(config, NCCLConfig):
            raise DistributedConfigError(
                f"configs are NCCLConfigs, not {type(config).__name__}: "
                "cluster.distributed_configs() makes them"
            )


# --8<-- [start:await_phase]
def await_phase(
    workers: Sequence[ClusterWorker], phase: str, deadline: float, progress: dict[int, str]
) -> list[dict[str, Any]]:
    """Read progress reports until every rank has reported ``phase``; return those reports.

    ``progress`` maps each rank to the last phase it reported (updated in place), or to
    ``"failed: ..."``.

    Raises:
        _Stalled: A rank failed, or ``deadline`` (a ``time.monotonic()`` value) passed.
    """
    reports: dict[int, dict[str, Any]] = {}
    while len(reports) < len(workers):
        for worker in workers:
            while worker.rank not in reports:  # every report already here, not just one
                try:
                    report = worker.recv(timeout=0)
                except TimeoutError:
                    break
                except (RemoteError, WorkerDied) as e:
                    progress[worker.rank] = f"failed: {_first_line(e)}"
                    raise _Stalled(f"rank {worker.rank} failed") from e
                if not (isinstance(report, dict) and report.get(REPORT_KEY) in PHASES):
                    progress[worker.rank] = f"failed: sent {report!r:.80} instead of a report"
                    raise _Stalled(f"rank {worker.rank} broke the preflight protocol")
                progress[worker.rank] = report[REPORT_KEY]
                if report[REPORT_KEY] == phase:
                    reports[worker.rank] = report
        remaining = deadline - time.monotonic()
        if len(reports) < len(workers):
            if remaining <= 0:
                raise _Stalled("timed out")
            waiting = [w for w in workers if w.rank not in reports]
            wait_readable([fd for w in waiting for fd in w.wait_fds()], remaining)
    return [reports[w.rank] for w in workers]


# --8<-- [end:await_phase]


def join_process_group(handle: Channel, config: NCCLConfig, *, timeout: float = 30.0) -> str:
    """In a rank: set the environment, join the process group, all_reduce once, reporting each step.

    The coordinator's `preflight` reads the reports and picks the backend. With NCCL,
    this rank uses GPU ``LOCAL_RANK``. Returns the backend.
    """
    import torch
    import torch.distributed as dist

    setup_nccl_env(config)
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    handle.send({REPORT_KEY: "hello", "cuda_devices": cuda})
    answer = handle.recv(timeout=timeout)
    backend = str(answer[BACKEND_KEY])
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", config.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend,
        init_method="env://",
        timeout=timedelta(seconds=timeout),
        device_id=device if backend == "nccl" else None,
    )
    handle.send({REPORT_KEY: "joined"})
    total = torch.ones(1, device=device)
    dist.all_reduce(total)
    if int(total.item()) != config.world_size:
        raise RuntimeError(f"all_reduce of ones gave {total.item()}, not {config.world_size}")
    handle.send({REPORT_KEY: "ok"})
    return backend


class _Stalled(Exception):
    """Internal: the preflight cannot finish (a rank failed, or time is up)."""


def _error(
    cause: BaseException,
    progress: dict[int, str],
    configs: Sequence[NCCLConfig],
    backend: str,
    elapsed: float,
) -> PreflightError:
    missing = [rank for rank, phase in progress.items() if phase != "ok"]
    not_joined = [rank for rank, phase in progress.items() if phase not in ("joined", "ok")]
    if not_joined:
        headline = f"ranks {_ranks(not_joined)} did not join the process group"
    else:
        headline = f"all ranks joined, but the all_reduce did not finish on {_ranks(missing)}"
    why = str(cause) if isinstance(cause, _Stalled) else _first_line(cause)
    lines = [f"preflight failed after {elapsed:.1f} s ({why}; backend {backend}): {headline}"]
    for config in configs:
        lines.append(f"  {config.describe()}: {_describe_phase(progress[config.rank])}")
    lines.append("The cluster was stopped. See 'Hangs at initialization' in the stage 4 docs.")
    return PreflightError("\n".join(lines), missing=missing)


def _describe_phase(phase: str) -> str:
    return {
        "config sent": "no report (still starting, or stuck before init_process_group)",
        "hello": "still in init_process_group (rendezvous at MASTER_ADDR:MASTER_PORT)",
        "joined": "joined; the all_reduce did not finish (check *_SOCKET_IFNAME)",
        "ok": "ok",
    }.get(phase, phase)


def _ranks(ranks: list[int]) -> str:
    return ", ".join(str(r) for r in ranks)


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
