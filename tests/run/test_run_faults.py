"""``miniray run`` when ranks fail, hang or are interrupted: the exit status is the first
failing rank's, what happened is said by rank, and no process is left on any host."""

from __future__ import annotations

import contextlib
import io
import re
import signal
import time
from pathlib import Path

import pytest
from launcher import Launched, LOCAL_2x2, run
from sshhosts import wait_for_no_processes

pytestmark = pytest.mark.needs("run", "cluster")
GONE = 5.0  # seconds within which every process of a run must be gone


def test_a_rank_that_raises_ends_the_run_with_its_status_and_last_lines(tag: str) -> None:
    started = time.monotonic()
    code, _, err = run(tag, *LOCAL_2x2, "--", "python", "run/behave.py", "raise")
    assert code == 1
    assert "rank 1 on localhost failed (exit code 1); its last lines:" in err
    assert "RuntimeError: rank 1 fails on purpose" in err
    assert "run_boot" not in err  # the traceback is the script's, as under torchrun
    assert time.monotonic() - started < 20  # the waiting ranks were stopped, not waited for
    assert wait_for_no_processes(tag, GONE) == []


def test_a_module_run_with_dash_m_that_raises_shows_only_its_own_frames(tag: str) -> None:
    code, _, err = run(tag, *LOCAL_2x2, "--", "python", "-m", "run.behave", "raise")
    assert code == 1
    assert "rank 1 on localhost failed (exit code 1); its last lines:" in err
    assert 'behave.py", line' in err and "RuntimeError: rank 1 fails on purpose" in err
    assert "run_boot" not in err and "runpy" not in err  # our frames and runpy's are left out
    assert wait_for_no_processes(tag, GONE) == []


@pytest.mark.parametrize(
    ("command", "status", "said"),
    [
        (["run/no_such_script.py"], 2, r"python: can't open file '\S+/run/no_such_script\.py': "
         r"\[Errno 2\] No such file or directory"),
        (["{bad}"], 1, r'File "\S+bad\.py", line 1\n.*def \(\n.*\^\n.*SyntaxError: invalid syntax'),
        (["-m", "run.no_such_module"], 1, r"python: No module named run\.no_such_module"),
    ],
    ids=["missing-file", "syntax-error", "missing-module"],
)  # fmt: skip
def test_a_script_that_cannot_start_is_reported_as_python_reports_it(
    tag: str, tmp_path: Path, command: list[str], status: int, said: str
) -> None:
    (tmp_path / "bad.py").write_text("def (\n")
    command = [word.format(bad=tmp_path / "bad.py") for word in command]
    code, _, err = run(tag, "--hosts", "localhost", "--", "python", *command)
    assert code == status, err
    assert re.search(said, err), err
    assert "run_boot" not in err and "runpy" not in err and "Traceback" not in err, err
    assert wait_for_no_processes(tag, GONE) == []


@pytest.mark.parametrize(
    ("program", "status", "why"),
    [
        ("no_such_program_xyz", 127, "No such file or directory"),
        ("{plain}", 126, "Permission denied"),
    ],
    ids=["missing", "not-executable"],
)  # fmt: skip
def test_a_program_that_cannot_start_fails_its_rank_with_a_shells_status(
    tag: str, tmp_path: Path, program: str, status: int, why: str
) -> None:
    (tmp_path / "plain.sh").write_text("echo never\n")  # not executable
    program = program.format(plain=tmp_path / "plain.sh")
    code, _, err = run(tag, "--hosts", "localhost", "--", program, "an-argument")
    assert code == status, err
    assert f"rank 0 on localhost failed (exit code {status})" in err
    assert f"cannot run {program!r}: {why}" in err
    assert "supervisor was lost" not in err and "Traceback" not in err, err
    assert wait_for_no_processes(tag, GONE) == []


def test_the_rank_that_raised_first_is_named_though_another_ended_before_it(tag: str) -> None:
    # Rank 1 raises, then spends 3 s in its shutdown; rank 0 exits 1 half a second after the
    # raise (as torch ranks do: the one whose collective failed can end before the one that
    # raised). The failure is rank 1's, with its status and its traceback.
    code, out, err = run(tag, *LOCAL_2x2, "--", "python", "run/behave.py", "raise-slowly")
    assert "rank 0: the collective failed" in out  # the others did end first, failing
    assert "rank 1 on localhost failed (exit code 1, raised first); its last lines:" in err
    assert "RuntimeError: rank 1 fails first" in err
    assert re.search(r"rank [023] on \S+ failed", err) is None, err
    assert code == 1
    assert wait_for_no_processes(tag, GONE) == []


def test_a_rank_that_failed_without_a_word_is_said_to_have_printed_nothing(tag: str) -> None:
    code, _, err = run(tag, "--hosts", "localhost", "--", "python", "-c", "raise SystemExit(3)")
    assert code == 3
    assert "rank 0 on localhost failed (exit code 3); it printed nothing" in err
    assert "its last lines" not in err


def test_a_rank_killed_with_kill_9_gives_128_plus_9(tag: str) -> None:
    code, _, err = run(tag, *LOCAL_2x2, "--", "python", "run/behave.py", "kill9", "2")
    assert code == 137
    assert "rank 2 on 127.0.0.1 failed (exit code 137)" in err
    assert wait_for_no_processes(tag, GONE) == []


