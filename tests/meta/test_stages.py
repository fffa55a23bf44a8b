"""Checks of the repository's stage bookkeeping (`tools.stages`), and proofs that the checker
catches what it should.

The first test is the one that matters day to day: the stages, their inherited files, their
CHANGES.diff and the top-level ``miniray/`` agree.  The rest run `sync` and `problems` on small
trees built in a temporary folder, and on a copy of the real tree, then tamper with them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tools.stages import (
    REPO_ROOT,
    StageError,
    exercise_marker,
    find_stage,
    list_stages,
    problems,
    sync,
    tracked_files,
    unified_diff,
)

STAGE_ONE_TOML = """\
title = "One"
capabilities = ["local"]
inherit = []

[[exercises]]
id = "1.1"
target = "miniray/a.py:f"
title = "Write f"
hint = "Return 1."
"""

STAGE_TWO_TOML = """\
title = "Two"
capabilities = ["local", "tcp"]
inherit = ["miniray/a.py"]
"""


def test_the_repository_has_no_stage_problems() -> None:
    found = problems()
    assert found == [], "run `python -m tools.stages sync`, then fix what is left:\n" + "\n".join(
        found
    )


def test_the_stages_command_line_check_agrees() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.stages", "check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode == 0) == (problems() == []), done.stdout + done.stderr


# --- a small two-stage tree ------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Two synced stages: stage 2 inherits miniray/a.py and adds miniray/b.py."""
    one, two = tmp_path / "stages" / "01_one", tmp_path / "stages" / "02_two"
    write(one / "stage.toml", STAGE_ONE_TOML)
    write(one / "demo.py", "print('one')\n")
    write(one / "miniray" / "__init__.py", '"""One."""\n')
    write(one / "miniray" / "a.py", "def f() -> int:\n    return 1\n")
    write(one / "miniray" / "__pycache__" / "a.cpython-311.pyc", "junk")
    write(two / "stage.toml", STAGE_TWO_TOML)
    write(two / "demo.py", "print('two')\n")
    write(two / "miniray" / "__init__.py", '"""Two."""\n')
    write(two / "miniray" / "b.py", "def g() -> int:\n    return 2")  # no final newline
    sync(tmp_path)
    return tmp_path


def test_sync_copies_inherited_files(tree: Path) -> None:
    inherited = tree / "stages" / "02_two" / "miniray" / "a.py"
    assert inherited.read_text() == "def f() -> int:\n    return 1\n"


