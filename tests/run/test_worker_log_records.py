"""A worker's lines as `logging` records of ``miniray.worker``, carrying host and rank."""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.needs("run")


def test_each_line_becomes_a_record_with_its_host_and_rank(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from miniray.logs import LogLine, log_to_logging

    sink = log_to_logging()
    with caplog.at_level(logging.INFO, logger="miniray.worker"):
        sink(LogLine("gpu7", 3, "step 10 loss 0.5"))
        sink(LogLine("gpu7", None, "the server's own line"))
        sink(LogLine("gpu8", 4, "\x1b]0;pwned\x07title"))
    records = [(r.name, r.levelno, r.host, r.rank, r.getMessage()) for r in caplog.records]  # type: ignore[attr-defined]
    assert records == [
        ("miniray.worker", logging.INFO, "gpu7", 3, "step 10 loss 0.5"),
        ("miniray.worker", logging.INFO, "gpu7", None, "the server's own line"),
        ("miniray.worker", logging.INFO, "gpu8", 4, r"\x1b]0;pwned\x07title"),  # escaped
    ]


def test_a_logger_and_level_of_ones_own(caplog: pytest.LogCaptureFixture) -> None:
    from miniray.logs import LogLine, log_to_logging

    sink = log_to_logging(logging.getLogger("myapp.ranks"), logging.WARNING)
    with caplog.at_level(logging.INFO):
        sink(LogLine("n1", 0, "hello"))
    [record] = caplog.records
    assert (record.name, record.levelno, record.getMessage()) == ("myapp.ranks", 30, "hello")
    formatted = logging.Formatter("[%(host)s r%(rank)s] %(message)s").format(record)
    assert formatted == "[n1 r0] hello"
