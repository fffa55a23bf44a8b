"""Distributed FSDP training driven by MiniRay: a tiny character-level transformer.

    python examples/train_distributed_miniray.py                  # 2 localhost nodes x 2, gloo
    python examples/train_distributed_miniray.py --nodes h1,h2 --workers-per-node 4
    python examples/train_distributed_miniray.py --backend nccl   # one GPU per local rank
    sbatch examples/slurm_train.sbatch       # inside SLURM: --launcher srun, the job's nodes
    PYTHONPATH=workspace/04_distributed python examples/train_distributed_miniray.py
                                        # with a learner's miniray (make train WORKSPACE=1)

The coordinator (this process, no torch needed) starts a Cluster, asks the nodes for
every rank's torch.distributed settings, runs the preflight (every rank joins the
process group and all-reduces once, or a clear error within ``--timeout``), then drives
training: each step it sends every rank its own shard of the batch (``forward_backward``),
then ``optim_step``, and prints the loss. Each rank runs ``training_work_fn``: an FSDP2
model (``miniray.fsdp.FSDPTrainingBackend``) serving those commands.

The data is ``examples/data/sonnets.txt``, read by the coordinator only. Over SSH the
nodes need this Python, torch and MiniRay at the same paths, and ``--checkpoint-dir``
on a shared file system.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import miniray
from miniray import Channel, Cluster, NCCLConfig, NodeConfig, preflight, train_step
from miniray.training import command, serve_training, wait_ready

HERE = Path(__file__).resolve().parent
TEXT = HERE / "data" / "sonnets.txt"
VOCAB = 128  # ASCII characters
CONTEXT = 32  # characters the model sees
DIM = 48

if __name__ != "__main__":
    # On a node: the server imports this file once, before it forks its workers, so
    # torch is imported once per node, not once per rank. The coordinator needs no torch.
    import warnings

    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # CPU wheel
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view")
    import torch
    import torch.distributed.checkpoint
    import torch.distributed.fsdp


def training_work_fn(handle: Channel) -> None:
    """One rank: join the process group, build the sharded model, serve the commands."""
    import torch
    import torch.nn.functional as F

    from miniray.fsdp import FSDPTrainingBackend

    torch.set_num_threads(1)  # before any torch op in a forked worker (OpenMP after fork)
    config = NCCLConfig(**handle.recv())
    timeout = float(os.environ.get("MINIRAY_PREFLIGHT_TIMEOUT", "60"))  # set by main()
    backend = miniray.join_process_group(handle, config, timeout=timeout)
    options = handle.recv()  # the coordinator's hyper-parameters, the same for every rank
    device = torch.device("cuda", config.local_rank) if backend == "nccl" else None
    model = build_model(seed=options["seed"])
    trainer = FSDPTrainingBackend(
        model=model,
        optimizer=make_optimizer(options["optimizer"], options["lr"]),
        loss_fn=F.cross_entropy,
        checkpoint_dir=Path(options["checkpoint_dir"]) if options["checkpoint_dir"] else None,
        device=device,
        shard=model.blocks,
    )
    serve_training(handle, trainer)


def make_optimizer(name: str, lr: float) -> Any:
    """A factory: FSDP's sharded parameters -> the optimizer (``adamw`` or ``sgd``)."""
    import torch

    if name == "sgd":
        return lambda params: torch.optim.SGD(params, lr=lr, momentum=0.9)
    return lambda params: torch.optim.AdamW(params, lr=lr)


def build_model(seed: int = 0) -> Any:
    """The model, initialised from ``seed`` (the same on every rank: FSDP shards it)."""
    import torch
    import torch.nn.functional as F

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1, self.norm2 = torch.nn.LayerNorm(DIM), torch.nn.LayerNorm(DIM)
            self.qkv = torch.nn.Linear(DIM, 3 * DIM, bias=False)
            self.proj = torch.nn.Linear(DIM, DIM)
            self.mlp = torch.nn.Sequential(
                torch.nn.Linear(DIM, 4 * DIM), torch.nn.GELU(), torch.nn.Linear(4 * DIM, DIM)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
            x = x + self.proj(F.scaled_dot_product_attention(q, k, v, is_causal=True))
            return x + self.mlp(self.norm2(x))

    class TinyCharModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = torch.nn.Embedding(VOCAB, DIM)
            self.positions = torch.nn.Embedding(CONTEXT, DIM)
            self.blocks = torch.nn.ModuleList([Block(), Block()])
            self.norm = torch.nn.LayerNorm(DIM)
            self.head = torch.nn.Linear(DIM, VOCAB)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            x = self.tokens(idx) + self.positions(torch.arange(idx.shape[1], device=idx.device))
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x))

    torch.manual_seed(seed)
    return TinyCharModel()


