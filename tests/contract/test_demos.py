"""Every stage's demo runs as a reader would run it, and so does ``make demo-echo``'s script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.per_stage  # the stage itself: run in every stage's run


def run(script: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [sys.executable, str(script)], cwd="/", env=env, capture_output=True, text=True, timeout=60
    )


def test_the_stage_demo_runs(stage_path: Path) -> None:
    demo = stage_path / "demo.py"
    if not demo.exists():
        pytest.skip(f"{stage_path} is the library, not a stage folder: it has no demo.py")
    result = run(demo, stage_path)
    assert result.returncode == 0, result.stderr
    assert "exit code" in result.stdout


@pytest.mark.needs("tcp")
def test_the_main_demo_runs_the_original_quick_start(stage_path: Path) -> None:
    result = run(ROOT / "examples" / "demo.py", stage_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "{'cmd': 'echo', 'data': 'hello'}"  # as the Stage 2 quick start prints
    assert lines[1].startswith("remote ValueError from pid ")
    assert lines[2].startswith("detected: worker pid ") and "killed by SIGKILL" in lines[2]
    assert lines[3] == "server stopped, exit code 0"


def test_make_demo_runs_the_stage_2_quick_starts_work_function() -> None:
    from tools.doc_blocks import DOCS_DIR, parse_page

    page = parse_page(DOCS_DIR / "stages" / "02_tcp.md", DOCS_DIR)
    (quick_start,) = [b.code for b in page.blocks if b.filename == "my_module.py"]
    assert (ROOT / "examples" / "my_module.py").read_text() == quick_start
