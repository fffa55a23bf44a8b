"""Shared by the stage 4 tests: torch (or a precise skip), and the training example.

The tests start real clusters whose ranks run real torch.distributed (gloo, on CPU).
Without torch they skip, saying so; the unit tests of ``miniray.rendezvous`` need no torch.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "train_distributed_miniray.py"
TORCH_MISSING = (
    None
    if importlib.util.find_spec("torch") is not None
    else "torch is not installed: pip install 'miniray[torch]' (CI installs torch==2.13.0)"
)
needs_torch = pytest.mark.skipif(TORCH_MISSING is not None, reason=TORCH_MISSING or "")


@pytest.fixture(scope="session")
def example() -> ModuleType:
    """The training example, imported as a module (so torch comes with it)."""
    spec = importlib.util.spec_from_file_location("train_distributed_miniray", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    import torch

    torch.set_num_threads(1)  # this process forks test workers later: no OpenMP pool
    return module
