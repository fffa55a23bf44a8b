"""The FSDP example on the engines beyond SSH (issue 21): through ``ip netns exec {host}``,
srun and Ray, it trains exactly like one process on the whole batch (stage 4's check,
``tests/cluster/test_distributed_training.py``, whose helpers this reuses), and leaves
nothing behind. SSH and localhost have it in ``tests/cluster``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from distributed_support import example, needs_torch
from sshhosts import wait_for_no_processes

pytestmark = [pytest.mark.needs("cluster", "distributed", "run"), needs_torch, pytest.mark.heavy]
__all__ = ["example"]  # a fixture

_TRAINING = Path(__file__).resolve().parent.parent / "cluster" / "test_distributed_training.py"
_spec = importlib.util.spec_from_file_location("miniray_tests_fsdp_helpers", _TRAINING)
assert _spec is not None and _spec.loader is not None
training = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(training)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("engine", ["netns", "srun", "ray"], indirect=True)
def test_fsdp_on_the_engine_matches_one_process(example: ModuleType, engine: Any) -> None:
    steps = 2
    with engine.cluster(2, log=lambda line: None) as cluster:
        workers = training.start_training(cluster, None)
        losses = training.train(example, workers, range(steps))
        parameters = training.final_parameters(workers)
    baseline_losses, baseline_parameters = training.one_process(example, steps, world_size=4)
    assert training.loss_error(losses, baseline_losses) <= training.TOLERANCE
    assert training.relative_error(parameters, baseline_parameters) <= training.TOLERANCE
    assert wait_for_no_processes(engine.tag, 10.0) == []