def test_sync_writes_the_diffs(tree: Path) -> None:
    first = (tree / "stages" / "01_one" / "CHANGES.diff").read_text()
    second = (tree / "stages" / "02_two" / "CHANGES.diff").read_text()
    assert "--- /dev/null\n+++ b/miniray/a.py\n" in first
    assert "+++ b/demo.py\n" in first
    assert "__pycache__" not in first
    assert "stage.toml" not in first
    assert "miniray/a.py" not in second  # inherited unchanged
    assert "-print('one')\n+print('two')\n" in second
    assert '-"""One."""\n+"""Two."""\n' in second
    assert "+    return 2\n\\ No newline at end of file\n" in second


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_diffs_apply_one_after_another(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("apply")
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    for stage in list_stages(tree):
        subprocess.run(["git", "apply", str(stage.path / "CHANGES.diff")], cwd=work, check=True)
        assert tracked_files(work) == tracked_files(stage.path)


def test_sync_copies_the_final_stage_to_the_top_level_package(tree: Path) -> None:
    top = {p.relative_to(tree).as_posix() for p in (tree / "miniray").rglob("*")}
    assert top == {"miniray/__init__.py", "miniray/a.py", "miniray/b.py"}
    assert (tree / "miniray" / "b.py").read_bytes() == (
        tree / "stages" / "02_two" / "miniray" / "b.py"
    ).read_bytes()


def test_sync_removes_files_the_final_stage_lacks(tree: Path) -> None:
    write(tree / "miniray" / "old" / "gone.py", "")
    sync(tree)
    assert not (tree / "miniray" / "old").exists()
    assert problems(tree) == []


def test_a_synced_tree_has_no_problems_and_sync_is_idempotent(tree: Path) -> None:
    assert problems(tree) == []
    assert sync(tree) == []


def test_sync_refuses_an_inherited_file_the_previous_stage_lacks(tree: Path) -> None:
    toml = tree / "stages" / "02_two" / "stage.toml"
    toml.write_text(STAGE_TWO_TOML.replace('"miniray/a.py"', '"miniray/nope.py"'))
    with pytest.raises(StageError, match=r"nope\.py"):
        sync(tree)
    assert any("nope.py" in p for p in problems(tree))


Tamper = Callable[[Path], object]

TAMPERINGS: dict[str, tuple[Tamper, str]] = {
    "inherited file edited": (
        lambda t: write(t / "stages/02_two/miniray/a.py", "def f() -> int:\n    return 9\n"),
        "stages/02_two/miniray/a.py: inherited file differs",
    ),
    "inherited file deleted": (
        lambda t: (t / "stages/02_two/miniray/a.py").unlink(),
        "stages/02_two/miniray/a.py: inherited file is missing",
    ),
    "stage file edited, diff stale": (
        lambda t: write(t / "stages/02_two/miniray/b.py", "X = 1\n"),
        "stages/02_two/CHANGES.diff: stale",
    ),
    "diff edited": (
        lambda t: write(t / "stages/01_one/CHANGES.diff", "nothing\n"),
        "stages/01_one/CHANGES.diff: stale",
    ),
    "diff deleted": (
        lambda t: (t / "stages/02_two/CHANGES.diff").unlink(),
        "stages/02_two/CHANGES.diff: missing",
    ),
    "top-level file edited": (
        lambda t: write(t / "miniray/b.py", "X = 1\n"),
        "miniray/b.py: differs",
    ),
    "top-level file deleted": (
        lambda t: (t / "miniray/a.py").unlink(),
        "miniray/a.py: missing",
    ),
    "earlier copy of an owned file changed": (
        lambda t: write(t / "stages/01_one/miniray/__init__.py", '"""One, fixed."""\n'),
        "stages/02_two/miniray/__init__.py: stages/01_one/miniray/__init__.py changed since "
        "this copy last took it in",
    ),
    "merge base deleted": (
        lambda t: (t / "stages/02_two/.merge-base/miniray/__init__.py").unlink(),
        "stages/02_two/miniray/__init__.py: owns a copy of stages/01_one's file but has no merge",
    ),
    "top-level file added": (
        lambda t: write(t / "miniray/extra.py", ""),
        "miniray/extra.py: extra",
    ),
    "badly named stage folder": (
        lambda t: (t / "stages/third").mkdir(),
        "stages/third: folder name is not NN_name",
    ),
    "stage folder without stage.toml": (
        lambda t: (t / "stages/03_three").mkdir(),
        "stages/03_three: no stage.toml",
    ),
    "gap in the numbering": (
        lambda t: (t / "stages/02_two").rename(t / "stages/03_two"),
        "are not 1..2 without gaps",
    ),
    "exercise id of another stage": (
        lambda t: write(t / "stages/01_one/stage.toml", STAGE_ONE_TOML.replace('"1.1"', '"2.1"')),
        "must start with the stage number 1",
    ),
    "exercise target file missing": (
        lambda t: write(
            t / "stages/01_one/stage.toml", STAGE_ONE_TOML.replace("a.py:f", "zz.py:f")
        ),
        "target file miniray/zz.py does not exist",
    ),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_the_checker_reports_tampering(tree: Path, name: str) -> None:
    tamper, expected = TAMPERINGS[name]
    tamper(tree)
    found = problems(tree)
    assert any(expected in p for p in found), found


def test_a_malformed_stage_toml_is_a_problem_not_a_crash(tree: Path) -> None:
    write(tree / "stages/02_two/stage.toml", STAGE_TWO_TOML + "colour = 'blue'\n")
    assert any("unknown keys ['colour']" in p for p in problems(tree))
    with pytest.raises(StageError):
        list_stages(tree)


# --- the real tree, copied -------------------------------------------------------------------


@pytest.fixture
def real_copy(tmp_path: Path) -> Path:
    """A synced copy of this repository's stages and top-level package."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "stages", tmp_path / "stages", ignore=ignore)
    if (REPO_ROOT / "miniray").is_dir():
        shutil.copytree(REPO_ROOT / "miniray", tmp_path / "miniray", ignore=ignore)
    sync(tmp_path)
    return tmp_path


def test_sync_on_a_copy_of_the_real_tree_leaves_only_layout_problems(real_copy: Path) -> None:
    layout = ("folder name is not", "no stage.toml", "without gaps", "number")
    assert [p for p in problems(real_copy) if not any(w in p for w in layout)] == []


def test_the_checker_catches_tampering_with_the_real_tree(real_copy: Path) -> None:
    stages = list_stages(real_copy)
    package_file = sorted((real_copy / "miniray").glob("*.py"))[0]
    package_file.write_text(package_file.read_text() + "# tampered with the package\n")
    first_file = sorted((stages[0].path / "miniray").glob("*.py"))[0]
    first_file.write_text(first_file.read_text() + "# tampered\n")
    inherited = [s.path / e for s in stages[1:] for e in s.inherit if (s.path / e).is_file()]
    for victim in inherited[:1]:
        victim.write_text(victim.read_text() + "# tampered\n")
    found = problems(real_copy)
    assert any(p.startswith(f"miniray/{package_file.name}: differs") for p in found), found
    assert f"stages/{stages[0].name}/CHANGES.diff: stale" in found, found
    for victim in inherited[:1]:
        rel = victim.relative_to(real_copy).as_posix()
        assert f"{rel}: inherited file differs from the previous stage's copy" in found, found


# --- finding stages --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["2", "02", "02_two", "stages/02_two"])
def test_find_stage_accepts_numbers_names_and_paths(tree: Path, spec: str) -> None:
    stage = find_stage(spec, tree)
    assert (stage.number, stage.name, stage.path) == (2, "02_two", tree / "stages" / "02_two")
    assert stage.capabilities == frozenset({"local", "tcp"})
    assert stage.inherit == ("miniray/a.py",)


def test_find_stage_accepts_a_workspace_directory(tree: Path) -> None:
    workspace = tree / "elsewhere" / "mine"
    shutil.copytree(tree / "stages" / "01_one", workspace)
    stage = find_stage(str(workspace), tree)
    assert (stage.number, stage.name, stage.path) == (0, "mine", workspace)
    assert [e.id for e in stage.exercises] == ["1.1"]


@pytest.mark.parametrize("spec", ["3", "03_three", "no/such/dir"])
def test_find_stage_rejects_unknown_stages(tree: Path, spec: str) -> None:
    with pytest.raises(StageError):
        find_stage(spec, tree)


def test_exercise_fields(tree: Path) -> None:
    exercise = find_stage("1", tree).exercise("1.1")
    assert (exercise.marker, exercise.file, exercise.qualname) == ("ex01_1", "miniray/a.py", "f")


@pytest.mark.parametrize(("id_", "marker"), [("1.3", "ex01_3"), ("12.1", "ex12_1")])
def test_exercise_markers(id_: str, marker: str) -> None:
    assert exercise_marker(id_) == marker


def test_unified_diff_of_identical_files_is_empty() -> None:
    assert unified_diff({"a": b"x\n"}, {"a": b"x\n"}) == ""
