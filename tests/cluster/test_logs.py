"""Worker logs on the coordinator: a slow sink neither blocks workers nor loses lines
unsaid, the console sink shows control characters as text, and nothing is lost when the
sink keeps up. Every cluster test checks that no server or worker is left."""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sshhosts import wait_for_no_processes

pytestmark = pytest.mark.needs("cluster")

CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # all but tab


def test_a_slow_log_sink_never_blocks_a_worker_and_stop_says_what_it_dropped(
    node: Any, tag: str, caplog: pytest.LogCaptureFixture
) -> None:
    from miniray import Cluster

    delivered: list[int] = []

    def slow(line: Any) -> None:  # 2 ms a line: 5,000 lines take 10 s
        time.sleep(0.002)
        if line.rank is not None:
            delivered.append(int(line.text.split()[0]))

    cluster = Cluster([node("localhost", 1)], log=slow)
    cluster.log_drain_timeout = 1.0
    with cluster:
        [worker] = cluster.start(work_fn="cluster_workfns.timed_prints")
        worker.send(5000)
        printing = worker.recv(timeout=60)
        stopping = time.monotonic()
    stopped = time.monotonic() - stopping
    assert printing < 1.0  # 0.01 s unhindered; several seconds when print waits for the sink
    dropped = cluster.dropped_log_lines
    assert dropped > 0  # 1 s of draining is 500 lines
    assert len(delivered) + dropped == 5000
    assert delivered == sorted(delivered)  # in order, and none twice
    assert stopped < cluster._stop_grace + cluster.log_drain_timeout + 3.0
    assert f"{dropped} log lines dropped" in caplog.text
    assert wait_for_no_processes(tag, 5.0) == []


def test_the_log_buffer_drops_and_counts_lines_when_full_and_never_waits() -> None:
    from miniray.log_delivery import LINE_COST, LogDelivery
    from miniray.logs import LogLine

    busy, release, taken = threading.Event(), threading.Event(), []

    def stuck(line: Any) -> None:  # takes a line, then waits to be released
        taken.append(line.text)
        busy.set()
        assert release.wait(10)

    delivery = LogDelivery(stuck)
    delivery.start(max_bytes=10 * (LINE_COST + 1))
    try:
        delivery(LogLine("h", 0, "0"))
        assert busy.wait(5)  # the sink has line 0 and keeps it
        started = time.monotonic()
        for i in range(1, 100):
            delivery(LogLine("h", 0, str(i % 10)))
        assert time.monotonic() - started < 0.5  # no line waited for the sink
        assert delivery.dropped == 89  # lines 1-10 are held, the rest dropped
    finally:
        release.set()
    assert delivery.close(5.0) == 89
    assert taken == [str(i % 10) for i in range(11)]


def test_closing_the_log_buffer_gives_the_sink_until_the_deadline() -> None:
    from miniray.log_delivery import LogDelivery
    from miniray.logs import LogLine

    taken: list[str] = []

    def slow(line: Any) -> None:
        time.sleep(0.01)
        taken.append(line.text)

    delivery = LogDelivery(slow)
    delivery.start(max_bytes=1 << 20)
    for i in range(1000):  # 10 s of work for the sink
        delivery(LogLine("h", 0, str(i)))
    started = time.monotonic()
    dropped = delivery.close(0.3)
    assert 0.3 <= time.monotonic() - started < 2.0
    assert len(taken) + dropped == 1000
    assert taken == [str(i) for i in range(len(taken))]
    delivery(LogLine("h", 0, "too late"))  # after close: counted, never delivered
    assert delivery.dropped == dropped + 1
    assert "too late" not in taken


def test_a_log_buffer_never_started_closes_at_once() -> None:
    from miniray.log_delivery import LogDelivery
    from miniray.logs import LogLine

    delivery = LogDelivery(lambda line: None)
    delivery(LogLine("h", 0, "before start"))
    assert delivery.close(5.0) == 1


