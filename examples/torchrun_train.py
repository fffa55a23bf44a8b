"""A plain torchrun script: nothing of MiniRay in it. The same file runs under both

    torchrun --nproc-per-node 4 examples/torchrun_train.py --steps 20
    miniray run --hosts h1,h2 --nproc-per-node 2 -- python examples/torchrun_train.py --steps 20

and prints the same losses: a small MLP, DistributedDataParallel over gloo (nccl with
--backend nccl on GPUs; --fsdp shards it with FSDP2's fully_shard instead), every rank a
different slice of the same fixed batch.
--times adds what benchmarks/run_launch.py reads: when the first step ended (wall clock)
and the median step time.
"""

import argparse
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--backend", default="gloo")
    parser.add_argument("--times", action="store_true")
    parser.add_argument("--fsdp", action="store_true", help="shard the model (FSDP2)")
    args = parser.parse_args()
    dist.init_process_group(args.backend)  # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # the same model and data on every rank
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    if args.fsdp:
        from torch.distributed.fsdp import fully_shard

        ddp = fully_shard(model)  # each rank holds a shard; gradients are reduce-scattered
    else:
        ddp = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=args.lr)
    inputs = torch.randn(64, 16)
    targets = inputs.sum(dim=1, keepdim=True).sin()
    mine = slice(rank * 64 // world, (rank + 1) * 64 // world)
    step_times = []
    for step in range(args.steps):
        started = time.perf_counter()
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(ddp(inputs[mine]), targets[mine])
        loss.backward()  # DDP (or FSDP) averages the gradients over the ranks
        optimizer.step()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        step_times.append(time.perf_counter() - started)
        if rank == 0:
            print(f"step {step}: loss={mean.item() / world:.6f}", flush=True)
            if step == 0 and args.times:
                print(f"first step done at {time.time():.6f}", flush=True)
    if rank == 0 and args.times:
        print(f"median step {statistics.median(step_times):.6f} s", flush=True)
    if rank == 0:
        print(f"{world} ranks, local world size {os.environ['LOCAL_WORLD_SIZE']}", flush=True)
    dist.barrier()  # every rank done with its collectives before the group goes
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
    # Leave without Python's shutdown. torch 2.13's gloo threads drop a finished barrier
    # (and the tensors it kept) a moment after the barrier returns; if the interpreter has
    # begun to shut down by then, the thread taking the GIL is ended inside a C++
    # destructor and the rank aborts (SIGABRT, "terminate called without an active
    # exception") after a run that went well: 4 runs in about 100 on a loaded 2-core
    # machine, under torchrun as under miniray run. Everything is printed and the group is
    # gone, so there is nothing left for the shutdown to do.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
