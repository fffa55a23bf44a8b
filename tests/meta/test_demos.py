"""Every stage's demo runs the way its page says: ``python stages/NN_name/demo.py``.

A reader types that from the repository root, where the top-level ``miniray/`` (the final
stage) sits too: a demo whose cluster nodes imported that package instead of their own
stage's failed there, and nowhere else. So each demo runs from the root and from an
unrelated folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.stages import REPO_ROOT, Stage, list_stages

STAGES = list_stages()


@pytest.mark.parametrize("where", ["the repository root", "another folder"])
@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_each_stage_demo_runs_from_the_repository_root_and_elsewhere(
    stage: Stage, where: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as a reader has it
    done = subprocess.run(
        [sys.executable, str(stage.path / "demo.py")],
        cwd=REPO_ROOT if where == "the repository root" else tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
