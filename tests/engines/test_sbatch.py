"""The page's sbatch script (docs/engines.md, examples/slurm_train.sbatch) runs the FSDP
example through srun inside a real SLURM job of two nodes, and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from distributed_support import ROOT, needs_torch
from sshhosts import wait_for_no_processes

pytestmark = [pytest.mark.needs("cluster", "distributed", "run"), needs_torch, pytest.mark.heavy]
SCRIPT = ROOT / "examples" / "slurm_train.sbatch"


@pytest.mark.timeout(300)
def test_the_sbatch_script_trains_the_example_on_the_job_s_nodes(
    slurm: Any, tag: str, tmp_path: Path
) -> None:
    hosts, _ = slurm
    out = tmp_path / "job.out"
    env = {**hosts.client_env(), "PYTHON": sys.executable, "MINIRAY_TEST_TAG": tag}
    env.pop("SLURM_JOB_ID", None)  # a job of its own, not a step of the tests' allocation
    done = subprocess.run(
        ["sbatch", "--wait", f"--output={out}", f"--chdir={ROOT}", str(SCRIPT), "--steps", "3"],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    said = out.read_text() if out.exists() else "(no output file)"
    assert done.returncode == 0, f"{done.stderr}\n{said[-3000:]}"
    assert "4 ranks on 2 nodes, backend gloo" in said
    losses = [float(line.split("loss=")[1]) for line in said.splitlines() if "loss=" in line]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert wait_for_no_processes(tag, 10.0) == []


@pytest.mark.timeout(300)
def test_miniray_run_slurm_runs_the_unchanged_script_on_the_job_s_nodes(
    slurm: Any, tag: str, tmp_path: Path
) -> None:
    hosts, _ = slurm
    out = tmp_path / "job.out"
    env = {**hosts.client_env(), "PYTHON": sys.executable, "MINIRAY_TEST_TAG": tag}
    env.pop("SLURM_JOB_ID", None)  # a job of its own, not a step of the tests' allocation
    script = ROOT / "examples" / "slurm_run.sbatch"
    done = subprocess.run(
        ["sbatch", "--wait", f"--output={out}", f"--chdir={ROOT}", str(script), "--steps", "3"],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    said = out.read_text() if out.exists() else "(no output file)"
    assert done.returncode == 0, f"{done.stderr}\n{said[-3000:]}"
    losses = [float(line.split("loss=")[1]) for line in said.splitlines() if "loss=" in line]
    assert len(losses) == 3 and losses[-1] < losses[0], said[-3000:]
    assert "[n1 r0] 4 ranks, local world size 2" in said  # 2 ranks on each of 2 nodes
    assert wait_for_no_processes(tag, 10.0) == []
