"""Fixes that travel (`tools.carry`): a later stage's own copy of an earlier stage's file takes
in the earlier stage's fixes on ``sync`` (a 3-way merge), ``check`` fails until it has, and a
conflict is shown with markers and reported, never guessed.

The trees are small ones built in a temporary folder: stage 1 has ``errors.py``, stage 2
inherits it, stage 3 owns its copy with one class more.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.stages import REPO_ROOT, CarryReport, find_stage, problems, sync

STAGE_ONE_TOML = """\
title = "One"
capabilities = ["local"]
"""

STAGE_TWO_TOML = """\
title = "Two"
capabilities = ["local", "tcp"]
inherit = ["miniray/a.py", "miniray/errors.py"]
"""


ERRORS_V1 = """\
class MiniRayError(Exception):
    \"\"\"Base class.\"\"\"


class ChannelClosed(MiniRayError):
    \"\"\"The peer closed the channel.\"\"\"
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Stages 1 and 2 (synced); stage 2 owns its ``__init__.py``, inherits the rest."""
    one, two = tmp_path / "stages" / "01_one", tmp_path / "stages" / "02_two"
    write(one / "stage.toml", STAGE_ONE_TOML)
    write(one / "miniray" / "__init__.py", '"""One."""\n')
    write(one / "miniray" / "a.py", "def f() -> int:\n    return 1\n")
    write(one / "miniray" / "errors.py", ERRORS_V1)
    write(two / "stage.toml", STAGE_TWO_TOML)
    write(two / "miniray" / "__init__.py", '"""Two."""\n')
    return tmp_path


def test_an_owned_copy_gets_a_merge_base_and_a_changed_original_is_reported(tree: Path) -> None:
    assert any("has no merge base" in p for p in problems(tree))
    sync(tree)
    assert problems(tree) == []
    assert (tree / "stages/02_two/.merge-base/miniray/__init__.py").read_text() == '"""One."""\n'
    write(tree / "stages/01_one/miniray/__init__.py", '"""One, fixed."""\n')
    assert (
        "stages/02_two/miniray/__init__.py: stages/01_one/miniray/__init__.py changed since "
        "this copy last took it in (`make sync` merges the change)"
    ) in problems(tree)


STAGE_THREE_TOML = """\
title = "Three"
capabilities = ["local", "tcp"]
inherit = ["miniray/a.py"]
"""


@pytest.fixture
def owned(tree: Path) -> Path:
    """Stage 1 has errors.py; stage 2 inherits it; stage 3 owns its copy, with one more class."""
    three = tree / "stages" / "03_three"
    write(three / "stage.toml", STAGE_THREE_TOML)
    write(three / "miniray" / "__init__.py", '"""Three."""\n')
    write(
        three / "miniray" / "errors.py",
        ERRORS_V1 + "\n\nclass ServerFull(MiniRayError):\n    pass\n",
    )
    sync(tree)
    assert problems(tree) == []
    return tree


def test_a_fix_in_the_first_stage_travels_into_a_later_stage_s_own_copy(owned: Path) -> None:
    fixed = ERRORS_V1.replace('"""Base class."""', '"""Base class of every MiniRay error."""')
    write(owned / "stages/01_one/miniray/errors.py", fixed)
    found = problems(owned)
    assert (
        "stages/03_three/miniray/errors.py: stages/02_two/miniray/errors.py changed since "
        "this copy last took it in (`make sync` merges the change)"
    ) in found, found
    reports: list[CarryReport] = []
    sync(owned, reports)
    three = (owned / "stages/03_three/miniray/errors.py").read_text()
    assert three == fixed + "\n\nclass ServerFull(MiniRayError):\n    pass\n"  # fix + own class
    assert [r.merged for r in reports] == [[], ["stages/03_three/miniray/errors.py"]]
    assert problems(owned) == []


def test_a_conflict_is_shown_with_markers_and_reported_never_guessed(owned: Path) -> None:
    write(
        owned / "stages/01_one/miniray/errors.py",
        ERRORS_V1.replace("The peer closed the channel.", "The other end closed the channel."),
    )
    three = owned / "stages/03_three/miniray/errors.py"
    write(three, three.read_text().replace("The peer closed the channel.", "Closed by the peer."))
    reports: list[CarryReport] = []
    sync(owned, reports)
    assert reports[-1].conflicts == ["stages/03_three/miniray/errors.py"]
    text = three.read_text()
    assert "<<<<<<< stages/03_three/miniray/errors.py (this stage)" in text
    assert "Closed by the peer." in text and "The other end closed the channel." in text
    assert ">>>>>>> stages/02_two/miniray/errors.py" in text
    found = problems(owned)
    assert "stages/03_three/miniray/errors.py: unresolved merge conflict markers" in found, found
    done = subprocess.run(
        [sys.executable, "-m", "tools.stages", "check", "--root", str(owned)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "unresolved merge conflict markers" in done.stdout


def test_the_real_stages_own_copies_have_merge_bases() -> None:
    stage = find_stage("2")
    assert (stage.path / ".merge-base" / "miniray" / "errors.py").is_file()
