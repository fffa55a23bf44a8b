"""What the package says about itself matches what it is: its version, its docstring,
and the default ``max_frame`` with the memory it may cost, wherever that is documented.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.stages import Stage

pytestmark = pytest.mark.per_stage  # the stage itself: run in every stage's run

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_has_a_version_and_its_docstring_names_it(stage: Stage) -> None:
    import miniray

    assert re.fullmatch(r"\d+\.\d+\.\d+", miniray.__version__)
    major_minor = ".".join(miniray.__version__.split(".")[:2])
    doc = miniray.__doc__ or ""
    assert doc.startswith("MiniRay: ")
    if stage.name != "miniray":  # a stage's copy says which version of the library it is
        assert (
            f"\nMiniRay {major_minor}, the library as the tutorial's stage {stage.number} " in doc
        )
    else:  # the library itself: pydoc shows __version__ (VERSION) under the docstring
        assert "the library as the tutorial's stage" not in doc


@pytest.mark.library
def test_the_installed_version_is_the_packages(stage: Stage) -> None:
    import miniray

    if stage.path != ROOT:
        pytest.skip("a stage folder's package is not the installed one: tested in the plain run")
    try:
        installed = importlib.metadata.version("miniray")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("miniray is not installed in this environment (pip install -e .)")
    assert installed == miniray.__version__  # pyproject.toml reads it from the package


def test_the_default_max_frame_is_what_the_docs_say(stage: Stage) -> None:
    import miniray
    from miniray.wire import DEFAULT_MAX_FRAME

    assert DEFAULT_MAX_FRAME % 2**20 == 0
    said = f"default {DEFAULT_MAX_FRAME // 2**20} MiB"
    documented = [inspect.getdoc(miniray.Worker) or ""]
    if "tcp" in stage.capabilities:
        documented += [inspect.getdoc(miniray.RemoteWorker) or ""]
        documented += [inspect.getdoc(miniray.WorkerServer) or ""]
        documented += [_help_text(), (ROOT / "docs" / "stages" / "02_tcp.md").read_text()]
    for text in documented:
        flat = " ".join(text.split())
        assert said in flat, f"{said!r} missing from: {flat[:200]}..."
        assert "~50 times" in flat, f"the worst-case factor is missing from: {flat[:200]}..."


def _help_text() -> str:
    command = [sys.executable, "-m", "miniray.worker_server", "--help"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
