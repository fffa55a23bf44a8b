"""The pure parts of ``miniray run``: grouping stacks (exercise 6.2), the restart decision
(exercise 6.3), rank ranges, the command a rank starts with, the options."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("run")

A = 'Thread 0x00007f01 (most recent call first):\n  File "/x/site-packages/torch/d.py", line 9 in all_reduce\n  File "/w/train.py", line 88 in step\n'  # noqa: E501
B = 'Current thread 0x00007f99 (most recent call first):\n  File "/w/dataloader.py", line 41 in __next__\n'  # noqa: E501


@pytest.mark.ex06_2
def test_ranks_with_the_same_stack_form_one_group_in_rank_order() -> None:
    from miniray.run_stacks import group_stacks, normalize_stack

    a_other_thread = A.replace("0x00007f01", "0x00007fff")  # same stack, another thread id
    stacks = {4: A, 3: B, 0: A, 7: a_other_thread, 2: A}
    assert group_stacks(stacks) == [([0, 2, 4, 7], normalize_stack(A)), ([3], normalize_stack(B))]


@pytest.mark.ex06_2
def test_groups_are_ordered_by_their_lowest_rank_not_their_size() -> None:
    from miniray.run_stacks import group_stacks

    groups = group_stacks({5: A, 6: A, 7: A, 1: B})
    assert [ranks for ranks, _ in groups] == [[1], [5, 6, 7]]


@pytest.mark.ex06_2
def test_stacks_that_differ_below_the_first_line_are_not_grouped() -> None:
    from miniray.run_stacks import group_stacks

    deeper = A + '  File "/w/train.py", line 120 in main\n'
    assert [ranks for ranks, _ in group_stacks({0: A, 1: deeper, 2: A})] == [[0, 2], [1]]
    assert group_stacks({}) == []


def test_rank_ranges_and_the_one_line_summary() -> None:
    from miniray.run_stacks import format_ranks, format_stack_groups, summarize_stack

    assert format_ranks([7, 0, 1, 2, 4, 5, 6]) == "0-2,4-7"
    assert format_ranks([3]) == "3" and format_ranks([1, 3]) == "1,3"
    assert summarize_stack(A) == "all_reduce ← step ← train.py:88"
    report = format_stack_groups({0: A, 1: A, 2: A, 3: B}, {4: "stopped"})
    assert report.splitlines()[0] == "ranks 0-2: all_reduce ← step ← train.py:88"
    assert "rank 3: __next__ ← dataloader.py:41" in report
    assert report.splitlines()[-1] == "rank 4: no stack (stopped)"


@pytest.mark.ex06_3
@pytest.mark.parametrize(
    ("codes", "done", "allowed", "decision"),
    [
        ([0, 0, 0], 0, 0, "done"),
        ([0, 0, 0], 3, 3, "done"),  # the last allowed restart succeeded
        ([0, 0, 0], 0, 2, "done"),  # restarts left, none needed
        ([0, 1, 143], 0, 0, "fail"),
        ([0, 1, 143], 0, 2, "restart"),
        ([0, 1, 143], 1, 2, "restart"),
        ([0, 1, 143], 2, 2, "fail"),  # N restarts made: no more
        ([0, None, 0], 0, 1, "restart"),  # a rank that never said counts as failed
        ([0, None, 0], 0, 0, "fail"),
        ([137], 0, 5, "restart"),
    ],
)
def test_the_restart_decision(
    codes: list[int | None], done: int, allowed: int, decision: str
) -> None:
    from miniray.run_group import restart_decision

    assert restart_decision(codes, done, allowed) == decision


def test_python_commands_run_through_the_boot_module_others_as_given() -> None:
    from miniray.run_supervisor import BOOT, boot_argv

    me = sys.executable
    assert boot_argv(["python", "train.py", "--lr", "3"]) == (
        [me, "-u", BOOT, "train.py", "--lr", "3"],
        True,
    )
    assert boot_argv(["train.py"]) == ([me, "-u", BOOT, "train.py"], True)
    assert boot_argv(["python3", "-m", "pkg.train"]) == ([me, "-u", BOOT, "-m", "pkg.train"], True)
    assert boot_argv([me, "t.py"]) == ([me, "-u", BOOT, "t.py"], True)
    assert boot_argv(["python", "-O", "t.py"]) == (["python", "-O", "t.py"], False)
    assert boot_argv(["bash", "-c", "echo"]) == (["bash", "-c", "echo"], False)


def test_options_nproc_ranks_and_gpu_listings() -> None:
    from miniray.run_args import count_gpus, parse_nproc, parse_ranks, shown_ranks

    assert parse_nproc("4") == 4 and parse_nproc("gpu") == "gpu"
    for bad in ("0", "-1", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_nproc(bad)
    assert shown_ranks(parse_ranks("0,3"), 4) == {0, 3} and shown_ranks(None, 4) is None
    assert shown_ranks(parse_ranks("0-2,5"), 6) == {0, 1, 2, 5}
    for bad in ("a", "5-3", "1,"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_ranks(bad)
    listing = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)\nGPU 1: NVIDIA H100 (UUID: GPU-2)\n"
    assert count_gpus(listing) == 2 and count_gpus("") == 0


def test_nproc_gpu_on_a_host_without_gpus_names_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from miniray import NodeConfig
    from miniray.errors import ConfigError
    from miniray.run_args import gpus_on

    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi here
    with pytest.raises(ConfigError, match="no GPU on host localhost"):
        gpus_on(NodeConfig("localhost"))


def test_bad_command_lines_are_clear_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from miniray.run import main

    assert main(["--hosts", "localhost"]) == 1
    assert "no command to run" in capsys.readouterr().err
    assert main(["--hosts", "localhost", "--", "", "train.py"]) == 1  # "$PYTHON" unset
    assert "ConfigError: an empty program name: miniray run" in capsys.readouterr().err
    assert main(["--hosts", "localhost", "--env", "NOEQUALS", "--", "true"]) == 1
    assert "NAME=VALUE" in capsys.readouterr().err
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert main(["--hosts", "localhost", "--log-dir", str(not_a_folder), "--", "true"]) == 1
    err = capsys.readouterr().err  # a line, not a traceback
    assert f"--log-dir '{not_a_folder}': File exists" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--env", "=1"], "--env '=1': '' is not a shell name"),
        (["--env", "A B=1"], "--env 'A B=1': 'A B' is not a shell name"),
        (["--ranks", "1"], "--ranks 1: this run has rank 0 only"),
        (["--nproc-per-node", "2", "--ranks", "0,5-6"], "--ranks 5-6: this run has ranks 0-1"),
        (["--ranks", "0-999999999"], "--ranks 1-999999999: this run has rank 0 only"),  # at once
    ],
)
def test_what_the_nodes_would_refuse_or_never_show_is_refused_before_they_start(
    capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    from miniray.run import main

    assert main(["--hosts", "localhost", *args, "--", "true"]) == 1
    err = capsys.readouterr().err
    assert f"ConfigError: {said}" in err and "ClusterError" not in err


def test_an_empty_launcher_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from miniray.run import main

    with pytest.raises(SystemExit) as exited:  # it was taken as "no --launcher"
        main(["--hosts", "localhost", "--launcher", " ", "--", "true"])
    assert exited.value.code == 2
    assert "argument --launcher: an empty launcher" in capsys.readouterr().err


def test_an_empty_log_dir_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from miniray.run import main

    with pytest.raises(SystemExit) as exited:  # "$LOGDIR" unset: it ran with no logs, silently
        main(["--hosts", "localhost", "--log-dir", "", "--", "true"])
    assert exited.value.code == 2
    assert "argument --log-dir: an empty folder name" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--timeout", "--hang-after", "--stop-grace", "--max-restarts"])
@pytest.mark.parametrize("value", ["-5", "nan", "inf", "soon"])
def test_a_time_or_count_that_cannot_work_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    from miniray.run import main

    with pytest.raises(SystemExit) as exited:  # before anything starts: argparse's exit 2
        main(["--hosts", "localhost", f"{option}={value}", "--", "true"])
    assert exited.value.code == 2
    assert f"argument {option}: {value!r} is not a" in capsys.readouterr().err


def test_a_reserved_port_is_refused_to_others_and_open_to_rank_0s_store() -> None:
    from miniray.netprobe import reserve_port

    with reserve_port() as held:
        port = held.getsockname()[1]
        with socket.socket() as plain, pytest.raises(OSError):  # EADDRINUSE
            plain.bind(("", port))
        with socket.socket() as store:  # as torch's TCPStore binds: SO_REUSEADDR
            store.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            store.bind(("", port))
            store.listen()
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # the store, not the reservation, answers


def test_slurm_nodes_run_the_nproc_given_else_slurm_s_task_counts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from miniray.run_args import options_from, parser

    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol: the hostlist is parsed
    monkeypatch.setenv("SLURM_JOB_NODELIST", "n[1-2]")
    monkeypatch.setenv("SLURM_JOB_CPUS_PER_NODE", "16(x2)")

    def counts(*args: str) -> list[int]:
        options = options_from(parser().parse_args(["--slurm", *args, "--", "python", "t.py"]))
        return [node.num_workers for node in options.nodes]

    assert counts("--nproc-per-node", "1") == [1, 1]  # given: it is what runs
    assert counts() == [16, 16]  # not given: what SLURM says each node has


def test_a_hostfile_s_hosts_run_the_nproc_given_else_their_slots(tmp_path: Path) -> None:
    from miniray.run_args import options_from, parser

    hostfile = tmp_path / "hosts"
    hostfile.write_text("a slots=4\nb\n")

    def counts(*args: str) -> list[int]:
        argv = ["--hosts", str(hostfile), *args, "--", "python", "t.py"]
        return [node.num_workers for node in options_from(parser().parse_args(argv)).nodes]

    assert counts("--nproc-per-node", "2") == [2, 2]  # given: it is what runs, as with --slurm
    assert counts() == [4, 1]  # not given: the file's slots, else 1
