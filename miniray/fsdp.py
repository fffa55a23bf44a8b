# @4+
"""FSDPTrainingBackend: one rank's model, sharded with FSDP2, its optimizer and checkpoints.

Needs torch (``pip install miniray[torch]``); ``import miniray`` never imports this module.

    backend = FSDPTrainingBackend(
        model=build_model(),                              # the same init on every rank
        optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3),
        loss_fn=torch.nn.functional.cross_entropy,
        checkpoint_dir=Path("checkpoints"),               # shared by all ranks
    )
    serve_training(handle, backend)                       # see miniray.training

``fully_shard`` (FSDP2) splits every parameter of each wrapped block into ``WORLD_SIZE``
row chunks: each rank stores its chunk (and its chunk of the optimizer state). In the
forward pass a block all-gathers its full parameters, uses them and frees them; the
backward pass reduce-scatters the gradients, so each rank receives the *average*
gradient of its chunk. Then each rank's optimizer updates its own chunk. One process
training on the whole batch computes the same numbers, up to float rounding.

Checkpoints use ``torch.distributed.checkpoint``: every rank writes its own shards into
``checkpoint_dir/step_N`` (so the directory must be shared by all nodes, e.g. NFS), and
a load can reshard to another world size.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

with warnings.catch_warnings():  # the CPU wheel warns when numpy is absent; we never use it
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save
from torch.distributed.fsdp import fully_shard

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class FSDPTrainingBackend:
    """One rank's share of an FSDP2 training run, driven by ``miniray.training`` commands.

    Call it after ``init_process_group`` (see ``miniray.preflight.join_process_group``).

    Args:
        model: The model, built identically (same seed) on every rank.
        optimizer: Builds the optimizer from the *sharded* parameters. A factory, not an
            optimizer: one built before ``fully_shard`` would update the old, unsharded
            tensors.
        loss_fn: ``loss_fn(logits, targets)``; logits ``(N, C)``, targets ``(N,)``.
        checkpoint_dir: Where ``save`` writes and ``load`` reads (shared by all ranks).
        device: Where the model lives (``cuda:LOCAL_RANK`` with NCCL, else CPU).
        shard: The submodules to shard one by one (each gathers its parameters only
            while it runs); the model itself is always sharded last.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: OptimizerFactory,
        loss_fn: LossFn,
        checkpoint_dir: Path | None = None,
        device: torch.device | None = None,
        shard: Iterable[torch.nn.Module] = (),
    ) -> None:
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device)
        for block in shard:
            fully_shard(block)
        fully_shard(self.model)
        self.optimizer = optimizer(self.model.parameters())
        self.loss_fn = loss_fn
        self.checkpoint_dir = checkpoint_dir
        self.step = 0

    # --8<-- [start:forward_backward]
    def forward_backward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Loss and gradients on this rank's shard of the batch.

        Args:
            batch: ``{"inputs": [[token, ...], ...], "targets": [[token, ...], ...]}``.
        """
        self.model.train()
        inputs = torch.tensor(batch["inputs"], dtype=torch.long, device=self.device)
        targets = torch.tensor(batch["targets"], dtype=torch.long, device=self.device)
        logits = self.model(inputs)
        loss = self.loss_fn(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        # FSDP2 reduce-scatters in backward: each rank ends with its shard of the mean gradient
        torch.autograd.backward(loss)
        return {"loss": loss.item(), "tokens": targets.numel(), "rank": dist.get_rank()}

    # --8<-- [end:forward_backward]

    def optim_step(self) -> dict[str, Any]:
        """Update this rank's parameter shards, clear the gradients."""
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.step += 1
        return {"step": self.step}

    def save(self) -> dict[str, Any]:
        """Write model and optimizer shards to ``checkpoint_dir/step_N`` (all ranks call it)."""
        path = self._checkpoint_path(self.step)
        model_state, optim_state = get_state_dict(self.model, self.optimizer)
        dcp_save({"model": model_state, "optim": optim_state}, checkpoint_id=path)
        return {"saved": str(path), "step": self.step}

    def load(self, step: int) -> dict[str, Any]:
        """Read ``checkpoint_dir/step_N`` into the model and optimizer (all ranks call it)."""
        path = self._checkpoint_path(step)
        model_state, optim_state = get_state_dict(self.model, self.optimizer)
        dcp_load({"model": model_state, "optim": optim_state}, checkpoint_id=path)  # in place
        set_state_dict(
            self.model, self.optimizer, model_state_dict=model_state, optim_state_dict=optim_state
        )
        self.step = step
        return {"loaded": str(path), "step": step}

    def parameters(self) -> dict[str, list[float]]:
        """Every full parameter, flattened (a collective: all ranks must call it)."""
        full = {}
        for name, param in self.model.named_parameters():
            tensor = param.full_tensor() if hasattr(param, "full_tensor") else param
            full[name] = tensor.detach().cpu().reshape(-1).tolist()
        return full

    def _checkpoint_path(self, step: int) -> Path:
        if self.checkpoint_dir is None:
            raise ValueError("this backend has no checkpoint_dir")
        return self.checkpoint_dir / f"step_{step}"
