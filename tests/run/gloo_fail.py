"""Ranks of a gloo group: rank 1 raises before the all_reduce the others wait in."""

import os

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
print(f"joined r{dist.get_rank()}", flush=True)
if int(os.environ["RANK"]) == 1:
    raise RuntimeError("rank 1 fails before the collective")
dist.all_reduce(torch.ones(1))  # never completes: rank 1 is gone
print("unreachable", flush=True)