def shards_for_step(text: bytes, step: int, world_size: int, per_rank: int) -> list[dict[str, Any]]:
    """Rank r's part of step ``step``'s batch: ``per_rank`` random windows of the text."""
    rng = random.Random(step)
    starts = [rng.randrange(len(text) - CONTEXT - 1) for _ in range(world_size * per_rank)]
    windows = [list(text[s : s + CONTEXT + 1]) for s in starts]
    return [
        {
            "inputs": [w[:-1] for w in windows[r * per_rank : (r + 1) * per_rank]],
            "targets": [w[1:] for w in windows[r * per_rank : (r + 1) * per_rank]],
        }
        for r in range(world_size)
    ]


def read_text() -> bytes:
    """The training text as ASCII bytes (anything else becomes ``?``)."""
    return bytes(b if b < VOCAB else ord("?") for b in TEXT.read_bytes())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    hosts = args.nodes.split(",")
    home = Path(miniray.__file__).resolve().parent.parent  # the folder of this miniray
    print(f"miniray {miniray.__version__} from {home / 'miniray'}", flush=True)
    env = {"PYTHONPATH": str(home), "MINIRAY_PREFLIGHT_TIMEOUT": str(args.timeout)}
    # The nodes run in that folder too: `python -m miniray.cluster_server` imports the
    # miniray of the folder it runs in before PYTHONPATH's, and it must be the coordinator's
    # (a learner's workspace, with PYTHONPATH=workspace/04_distributed).
    nodes = [
        NodeConfig(h, num_workers=args.workers_per_node, env=env, cwd=str(home)) for h in hosts
    ]
    text = read_text()
    started = time.monotonic()
    launcher = {"launcher": args.launcher} if args.launcher else {}  # stage 6 and later
    with Cluster(nodes, stop_grace=2.0, **launcher) as cluster:
        workers = cluster.start(work_fn=f"{Path(__file__).resolve()}:training_work_fn")
        configs = cluster.distributed_configs()
        backend = preflight(cluster, configs, backend=args.backend, timeout=args.timeout)
        print(
            f"{len(workers)} ranks on {len(nodes)} nodes, backend {backend}, "
            f"rendezvous {configs[0].master_addr}:{configs[0].master_port}",
            flush=True,
        )
        options = {"optimizer": args.optimizer, "lr": args.lr, "seed": args.seed}
        checkpoints = args.checkpoint_dir and str(Path(args.checkpoint_dir).resolve())
        options["checkpoint_dir"] = checkpoints  # absolute: the nodes run elsewhere
        for worker in workers:
            worker.send(options)
        wait_ready(workers, timeout=args.timeout)
        first = args.resume_from or 0
        if args.resume_from:
            command(workers, {"cmd": "load", "step": args.resume_from}, timeout=args.timeout)
        for step in range(first, first + args.steps):
            shards = shards_for_step(text, step, len(workers), args.batch_per_rank)
            metrics = train_step(workers, shards, timeout=args.timeout)
            if step == first:
                print(f"cluster start -> first step: {time.monotonic() - started:.2f} s")
            print(f"step {step}: loss={metrics['loss']:.4f}", flush=True)
            if args.save_every and (step + 1) % args.save_every == 0:
                command(workers, {"cmd": "save"}, timeout=args.timeout)
        command(workers, {"cmd": "shutdown"}, timeout=args.timeout)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default="localhost,127.0.0.1", help="comma-separated hosts")
    parser.add_argument("--workers-per-node", type=_whole(1), default=2)
    parser.add_argument("--backend", choices=["auto", "nccl", "gloo"], default="auto")
    parser.add_argument("--steps", type=_whole(1), default=30)
    parser.add_argument("--batch-per-rank", type=_whole(1), default=8)
    parser.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    parser.add_argument("--lr", type=_above_zero, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=_above_zero, default=60.0, help="seconds per phase")
    parser.add_argument("--checkpoint-dir", default=None, help="shared by all nodes")
    parser.add_argument(
        "--launcher", default=None, help="how the nodes start: ssh, srun, local (stage 6)"
    )
    parser.add_argument("--save-every", type=_whole(0), default=0, metavar="STEPS")
    parser.add_argument("--resume-from", type=_whole(0), default=None, metavar="STEP")
    return parser


def _whole(lowest: int) -> Callable[[str], int]:
    """An argparse type: a whole number, ``lowest`` or more (refused here, not in a rank)."""

    def parse(value: str) -> int:
        if not value.isdigit() or int(value) < lowest:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= {lowest}")
        return int(value)

    return parse


def _above_zero(value: str) -> float:
    """An argparse type: a finite number above 0 (seconds, a learning rate)."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 < number < math.inf:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number above 0")
    return number


if __name__ == "__main__":
    sys.exit(main())
