"""The function registry: call_remote, submit and futures, on local and remote workers."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import ext_workfns
import pytest

pytestmark = pytest.mark.needs("registry")


@pytest.mark.ex05_1
@pytest.mark.ex05_2
def test_call_remote_returns_the_value(ext_connect: Any) -> None:
    worker = ext_connect(ext_workfns.registry)
    assert worker.call_remote("add", 2, 3) == 5
    assert worker.call_remote("add", "a", b="b") == "ab"
    assert worker.call_remote("sqrt", 16) == 4.0  # registered by import path


@pytest.mark.ex05_1
@pytest.mark.ex05_2
def test_the_function_runs_in_the_worker(ext_connect: Any) -> None:
    import os

    worker = ext_connect(ext_workfns.registry)
    assert worker.call_remote("pid") == worker.pid != os.getpid()


@pytest.mark.ex05_1
@pytest.mark.ex05_2
def test_a_remote_exception_is_a_remote_error_and_the_worker_goes_on(ext_connect: Any) -> None:
    import miniray

    worker = ext_connect(ext_workfns.registry)
    with pytest.raises(miniray.RemoteError) as info:
        worker.call_remote("fail", "no such key")
    assert info.value.remote_type == "KeyError"
    assert "no such key" in info.value.remote_message
    assert "in fail" in info.value.remote_traceback  # the worker's own traceback
    assert worker.call_remote("add", 1, 1) == 2


@pytest.mark.ex05_1
def test_an_unknown_name_lists_what_is_registered(ext_connect: Any) -> None:
    import miniray

    worker = ext_connect(ext_workfns.registry)
    with pytest.raises(miniray.UnknownFunction) as info:
        worker.call_remote("train_step", [1, 2])
    assert isinstance(info.value, miniray.RemoteError)
    assert "'train_step'" in str(info.value)
    assert "'add'" in str(info.value) and "'echo'" in str(info.value)


@pytest.mark.ex05_1
def test_a_result_the_codec_cannot_carry_is_an_error_not_the_end(ext_connect: Any) -> None:
    import miniray

    worker = ext_connect(ext_workfns.registry)
    with pytest.raises(miniray.RemoteError) as info:
        worker.call_remote("unsendable")
    assert info.value.remote_type == "Unsendable"  # a TypeError, named for what it means
    assert "unsendable" in str(info.value), "the error names the function"
    assert worker.call_remote("echo", [1]) == [1]


@pytest.mark.ex05_1
@pytest.mark.parametrize("codec", ["json", "marshal"])
def test_a_reply_too_big_or_too_deep_to_send_is_an_error_and_calls_in_flight_go_on(
    ext_connect: Any, codec: str
) -> None:
    # The worker sends what is under its own max_frame: 1 MiB here, 64 MiB on the servers.
    import miniray

    worker = ext_connect(ext_workfns.registry, codec=codec, max_frame=1 << 20)
    too_big = (1 << 20) + 1 if isinstance(worker, miniray.Worker) else (64 << 20) + 1
    calls = [
        worker.submit("nested", 5000),
        worker.submit("echo", 1),
        worker.submit("sized", too_big),
        worker.submit("echo", 2),
    ]
    for call in calls[0::2]:
        with pytest.raises(miniray.RemoteError, match="cannot be sent") as info:
            call.result(timeout=30)
        assert info.value.remote_type == "Unsendable"
    assert [calls[1].result(timeout=10), calls[3].result(timeout=10)] == [1, 2]
    assert worker.call_remote("sized", 10) == "x" * 10  # the same worker, still serving


def test_an_error_whose_message_cannot_be_made_is_still_an_error_reply(ext_connect: Any) -> None:
    import miniray

    worker = ext_connect(ext_workfns.registry)
    with pytest.raises(miniray.RemoteError, match="_Unprintable") as raised:
        worker.call_remote("unprintable_error")
    assert "str() failed" in str(raised.value)
    assert worker.call_remote("echo", [1]) == [1]  # the worker lives


def test_a_message_that_is_not_a_call_ends_the_worker_with_a_protocol_error(
    ext_connect: Any,
) -> None:
    import miniray

    worker = ext_connect(ext_workfns.registry)
    worker.send({"hello": "there"})  # no calls yet: the channel is still ours to use
    with pytest.raises(miniray.RemoteError) as info:
        worker.recv(timeout=10)
    assert info.value.remote_type == "ProtocolError"


@pytest.mark.ex05_2
def test_many_calls_in_flight_each_get_their_own_result(ext_connect: Any) -> None:
    worker = ext_connect(ext_workfns.registry)
    futures = {i: worker.submit("add", i, b=1000) for i in range(200)}
    for i, future in futures.items():
        assert future.result(timeout=10) == i + 1000


def test_first_calls_from_many_threads_each_get_their_own_result(ext_connect: Any) -> None:
    # The first call starts the reply reader: threads racing to make it must share one.
    for _ in range(3):  # fresh workers: only the very first calls race
        results = _first_calls_from_threads(ext_connect(ext_workfns.registry), threads=8)
        wrong = {n: got for n, got in results.items() if got != n + 1}
        assert len(results) == 80 and not wrong, wrong


def _first_calls_from_threads(worker: Any, threads: int) -> dict[int, Any]:
    """Each thread, released at once, submits 10 calls add(n, b=1); n -> result or error."""
    import threading

    start = threading.Barrier(threads)
    results: dict[int, Any] = {}

    def caller(t: int) -> None:
        start.wait(timeout=10)
        futures = [(t * 100 + i, worker.submit("add", t * 100 + i, b=1)) for i in range(10)]
        for n, future in futures:
            try:
                results[n] = future.result(timeout=10)
            except Exception as e:
                results[n] = e

    running = [threading.Thread(target=caller, args=(t,), daemon=True) for t in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout=30)
    return results


@pytest.mark.parametrize("burst", [0, 200])
def test_a_call_alone_in_flight_is_read_by_its_caller(ext_connect: Any, burst: int) -> None:
    """No hand-over from the reader thread when nothing else is in flight (issue 18, item 4);
    after a burst of submits too: the reader thread keeps the turn while replies are due,
    and gives it back with the last one."""
    import threading

    worker = ext_connect(ext_workfns.registry)
    futures = [worker.submit("add", i, b=1) for i in range(burst)]
    assert [f.result(timeout=10) for f in futures] == list(range(1, burst + 1))
    readers: list[str] = []
    recv = worker._channel.recv

    def recording_recv(*args: Any, **kwargs: Any) -> Any:
        readers.append(threading.current_thread().name)
        return recv(*args, **kwargs)

    worker._channel.recv = recording_recv
    for i in range(20):
        assert worker.call_remote("add", i, b=1) == i + 1
    assert readers == [threading.current_thread().name] * 20


def test_calls_and_submits_mixed_across_threads_each_get_their_own_result(
    ext_connect: Any,
) -> None:
    """Callers that read their own replies and the reader thread take turns, never both."""
    import threading

    worker = ext_connect(ext_workfns.registry)
    results: dict[int, Any] = {}

    def caller(t: int) -> None:
        for i in range(30):
            n = t * 1000 + i
            try:
                if i % 3 == 0:
                    results[n] = worker.submit("add", n, b=1).result(timeout=10)
                else:
                    results[n] = worker.call_remote("add", n, b=1)
            except Exception as e:
                results[n] = e

    running = [threading.Thread(target=caller, args=(t,), daemon=True) for t in range(4)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout=30)
    wrong = {n: got for n, got in results.items() if got != n + 1}
    assert len(results) == 120 and not wrong, wrong
    assert worker.call_remote("add", 1, 2) == 3  # and the turn to read was given back


@pytest.mark.ex05_2
def test_submit_returns_before_the_call_ends(ext_connect: Any) -> None:
    worker = ext_connect(ext_workfns.registry)
    slow = worker.submit("nap", 0.3)
    fast = worker.submit("add", 1, 2)  # queued behind the nap: calls run in order
    assert not slow.done()  # no timing claim: it cannot be done before the nap ends
    assert fast.result(timeout=10) == 3 and slow.result(timeout=10) == 0.3


@pytest.mark.ex05_2
def test_wait_and_as_completed_across_local_and_remote_workers(servers: Any) -> None:
    import miniray

    local = miniray.Worker(ext_workfns.registry)
    remote = servers.connect(ext_workfns.registry)
    try:
        futures = [w.submit("add", i, 1) for i in range(10) for w in (local, remote)]
        _, not_done = concurrent.futures.wait(futures, timeout=10)
        assert not not_done
        results = sorted(f.result() for f in concurrent.futures.as_completed(futures))
        assert results == sorted([i + 1 for i in range(10)] * 2)
    finally:
        local.close(timeout=2)
        remote.close(timeout=2)


@pytest.mark.ex05_2
def test_a_worker_that_dies_fails_every_pending_future(ext_connect: Any) -> None:
    import miniray

    worker = ext_connect(ext_workfns.registry)
    assert worker.call_remote("add", 1, 1) == 2
    napping = worker.submit("nap", 1.0)  # the calls below queue behind it: none can fail
    pending = [worker.submit("die", 3), *(worker.submit("add", i, 1) for i in range(5))]
    assert napping.result(timeout=10) == 1.0  # at submit because the worker died already
    # Over TCP the server reports the exit code, and the futures pass it on. A local
    # worker's reply reader sees only its socket close (os._exit sends no exit report).
    codes = {3} if isinstance(worker, miniray.RemoteWorker) else {3, None}
    for future in pending:
        with pytest.raises(miniray.WorkerDied) as info:
            future.result(timeout=10)
        assert info.value.returncode in codes, "the futures say how the worker ended"
    with pytest.raises(miniray.WorkerDied):
        worker.submit("add", 1, 1)


@pytest.mark.ex05_2
def test_a_reply_to_no_pending_call_ends_the_calls_with_a_protocol_error(
    ext_connect: Any,
) -> None:
    """It cannot be someone else's result, and no call may wait forever behind it."""
    import miniray

    worker = ext_connect(ext_workfns.stray_reply)
    future = worker.submit("add", 1, 2)
    with pytest.raises(miniray.WorkerDied) as info:
        future.result(timeout=5)
    assert isinstance(info.value.__cause__, miniray.ProtocolError)


