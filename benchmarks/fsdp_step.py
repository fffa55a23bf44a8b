"""FSDP training step time: driven by MiniRay vs launched by torchrun (same run, same machine).

    python benchmarks/fsdp_step.py [--steps 40] [--warmup 5] [--ranks 4] [--batch-per-rank 8]
                                   [--json PATH]

Both launch the example's model (``examples/train_distributed_miniray.py``) on the same
number of gloo ranks on this machine, with the same data and the same FSDP2 backend:

* ``torchrun``: ``python -m torch.distributed.run --standalone --nproc-per-node N`` runs
  this file; each rank makes its own shard of every batch and loops, rank 0 times the steps.
  No coordinator, no messages: the floor.
* ``MiniRay``: a Cluster of 2 localhost nodes (N/2 ranks each); the coordinator sends each
  rank its shard (JSON) every step and gathers the replies (``train_step``), timed there.

Rows: the median step time (after ``--warmup`` steps) and the ratio to torchrun (goal:
MiniRay's overhead <= 5 %), and the time from launch to the end of the first step. Both
need torch. Absolute numbers depend on the machine and its load; compare the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from json_rows import results_from_samples, write_json

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "train_distributed_miniray.py"
OPTIONS = {"optimizer": "adamw", "lr": 3e-3, "seed": 0, "checkpoint_dir": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--ranks", type=int, default=4, help="an even number")
    parser.add_argument("--batch-per-rank", type=int, default=8)
    parser.add_argument("--json", metavar="PATH", help="also write the rows to PATH as JSON")
    parser.add_argument("--torchrun-rank", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torchrun_rank:
        return torchrun_rank(args, Path(args.torchrun_rank))
    torchrun = run_torchrun(args)
    miniray = run_miniray(args)
    rows = [("torchrun (no coordinator)", torchrun), ("MiniRay Cluster, 2 nodes", miniray)]
    base = statistics.median(torchrun["steps"][args.warmup :])
    print(f"{'launcher':<28}{'median step':>14}{'vs torchrun':>14}{'launch -> 1st step':>21}")
    for name, result in rows:
        step = statistics.median(result["steps"][args.warmup :])
        print(
            f"{name:<28}{step * 1e3:>11.2f} ms{step / base:>13.3f}x{result['first_step']:>19.2f} s"
        )
    print(
        f"({args.ranks} gloo ranks on this machine, {args.steps} steps, median after "
        f"{args.warmup} warm-up steps)"
    )
    if args.json:
        write_rows(args, dict(rows))
    return 0


def write_rows(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    """The table's rows as JSON (``--json``): the step times after the warm-up (in ms;
    their spread is across steps), and the time from launch to the end of the first step."""
    torchrun, miniray = results
    steps = {name: [s * 1e3 for s in r["steps"][args.warmup :]] for name, r in results.items()}
    first = {name: [r["first_step"]] for name, r in results.items()}
    rows = results_from_samples(
        "step", steps, unit="ms", better="lower", baselines={miniray: [torchrun]}
    )
    rows += results_from_samples(
        "launch to first step", first, unit="s", better="lower", baselines={miniray: [torchrun]}
    )
    notes = {"ranks": args.ranks, "steps": args.steps, "warm-up steps": args.warmup}
    write_json(args.json, rows, notes | {"batch per rank": args.batch_per_rank})


def run_torchrun(args: argparse.Namespace) -> dict[str, Any]:
    """Launch the ranks with torchrun; rank 0 writes its timings to a file."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rank0.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += [f"--nproc-per-node={args.ranks}", str(Path(__file__).resolve())]
        command += [f"--steps={args.steps}", f"--batch-per-rank={args.batch_per_rank}"]
        command += [f"--torchrun-rank={out}"]
        started = time.time()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MINIRAY_LAUNCHED_AT": str(started)}
        subprocess.run(command, check=True, env=env, capture_output=True, timeout=600)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def torchrun_rank(args: argparse.Namespace, out: Path) -> int:
    """One torchrun rank: the example's model and data, its own shard, no messages."""
    example = load_example()
    import torch
    import torch.distributed as dist

    from miniray.fsdp import FSDPTrainingBackend

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = example.build_model(seed=0)
    backend = FSDPTrainingBackend(
        model=model,
        optimizer=example.make_optimizer(OPTIONS["optimizer"], OPTIONS["lr"]),
        loss_fn=torch.nn.functional.cross_entropy,
        shard=model.blocks,
    )
    text, steps = example.read_text(), []
    first_step = 0.0
    for step in range(args.steps):
        started = time.perf_counter()
        backend.forward_backward(
            example.shards_for_step(text, step, world, args.batch_per_rank)[rank]
        )
        backend.optim_step()
        steps.append(time.perf_counter() - started)
        if step == 0:
            first_step = time.time() - float(os.environ["MINIRAY_LAUNCHED_AT"])
    if rank == 0:
        out.write_text(json.dumps({"steps": steps, "first_step": first_step}))
    dist.destroy_process_group()
    # Not through Python's shutdown: torch 2.13's gloo threads may free a collective's
    # tensors during it and abort the rank (see examples/torchrun_train.py).
    sys.stdout.flush()
    os._exit(0)


def run_miniray(args: argparse.Namespace) -> dict[str, Any]:
    """The same ranks as a Cluster of two localhost nodes, driven by the coordinator."""
    example = load_example()
    from miniray import Cluster, NodeConfig, preflight, train_step
    from miniray.training import command, wait_ready

    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    per_node = args.ranks // 2
    nodes = [NodeConfig(h, num_workers=per_node, env=env) for h in ("localhost", "127.0.0.1")]
    text, steps = example.read_text(), []
    launched = time.perf_counter()
    first_step = 0.0
    with Cluster(nodes, log=lambda line: None) as cluster:
        workers = cluster.start(work_fn=f"{EXAMPLE}:training_work_fn")
        preflight(cluster, cluster.distributed_configs(), backend="gloo", timeout=300)
        for worker in workers:
            worker.send(OPTIONS)
        wait_ready(workers, timeout=300)
        for step in range(args.steps):
            shards = example.shards_for_step(text, step, len(workers), args.batch_per_rank)
            started = time.perf_counter()
            train_step(workers, shards, timeout=300)
            steps.append(time.perf_counter() - started)
            if step == 0:
                first_step = time.perf_counter() - launched
        command(workers, {"cmd": "shutdown"}, timeout=300)
    return {"steps": steps, "first_step": first_step}


def load_example() -> ModuleType:
    """The example as a module named ``train_distributed_miniray`` (not ``__main__``)."""
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("train_distributed_miniray", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(main())
