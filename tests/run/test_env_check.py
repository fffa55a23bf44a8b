"""The same software everywhere: each node's facts, and a run refused when they differ,
naming the nodes and the values."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("run")

FACTS = {"python": "3.11.7", "miniray": "0.6.0", "torch": "2.5.1", "script_dir": "sha256:ab"}


def test_a_node_reports_its_python_miniray_torch_and_script_dir(tmp_path: Path) -> None:
    import miniray
    from miniray.env_check import software_facts

    (tmp_path / "train.py").write_text("print('hi')\n")
    facts = software_facts(str(tmp_path))
    assert facts["python"] == platform.python_version()
    assert facts["miniray"] == miniray.__version__
    assert facts["torch"]  # a version, or "not installed"
    assert facts["script_dir"].startswith("sha256:")
    assert json.loads(json.dumps(facts)) == facts  # plain strings, to travel as a reply


def test_torch_is_read_without_importing_it_and_absent_is_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from miniray import env_check

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    version = env_check._torch_version()
    assert "torch" not in sys.modules  # importing torch takes seconds on every node
    installed = importlib.util.find_spec("torch") is not None
    assert (version != "not installed") == installed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert env_check._torch_version() == "not installed"


def test_the_same_facts_everywhere_pass() -> None:
    from miniray.env_check import check_same_software

    check_same_software({"n1": dict(FACTS), "n2": dict(FACTS), "n3": dict(FACTS)})
    check_same_software({})
    check_same_software({"n1": dict(FACTS)})


def test_a_mismatch_names_both_nodes_and_both_values() -> None:
    from miniray import ClusterError
    from miniray.env_check import check_same_software

    facts = {"n1": dict(FACTS), "n2": dict(FACTS), "gpu9": {**FACTS, "python": "3.12.1"}}
    with pytest.raises(ClusterError) as caught:
        check_same_software(facts)
    message = str(caught.value)
    assert "python: 3.11.7 on n1, n2; 3.12.1 on gpu9" in message
    assert "miniray:" not in message  # only what differs
    assert "--no-env-check" in message


def test_torch_absent_on_one_node_is_a_mismatch() -> None:
    from miniray import ClusterError
    from miniray.env_check import check_same_software

    facts = {"n1": dict(FACTS), "n2": {**FACTS, "torch": "not installed"}}
    with pytest.raises(ClusterError, match=r"torch: 2\.5\.1 on n1; not installed on n2"):
        check_same_software(facts)


def test_every_difference_is_listed_and_a_fact_not_reported_is_one() -> None:
    from miniray import ClusterError
    from miniray.env_check import check_same_software

    other = {"python": "3.11.7", "miniray": "0.5.0", "script_dir": "sha256:cd"}
    with pytest.raises(ClusterError) as caught:
        check_same_software({"a": dict(FACTS), "b": other})
    lines = str(caught.value).splitlines()[1:]
    assert [line.strip() for line in lines] == [
        "miniray: 0.6.0 on a; 0.5.0 on b",
        "torch: 2.5.1 on a; (not reported) on b",
        "script_dir: sha256:ab on a; sha256:cd on b",
    ]


def test_many_nodes_of_one_value_are_counted_not_all_named() -> None:
    from miniray import ClusterError
    from miniray.env_check import check_same_software

    facts = {f"n{i:02}": dict(FACTS) for i in range(64)}
    facts["n63"] = {**FACTS, "miniray": "0.5.0"}
    with pytest.raises(ClusterError) as caught:
        check_same_software(facts)
    assert "0.6.0 on n00, n01, n02, n03, n04, n05, n06, n07 and 55 more; 0.5.0 on n63" in str(
        caught.value
    )


# --- the script directory's digest ---


def make_tree(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("import pkg\n")
    (root / "pkg" / "__init__.py").write_text("X = 1\n")


def test_the_digest_follows_paths_and_contents_not_times(tmp_path: Path) -> None:
    from miniray.env_check import directory_digest

    make_tree(tmp_path / "a")
    make_tree(tmp_path / "b")
    first = directory_digest(str(tmp_path / "a"))
    assert first == directory_digest(str(tmp_path / "b"))
    os.utime(tmp_path / "b" / "train.py", (0, 0))
    assert directory_digest(str(tmp_path / "b")) == first  # a copy's times differ

    (tmp_path / "b" / "pkg" / "__init__.py").write_text("X = 2\n")  # same size, new contents
    assert directory_digest(str(tmp_path / "b")) != first
    make_tree(tmp_path / "c")
    (tmp_path / "c" / "pkg" / "__init__.py").rename(tmp_path / "c" / "pkg" / "other.py")
    assert directory_digest(str(tmp_path / "c")) != first
    assert directory_digest(str(tmp_path / "missing")) == "missing"


def test_the_digest_skips_caches_git_hidden_files_and_links(tmp_path: Path) -> None:
    from miniray.env_check import directory_digest

    make_tree(tmp_path)
    before = directory_digest(str(tmp_path))
    for folder in ("__pycache__", ".git", ".venv", "pkg/__pycache__"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.pyc").write_bytes(os.urandom(64))
    (tmp_path / ".env").write_text("TOKEN=x\n")
    (tmp_path / "link.py").symlink_to(tmp_path / "train.py")
    assert directory_digest(str(tmp_path)) == before


def test_the_digest_stays_on_the_directorys_own_filesystem(tmp_path: Path) -> None:
    # A script in / (as in many containers) had its digest walk into /proc, where reading
    # /proc/kmsg blocks: the run waited 30 s, then failed with "a rank supervisor did not
    # answer". Here /proc is bind-mounted inside the script's directory.
    (tmp_path / "train.py").write_text("print('hi')\n")
    digest = [sys.executable, "-c", "import sys; from miniray.env_check import "
              "directory_digest; print(directory_digest(sys.argv[1]))", str(tmp_path)]  # fmt: skip
    alone = subprocess.run(digest, capture_output=True, text=True, timeout=30, check=True)
    (tmp_path / "proc").mkdir()
    mounted = subprocess.run(["mount", "--bind", "/proc", str(tmp_path / "proc")],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount /proc here (needs root): {mounted.stderr.strip()}")
    try:
        with_proc = subprocess.run(digest, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the digest walked into the mounted /proc and blocked there")
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "proc")], check=True)
    assert with_proc.returncode == 0, with_proc.stderr
    assert with_proc.stdout == alone.stdout  # an empty folder adds nothing, and nor did /proc


def test_big_files_and_many_files_count_by_name_and_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray import env_check

    monkeypatch.setattr(env_check, "MAX_FILE_BYTES", 100)
    (tmp_path / "data.bin").write_bytes(b"a" * 200)
    before = env_check.directory_digest(str(tmp_path))
    (tmp_path / "data.bin").write_bytes(b"b" * 200)  # same size: not read
    assert env_check.directory_digest(str(tmp_path)) == before
    (tmp_path / "data.bin").write_bytes(b"b" * 201)  # its size still counts
    assert env_check.directory_digest(str(tmp_path)) != before

    monkeypatch.setattr(env_check, "MAX_FILES", 2)  # files 3 and on: names and sizes
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.txt").write_text("1")
    before = env_check.directory_digest(str(tmp_path))
    (tmp_path / "c.txt").write_text("2")  # the third file, sorted
    assert env_check.directory_digest(str(tmp_path)) == before
    (tmp_path / "a.txt").write_text("2")  # the first
    assert env_check.directory_digest(str(tmp_path)) != before


def test_the_walk_stops_after_max_walk_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray import env_check

    monkeypatch.setattr(env_check, "MAX_WALK", 3)
    for i in range(5):
        (tmp_path / f"f{i}").write_text(str(i))
    before = env_check.directory_digest(str(tmp_path))
    (tmp_path / "f4").write_text("changed, and past the walk's end")
    assert env_check.directory_digest(str(tmp_path)) == before
    (tmp_path / "f0").write_text("changed")
    assert env_check.directory_digest(str(tmp_path)) != before


def test_once_the_read_budget_is_spent_files_count_by_name_and_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray import env_check

    monkeypatch.setattr(env_check, "MAX_READ_BYTES", 3)
    (tmp_path / "a").write_text("12")
    (tmp_path / "b").write_text("34")  # 2 + 2 > 3: not read
    before = env_check.directory_digest(str(tmp_path))
    (tmp_path / "b").write_text("56")
    assert env_check.directory_digest(str(tmp_path)) == before
    (tmp_path / "a").write_text("56")
    assert env_check.directory_digest(str(tmp_path)) != before