def test_recv_is_refused_while_calls_own_the_channel(ext_connect: Any) -> None:
    import miniray

    worker = ext_connect(ext_workfns.registry)
    worker.call_remote("add", 1, 1)
    with pytest.raises(miniray.CallsActive):
        worker.recv(timeout=0.1)


def test_arguments_that_cannot_be_sent_raise_at_submit(ext_connect: Any) -> None:
    worker = ext_connect(ext_workfns.registry)
    with pytest.raises(TypeError):
        worker.submit("echo", object())
    assert worker.call_remote("echo", "still fine") == "still fine"


def test_close_with_calls_in_flight_fails_them_and_leaves_no_process() -> None:
    from testutil import process_exists

    import miniray

    worker = miniray.Worker(ext_workfns.registry)
    future = worker.submit("nap", 30)
    worker.close(timeout=0.5)
    with pytest.raises(miniray.WorkerDied):
        future.result(timeout=5)
    assert not process_exists(worker.pid)


def test_registry_names_are_unique_and_paths_must_resolve() -> None:
    import miniray

    registry = miniray.Registry()
    registry.register(len)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(len)
    with pytest.raises(ValueError, match="no function"):
        registry.register_path("math:no_such_function")
    with pytest.raises(TypeError, match="only a callable can be registered, not 42"):
        registry.register(42, name="answer")  # type: ignore[call-overload]
    assert registry.names() == ["len"]


