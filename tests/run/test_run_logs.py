"""``miniray run --log-dir``: each rank's output in ``rankN.out`` and ``rankN.err``, the run's
facts in ``summary.json``; and a log folder holds one run: the next run in it replaces them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from launcher import LOCAL_2x2, run
from sshhosts import wait_for_no_processes

pytestmark = pytest.mark.needs("run", "cluster")
GONE = 5.0  # seconds within which every process of a run must be gone


def test_a_log_dir_holds_each_rank_s_streams_and_the_run_s_summary(
    tag: str, tmp_path: Path
) -> None:
    # raise-slowly: rank 1 raises and lingers 3 s, so rank 0 has printed before the run
    # ends (with "raise", a loaded machine could end the run before rank 0 said a word)
    logs = tmp_path / "logs"
    command = ["python", "run/behave.py", "raise-slowly"]
    code, _, _ = run(tag, *LOCAL_2x2, "--log-dir", str(logs), "--", *command)
    assert code == 1
    assert "ready r0 restart 0" in (logs / "rank0.out").read_text()
    assert "RuntimeError: rank 1 fails first" in (logs / "rank1.err").read_text()
    summary = json.loads((logs / "summary.json").read_text())
    assert summary["exit_status"] == 1 and summary["exit_codes"]["1"] == 1
    assert summary["hosts"] == [["localhost", 2], ["127.0.0.1", 2]] and summary["restarts"] == 0
    assert summary["command"] == command
    assert wait_for_no_processes(tag, GONE) == []


def test_every_rank_has_its_two_files_though_it_printed_nothing(tag: str, tmp_path: Path) -> None:
    """A rank that said nothing before the run ended had no file at all: was it never
    started, or the folder another run's? Each rank's files are made as the run begins."""
    logs = tmp_path / "logs"
    command = ["python", "-c", "import os, sys; sys.exit(int(os.environ['RANK']) == 1)"]
    code, _, _ = run(tag, *LOCAL_2x2, "--log-dir", str(logs), "--", *command)
    assert code == 1
    for rank in range(4):
        assert (logs / f"rank{rank}.out").read_text() == ""
    assert sorted(p.name for p in logs.iterdir()) == sorted(
        [f"rank{r}.{s}" for r in range(4) for s in ("out", "err")] + ["summary.json"]
    )
    assert wait_for_no_processes(tag, GONE) == []


def test_the_next_run_in_a_log_dir_replaces_the_last_run_s_files(tag: str, tmp_path: Path) -> None:
    """They were appended to, and a rank the new run lacks kept its old files beside the new
    summary: two runs' lines in one file, and ranks that seemed to have spoken."""
    logs = tmp_path / "logs"
    keep = logs / "notes.txt"  # not the run's: left alone
    logs.mkdir()
    keep.write_text("mine")
    code, _, _ = run(tag, *LOCAL_2x2, "--log-dir", str(logs), "--", "python", "run/behave.py", "ok")
    assert code == 0 and (logs / "rank3.out").exists()
    code, _, _ = run(
        tag, "--hosts", "localhost", "--log-dir", str(logs), "--", "python", "run/behave.py", "ok"
    )
    assert code == 0
    assert (logs / "rank0.out").read_text().splitlines() == ["ready r0 restart 0"]
    assert (logs / "rank0.err").read_text() == ""  # made at the start, as every rank's are
    names = sorted(p.name for p in logs.iterdir())
    assert names == ["notes.txt", "rank0.err", "rank0.out", "summary.json"]
    assert json.loads((logs / "summary.json").read_text())["hosts"] == [["localhost", 1]]
    assert keep.read_text() == "mine"
    assert wait_for_no_processes(tag, GONE) == []
