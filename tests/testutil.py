"""Small process helpers the tests share (not part of the seam: no miniray inside)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def process_exists(pid: int) -> bool:
    """True if ``pid`` is a live process; a zombie counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def run_parent(body: str) -> subprocess.Popen[str]:
    """Start a Python "parent" program that has ``miniray``, ``workfns`` and ``time`` imported.

    ``PYTHONPATH`` (set by conftest to the stage under test) is kept, with tests/ added.
    """
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    pythonpath = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), tests_dir]))
    code = "import time\nfrom miniray import *\nimport workfns\n" + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": pythonpath},
    )