def test_a_stopped_rank_is_reported_hung_and_the_timeout_prints_grouped_stacks(
    tag: str,
) -> None:
    args = [*LOCAL_2x2, "--hang-after", "1", "--timeout", "4", "--stop-grace", "1"]
    code, _, err = run(tag, *args, "--", "python", "run/behave.py", "sigstop")
    assert code == 124
    assert "rank 1 on localhost is hung: stopped" in err
    assert "--timeout 4 s reached" in err
    assert "ranks 0,2-3: wait_forever ← behave.py:" in err  # the three alike, once
    assert "rank 1: no stack (stopped" in err
    assert wait_for_no_processes(tag, GONE) == []


def test_sigusr1_prints_stacks_and_ctrl_c_twice_stops_ranks_that_ignore_it(tag: str) -> None:
    launched = Launched(tag, *LOCAL_2x2, "--", "python", "run/behave.py", "ignore-sigint")
    launched.wait_for("ready r", count=4)
    for _ in range(10):  # a rank may print "ready" a moment before it waits
        launched.signal(signal.SIGUSR1)
        with contextlib.suppress(AssertionError):
            launched.wait_for("ranks 0-3: wait_forever ← behave.py:", timeout=3.0)
            break
    else:
        raise AssertionError("no dump grouped all 4 ranks:\n" + launched.text())
    launched.signal(signal.SIGINT)
    launched.wait_for("SIGINT sent to every rank")
    launched.signal(signal.SIGINT)
    code, _, err = launched.finish(timeout=15)
    assert code == 130
    assert "second Ctrl-C" in err
    assert wait_for_no_processes(tag, GONE) == []


def test_ctrl_c_once_forwards_sigint_to_every_rank(tag: str) -> None:
    launched = Launched(tag, *LOCAL_2x2, "--", "python", "run/behave.py", "catch-sigint")
    launched.wait_for("ready r", count=4)
    launched.signal(signal.SIGINT)
    code, out, _ = launched.finish(timeout=15)
    assert code == 3  # what the ranks made of it
    assert sorted(line.split()[-3] for line in out.splitlines() if "got SIGINT" in line) == [
        "0", "1", "2", "3",
    ]  # fmt: skip
    assert wait_for_no_processes(tag, GONE) == []


def test_after_ctrl_c_a_rank_that_ends_first_does_not_cut_the_others_short(tag: str) -> None:
    """After one Ctrl-C the ranks get their grace to finish (say, to save a checkpoint):
    one that exits at once is no failure that stops the rest."""
    launched = Launched(tag, *LOCAL_2x2, "--", "python", "run/behave.py", "save-on-sigint")
    launched.wait_for("ready r", count=4)
    launched.signal(signal.SIGINT)
    code, out, _ = launched.finish(timeout=15)
    assert code == 3
    saved = sorted(line.split()[-2] for line in out.splitlines() if line.endswith(" saved"))
    assert saved == ["1", "2", "3"], out
    assert wait_for_no_processes(tag, GONE) == []


@pytest.mark.parametrize(("max_restarts", "status"), [(2, 0), (1, 5)])
def test_max_restarts_runs_the_whole_group_again(tag: str, max_restarts: int, status: int) -> None:
    args = ["--hosts", "localhost", "--nproc-per-node", "2", "--max-restarts", str(max_restarts)]
    code, out, err = run(tag, *args, "--", "python", "run/behave.py", "restarts")
    assert code == status
    for restart in range(max_restarts + 1):  # the failing rank knows each attempt's number
        assert f"ready r1 restart {restart}" in out, out  # (rank 0 may be stopped before it prints)
    assert f"restarting the group ({max_restarts} of {max_restarts})" in err
    assert wait_for_no_processes(tag, GONE) == []


@pytest.mark.parametrize("action", ["daemon", "detached-daemon"])
def test_a_daemon_forked_by_a_rank_does_not_outlive_it(tag: str, action: str) -> None:
    # detached-daemon: in a session of its own (setsid), out of the rank's process group,
    # then orphaned when the rank exits; its supervisor, the subreaper, ends it.
    code, out, _ = run(tag, "--hosts", "localhost", "--", "python", "run/behave.py", action)
    assert code == 0 and "daemon " in out
    assert wait_for_no_processes(tag, GONE) == []


@pytest.mark.parametrize("check", [True, False])
def test_nodes_whose_script_differs_are_named_before_any_rank_starts(
    tag: str, tmp_path: Path, check: bool
) -> None:
    # Two nodes on this machine, each in its own copy of the script's directory: one copy
    # was edited. The check compares what each node itself reports (env_check).
    from miniray import ClusterError, NodeConfig
    from miniray.run import run as run_command
    from miniray.run_group import RunOptions
    from miniray.run_logs import RunLogs

    for name, text in [("a", "print('v1')\n"), ("b", "print('v2')\n")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.py").write_text(text)
    env = {"MINIRAY_TEST_TAG": tag}
    nodes = [
        NodeConfig("localhost", 1, cwd=str(tmp_path / "a"), env=env),
        NodeConfig("127.0.0.1", 1, cwd=str(tmp_path / "b"), env=env),
    ]
    options = RunOptions(argv=["python", "train.py"], nodes=nodes, env_check=check)
    out, err = io.StringIO(), io.StringIO()
    if check:
        with pytest.raises(ClusterError) as caught:
            run_command(options, RunLogs(None, None, out, err))
        (line,) = [x for x in str(caught.value).splitlines() if "script_dir" in x]
        assert "on localhost" in line and "on 127.0.0.1" in line  # both nodes, each its own
        assert out.getvalue() == ""  # no rank ran
    else:
        assert run_command(options, RunLogs(None, None, out, err)) == 0
        assert "v1" in out.getvalue() and "v2" in out.getvalue()
    assert wait_for_no_processes(tag, GONE) == []
