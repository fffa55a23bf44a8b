"""What only a forked local Worker promises: fork hygiene and process ownership.

Stage 1 fixed each of these in the original design; every later stage keeps them.
Tests that must kill "the parent" run a small parent program in a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
import workfns
from testutil import process_exists, run_parent

from miniray import ProtocolError, Worker, spawn_workers

pytestmark = pytest.mark.needs("local")


@pytest.mark.ex01_3  # the channel closing under recv is a normal end: code 0
def test_closing_one_worker_gives_it_eof_while_a_sibling_lives() -> None:
    first = Worker(workfns.echo)
    second = Worker(workfns.echo)  # forked after first: it must not keep first's socket
    try:
        started = time.monotonic()
        first.close(timeout=5)
        assert first.returncode == 0, "the worker should see EOF and end by itself"
        assert time.monotonic() - started < 2
        second.send("still here")
        assert second.recv(timeout=5) == "still here"
    finally:
        second.close()


@pytest.mark.ex01_4
def test_workers_die_when_their_parent_is_killed() -> None:
    parent = run_parent(
        """
        workers = spawn_workers(workfns.sleep_forever, 2)
        print(*[w.recv(timeout=10)["pid"] for w in workers], flush=True)
        time.sleep(60)
        """
    )
    assert parent.stdout is not None
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2 and all(process_exists(pid) for pid in pids)
    parent.kill()
    parent.wait(timeout=10)
    deadline = time.monotonic() + 5
    try:
        while any(process_exists(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(process_exists(pid) for pid in pids)
    finally:  # a wrong die_with_parent (the exercise's mutants) must not leave them running
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.ex01_4
def test_a_child_whose_parent_already_died_exits() -> None:
    from miniray.process import die_with_parent

    pid = os.fork()
    if pid == 0:
        try:
            die_with_parent(parent_pid=1)  # "our parent" is not who we expected: gone
        finally:
            os._exit(0)  # reached only if die_with_parent failed to exit
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1


@pytest.mark.ex01_3
def test_unflushed_output_appears_before_the_worker_exits() -> None:
    parent = run_parent(
        """
        worker = Worker(workfns.print_unflushed)
        print("exit code", worker.wait(timeout=10), flush=True)
        """
    )
    out, _ = parent.communicate(timeout=30)
    assert "printed-but-never-flushed" in out
    assert "exit code 0" in out


def test_parent_output_buffered_before_fork_is_not_printed_twice() -> None:
    parent = run_parent(
        """
        print("once", end="")  # sits in the parent's buffer while it forks
        Worker(workfns.print_unflushed).wait(timeout=10)
        """
    )
    out, _ = parent.communicate(timeout=30)
    assert out.count("once") == 1


def test_signal_handlers_are_reset_in_the_worker() -> None:
    old_term = signal.signal(signal.SIGTERM, lambda *_: None)
    old_usr1 = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        with Worker(workfns.report_signals) as worker:
            report = worker.recv(timeout=5)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGUSR1, old_usr1)
    assert report == {"SIGTERM_default": True, "SIGUSR1_default": True, "SIGINT_python": True}


def test_spawn_workers_gives_each_rank_its_environment() -> None:
    workers = spawn_workers(
        workfns.report_env, 3, env_for_rank=lambda rank: {"CUDA_VISIBLE_DEVICES": str(rank)}
    )
    try:
        for worker in workers:
            worker.send(["CUDA_VISIBLE_DEVICES"])
        seen = [w.recv(timeout=5)["CUDA_VISIBLE_DEVICES"] for w in workers]
    finally:
        for worker in workers:
            worker.close()
    assert seen == ["0", "1", "2"]
    assert all(w.returncode is not None for w in workers)


def test_an_oversize_frame_from_the_worker_is_a_protocol_error() -> None:
    import adapters

    def send_huge_header(handle: object) -> None:
        sock = adapters.raw_socket(handle)
        sock.sendall(adapters.frame(b"", length=2**63))
        sock.recv(1)  # until the parent closes its end: then exit, as a worker should

    with Worker(send_huge_header) as worker:
        with pytest.raises(ProtocolError):
            worker.recv(timeout=5)
        with pytest.raises(ProtocolError):
            worker.recv(timeout=5)


def test_a_dropped_worker_is_killed_and_reaped() -> None:
    worker = Worker(workfns.sleep_forever)
    pid = worker.recv(timeout=5)["pid"]
    del worker
    import gc

    gc.collect()
    assert not process_exists(pid)


def test_a_worker_forked_by_a_worker_holds_no_stale_descriptors() -> None:
    def nest(handle: object) -> None:
        with Worker(workfns.echo) as inner:
            inner.send("nested")
            handle.send(inner.recv(timeout=5))  # type: ignore[attr-defined]

    with Worker(workfns.echo) as sibling, Worker(nest) as outer:
        assert outer.recv(timeout=10) == "nested"
        sibling.send("ok")
        assert sibling.recv(timeout=5) == "ok"


@pytest.mark.parametrize("work_fn", [42, "workfns.echo", None])
def test_a_work_function_that_cannot_be_called_is_refused_before_the_fork(work_fn: object) -> None:
    with pytest.raises(TypeError, match="work_fn must be a callable"):
        Worker(work_fn)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("max_frame", "error", "says"),
    [
        ("1", TypeError, "max_frame must be an int, in bytes, not '1'"),  # was a bare '<' error
        (2.5, TypeError, r"max_frame must be an int, in bytes, not 2\.5"),  # was taken
        (True, TypeError, "max_frame must be an int, in bytes, not True"),  # was 1 byte
        (0, ValueError, "max_frame=0: a size in bytes, 1 or more"),
    ],
)
def test_a_limit_that_is_not_a_size_is_refused_before_the_fork(
    max_frame: object, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        Worker(workfns.echo, max_frame=max_frame)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("env", "error", "says"),
    [
        ({1: "2"}, TypeError, "environment names and values are str"),
        ({"A": 2}, TypeError, "environment names and values are str, not 'A': int"),
        ({"A=B": "1"}, ValueError, "not an environment variable name"),
        ({"": "1"}, ValueError, "not an environment variable name"),
        ({"A": "x\0y"}, ValueError, "a NUL byte"),
    ],
)
def test_an_environment_the_child_could_not_set_is_refused_before_the_fork(
    env: dict[object, object], error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        Worker(workfns.echo, env=env)  # type: ignore[arg-type]


def test_spawn_workers_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError, match="count=-1: a count, 0 or more"):
        spawn_workers(workfns.echo, -1)
    assert spawn_workers(workfns.echo, 0) == []


@pytest.mark.parametrize("count", ["2", 2.5, True, None])
def test_spawn_workers_refuses_a_count_that_is_not_an_int_before_any_fork(count: object) -> None:
    # a bool is an int to Python, never a count to a user; "2" and None failed in a comparison
    with pytest.raises(TypeError, match=r"count must be an int, not "):
        spawn_workers(workfns.echo, count)  # type: ignore[arg-type]


def test_a_worker_s_garbage_collection_does_not_copy_what_it_inherited() -> None:
    """A forked worker shares the parent's memory until one of them writes to it. The
    cyclic GC keeps its bookkeeping in every object's header, so a full collection in the
    worker would write to each object it inherited and copy them all, page by page: with
    torch loaded in the parent, about 40 MiB a worker. What a worker inherits stays out of
    its collections."""
    ballast = [[i] for i in range(300_000)]  # ~30 MiB of lists, which the GC tracks
    worker = Worker(workfns.report_memory_a_collection_copies)
    try:
        copied = worker.recv(timeout=30)
    finally:
        worker.close()
    assert len(ballast) == 300_000
    assert copied < 4 << 20, f"a collection made {copied >> 20} MiB of the worker's own"