def test_the_console_sink_escapes_control_characters_and_files_keep_them(
    node: Any, tag: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from cluster_workfns import TERMINAL_ESCAPES

    from miniray import Cluster

    with Cluster([node("localhost", 1)]) as cluster:
        [worker] = cluster.start(work_fn="cluster_workfns.terminal_escapes")
        assert worker.recv(timeout=10) == "done"
    err = capfd.readouterr().err
    shown = [line for line in err.split("\n") if line.startswith("[localhost r0] ")]
    assert shown == [
        r"[localhost r0] \x1b]0;pwned\x07title",
        r"[localhost r0] \x1b[2J\x1b[Hcleared",
        r"[localhost r0] \x1b]52;c;cm0gLXJmIH4K\x07clipboard",
        r"[localhost r0] real\x0d[node9 r7] forged",
        "[localhost r0] \\x9b31mC1\tand a tab",
    ]
    assert not any(CONTROL.search(line) for line in shown)

    with Cluster([node("localhost", 1)], log=tmp_path / "logs") as cluster:
        [worker] = cluster.start(work_fn="cluster_workfns.terminal_escapes")
        assert worker.recv(timeout=10) == "done"
    kept = (tmp_path / "logs" / "rank-0.log").read_bytes()
    assert kept == "".join(line + "\n" for line in TERMINAL_ESCAPES).encode()
    assert wait_for_no_processes(tag, 5.0) == []


def test_log_to_stream_shows_every_control_character_but_tab_as_an_escape() -> None:
    from miniray.logs import LogLine, log_to_stream

    out = io.StringIO()
    everything = "".join(map(chr, range(0xA0)))
    log_to_stream(out)(LogLine("host\x1b", 3, everything))
    written = out.getvalue()
    assert written.endswith("\n")
    assert not CONTROL.search(written[:-1])
    assert written.startswith(r"[host\x1b r3] \x00\x01")
    assert "\\x08\t\\x0a" in written and "\\x1f !" in written and "~\\x7f\\x80" in written
    assert written.endswith("\\x9f\n")


def test_eight_ranks_of_20000_lines_and_a_100_megabyte_line_lose_nothing(
    node: Any, tag: str
) -> None:
    from miniray import Cluster

    seen: dict[int, list[int]] = {rank: [] for rank in range(8)}
    big = {"bytes": 0, "whole": True}

    def keep(line: Any) -> None:
        if line.rank is None:
            return
        if line.text.endswith(f" of rank {line.rank}"):
            seen[line.rank].append(int(line.text.split()[0]))
        else:
            big["bytes"] += len(line.text)
            big["whole"] = big["whole"] and line.text == "7" * len(line.text)

    with Cluster([node("localhost", 8)], log=keep) as cluster:
        workers = cluster.start(work_fn="cluster_workfns.numbered_lines")
        for worker in workers:
            worker.send([20_000, 100_000_000 if worker.rank == 7 else 0])
        assert [w.recv(timeout=120) for w in workers] == ["done"] * 8
    assert cluster.dropped_log_lines == 0
    assert seen == {rank: list(range(20_000)) for rank in range(8)}
    assert big == {"bytes": 100_000_000, "whole": True}
    assert wait_for_no_processes(tag, 5.0) == []


@pytest.mark.needs("run")
def test_a_clusters_lines_become_logging_records_with_host_and_rank(
    node: Any, tag: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from cluster_workfns import TERMINAL_ESCAPES

    from miniray import Cluster
    from miniray.logs import escape_controls, log_to_logging

    with (
        caplog.at_level(logging.INFO, logger="miniray.worker"),
        Cluster([node("localhost", 1)], log=log_to_logging()) as cluster,
    ):
        [worker] = cluster.start(work_fn="cluster_workfns.terminal_escapes")
        assert worker.recv(timeout=10) == "done"
    records = [r for r in caplog.records if r.name == "miniray.worker" and r.rank == 0]  # type: ignore[attr-defined]
    assert [(r.host, r.getMessage()) for r in records] == [  # type: ignore[attr-defined]
        ("localhost", escape_controls(line)) for line in TERMINAL_ESCAPES
    ]
    assert wait_for_no_processes(tag, 5.0) == []
