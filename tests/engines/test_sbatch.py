"""The page's sbatch script (docs/engines.md, examples/slurm_train.sbatch) runs the FSDP
example through srun inside a real SLURM job of two nodes, and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
import time
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
    said = submit_and_read(slurm, SCRIPT, tag, tmp_path)
    assert "4 ranks on 2 nodes, backend gloo" in said
    losses = [float(line.split("loss=")[1]) for line in said.splitlines() if "loss=" in line]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert wait_for_no_processes(tag, 10.0) == []


@pytest.mark.timeout(300)
def test_miniray_run_slurm_runs_the_unchanged_script_on_the_job_s_nodes(
    slurm: Any, tag: str, tmp_path: Path
) -> None:
    # One rank a node (NPROC, the script's knob): each rank imports torch and FSDP, seconds
    # of CPU each; several ranks a node are the localhost tests' (tests/run).
    script = ROOT / "examples" / "slurm_run.sbatch"
    said = submit_and_read(slurm, script, tag, tmp_path, NPROC="1")
    losses = [float(line.split("loss=")[1]) for line in said.splitlines() if "loss=" in line]
    assert len(losses) == 3 and losses[-1] < losses[0], said[-3000:]
    assert "[n1 r0] 2 ranks, local world size 1" in said  # one rank on each of 2 nodes
    assert wait_for_no_processes(tag, 10.0) == []


def submit_and_read(slurm: Any, script: Path, tag: str, tmp_path: Path, **env_vars: str) -> str:
    """Run ``script --steps 3`` as a job of its own on the test SLURM, with ``env_vars`` in
    its environment; its output, once it ended with exit code 0 (an assertion error with the
    output's end otherwise)."""
    hosts, _ = slurm
    out = tmp_path / "job.out"
    env = {**hosts.client_env(), "PYTHON": sys.executable, "MINIRAY_TEST_TAG": tag, **env_vars}
    env.pop("SLURM_JOB_ID", None)  # a job of its own, not a step of the tests' allocation
    state = run_batch_job([f"--output={out}", f"--chdir={ROOT}", str(script), "--steps", "3"], env)
    said = out.read_text() if out.exists() else "(no output file)"
    assert state == "COMPLETED 0:0", f"{state}\n{said[-3000:]}"
    return said


def run_batch_job(args: list[str], env: dict[str, str], timeout: float = 240.0) -> str:
    """``sbatch ARGS``, then wait for the job's end: its state and exit code, e.g.
    ``COMPLETED 0:0``. (``sbatch --wait`` polls at growing intervals, up to 32 s: a job of
    12 s was seen 30 s late. This asks ``scontrol`` every 0.2 s.)"""
    submitted = subprocess.run(
        ["sbatch", "--parsable", *args], env=env, capture_output=True, text=True, timeout=30
    )
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = subprocess.run(
            ["scontrol", "-o", "show", "job", job], env=env, capture_output=True, text=True,
            timeout=30,
        ).stdout  # fmt: skip
        fields = dict(word.split("=", 1) for word in shown.split() if "=" in word)
        if fields.get("JobState") in FINAL_STATES:
            return f"{fields['JobState']} {fields.get('ExitCode')}"
        time.sleep(0.2)
    subprocess.run(["scancel", job], env=env, timeout=30)
    raise AssertionError(f"job {job} did not end within {timeout} s")


FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
