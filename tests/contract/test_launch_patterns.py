"""The ways our docs and demos start a server keep working when its workers print a lot.

A server's stdout is its workers' stdout too. A launcher that reads the ready line and
then stops reading leaves a pipe that fills (64 KiB) and blocks the next ``print`` of
any worker for ever. Each launch pattern we show is run here, as written, with a worker
that prints 10 MB before it answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from testutil import WORKFNS

from tools.doc_blocks import DOCS_DIR, parse_page

pytestmark = pytest.mark.needs("tcp")
ROOT = Path(__file__).resolve().parents[2]
PRINTED = 10 * 1024 * 1024


def docs_start_server() -> str:
    """The Stage 2 page's ``start_server``, from the block that defines it."""
    page = parse_page(DOCS_DIR / "stages" / "02_tcp.md", DOCS_DIR)
    (block,) = [b for b in page.blocks if "def start_server(" in b.code]
    return block.code


PATTERNS = {
    "the Stage 2 page": docs_start_server,
    "examples/demo.py": lambda: (
        f"import sys\nsys.path.insert(0, {str(ROOT / 'examples')!r})\n"
        "from demo import start_server\n"
    ),
}


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_worker_that_prints_10_mb_does_not_block(pattern: str, tmp_path: Path) -> None:
    script = PATTERNS[pattern]() + textwrap.dedent(
        f"""
        from miniray import RemoteWorker

        server, port = start_server(work_fn={WORKFNS + ":print_a_lot"!r})
        try:
            with RemoteWorker("localhost", port) as worker:
                worker.send({PRINTED})  # print this many bytes, then answer
                worker.send("still answering")
                assert worker.recv(timeout=20) == "still answering"
        finally:
            server.terminate()
            assert server.wait(timeout=10) == 0
        """
    )
    printed = tmp_path / "stdout"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    with printed.open("w") as stdout:
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    # What the worker printed reached the launcher's own stdout: all of it, but for what
    # may still have been in the pipe (64 KiB) when the launcher exited.
    assert printed.stat().st_size >= PRINTED - 64 * 1024