def test_a_name_no_call_could_reach_is_refused_when_registered() -> None:
    import functools

    import miniray

    registry = miniray.Registry()
    # A name that is not a str could never be called (submit refuses it); "" was taken as
    # "use __name__"; a partial, which has no __name__, raised AttributeError
    with pytest.raises(TypeError, match="a function's name is a str, not 1"):
        registry.register(len, name=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a function's name cannot be empty"):
        registry.register(len, name="")
    with pytest.raises(TypeError, match=r"functools.partial\(<built-in function max>, 1\) has "):
        registry.register(functools.partial(max, 1))
    registry.register(functools.partial(max, 1), name="at_least_one")
    assert registry.names() == ["at_least_one"]


def test_a_call_by_a_name_that_is_not_a_string_is_refused_before_it_is_sent(
    ext_connect: Any,
) -> None:
    worker = ext_connect(ext_workfns.registry)
    with pytest.raises(TypeError, match="a function's name is a str, not 42"):
        worker.call_remote(42)
    with pytest.raises(TypeError, match="a function's name is a str"):
        worker.submit(None)
    assert worker.call_remote("add", 1, 1) == 2  # nothing went out: the channel is as it was


@pytest.mark.needs("cluster")
def test_cluster_workers_take_calls_and_futures_span_the_cluster() -> None:
    import os

    import miniray

    spec = f"{os.path.dirname(ext_workfns.__file__)}/ext_workfns.py:registry"
    with miniray.Cluster([miniray.NodeConfig("localhost", 2)], log=lambda line: None) as cluster:
        workers = cluster.start(work_fn=spec)
        futures = [w.submit("add", w.rank, 10) for w in workers for _ in range(3)]
        done, _ = concurrent.futures.wait(futures, timeout=20)
        assert sorted(f.result() for f in done) == [10, 10, 10, 11, 11, 11]
        pids = {w.call_remote("pid") for w in workers}
        assert pids == {w.pid for w in workers}
