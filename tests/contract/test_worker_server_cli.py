"""The worker server's command line as a user meets it: --help, its name, --version,
and what it says about a work function it cannot use.

Each test runs the real command in a subprocess.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from testutil import secret_env

from tools.stages import Stage

pytestmark = pytest.mark.needs("tcp")


def run(
    args: list[str], cwd: Path, command: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = command or [sys.executable, "-m", "miniray.worker_server"]
    env = secret_env(str(cwd))
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )


def start_with_module(tmp_path: Path, source: str, spec: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "user_module.py").write_text(textwrap.dedent(source))
    return run(["--port", "0", "--work-fn", spec], tmp_path)


@pytest.mark.ex02_5
@pytest.mark.parametrize("spec", ["user_module.work_fn", "user_module.py:work_fn"])
def test_a_module_that_raises_at_import_is_reported_with_its_type_and_traceback(
    tmp_path: Path, spec: str
) -> None:
    result = start_with_module(
        tmp_path,
        """\
        def read_settings():
            return {}["learning_rate"]

        SETTINGS = read_settings()

        def work_fn(handle):
            pass
        """,
        spec,
    )
    assert result.returncode == 2 and "MINIRAY_READY" not in result.stdout
    module = spec.rpartition(":")[0] if ":" in spec else "user_module"
    assert f"cannot import {module!r}: KeyError: 'learning_rate'" in result.stderr
    # The last frames: where in the module it was raised, not the import machinery.
    assert 'user_module.py", line 4, in <module>' in result.stderr
    assert 'user_module.py", line 2, in read_settings' in result.stderr
    assert 'return {}["learning_rate"]' in result.stderr
    assert "<frozen" not in result.stderr and "importlib" not in result.stderr


@pytest.mark.ex02_5
def test_a_missing_dependency_of_the_module_names_the_line_that_imports_it(
    tmp_path: Path,
) -> None:
    result = start_with_module(
        tmp_path,
        "import no_such_dependency\n\ndef work_fn(handle):\n    pass\n",
        "user_module.work_fn",
    )
    assert result.returncode == 2
    assert "ModuleNotFoundError: No module named 'no_such_dependency'" in result.stderr
    assert 'user_module.py", line 1, in <module>' in result.stderr


@pytest.mark.ex02_5
def test_a_function_in_a_packages_module_is_found_after_the_last_dot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from miniray.worker_server import load_work_fn

    package = tmp_path / "user_package_25"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text("def work_fn(handle):\n    return 'ran ' + handle\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        for spec in ("user_package_25.jobs.work_fn", "user_package_25.jobs:work_fn"):
            assert load_work_fn(spec)("it") == "ran it", spec
    finally:
        for name in ("user_package_25.jobs", "user_package_25"):
            sys.modules.pop(name, None)


@pytest.mark.ex02_5
def test_a_name_that_is_not_a_function_is_not_callable_rather_than_missing(
    tmp_path: Path,
) -> None:
    result = start_with_module(tmp_path, "work_fn = 1\n", "user_module.work_fn")
    assert result.returncode == 2
    assert "'user_module'.work_fn is not callable (its type is int)" in result.stderr
    assert "has no function" not in result.stderr


def test_help_explains_every_option(tmp_path: Path, stage: Stage) -> None:
    result = run(["--help"], tmp_path)
    assert result.returncode == 0
    options = result.stdout.split("options:", 1)[1]
    entries = re.split(r"\n  (?=-)", "\n" + options.strip("\n"))[1:]
    named = {re.findall(r"--[\w-]+", entry)[0]: entry for entry in entries}
    expected = {"--help", "--version", "--host", "--port", "--workers", "--work-fn"}
    expected |= {"--handshake-timeout", "--exit-grace", "--max-frame"}
    if "marshal" in stage.capabilities:  # a choice of codecs: which ones clients may use
        expected.add("--codecs")
    if "buffers" in stage.capabilities:  # a budget of their own for the buffers of a message
        expected.add("--max-buffer-bytes")
    assert set(named) == expected
    for option, entry in named.items():
        syntax_and_help = re.split(r"\s{2,}", entry.strip(), maxsplit=1)  # help starts after
        assert len(syntax_and_help) == 2, f"{option} has no help text: {entry!r}"


def test_help_names_the_command_as_it_was_run(tmp_path: Path, stage_path: Path) -> None:
    as_module = run(["--help"], tmp_path)
    assert as_module.stdout.startswith("usage: python -m miniray.worker_server ")
    # What pip writes for the console script (pyproject's [project.scripts]), by hand,
    # so that it runs the package under test rather than an installed one.
    script = tmp_path / "miniray-worker-server"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\nfrom miniray.worker_server import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)
    as_script = run(["--help"], tmp_path, command=[str(script)])
    assert as_script.returncode == 0, as_script.stderr
    assert as_script.stdout.startswith("usage: miniray-worker-server ")


def test_version_is_the_packages(tmp_path: Path) -> None:
    import miniray

    result = run(["--version"], tmp_path)
    assert result.returncode == 0
    assert (
        result.stdout.strip() == f"python -m miniray.worker_server (MiniRay {miniray.__version__})"
    )


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--port", "70000", "port 70000 is not in 0-65535"),
        ("--workers", "0", "max_workers=0: a count, 1 or more"),
        ("--handshake-timeout", "-1", "handshake_timeout=-1.0: a finite number of seconds"),
        ("--exit-grace", "nan", "exit_grace=nan: a finite number of seconds"),
    ],
)
def test_a_setting_out_of_range_is_one_line_and_exit_status_2(
    tmp_path: Path, option: str, value: str, says: str
) -> None:
    (tmp_path / "user_module.py").write_text("def work_fn(handle):\n    pass\n")
    result = run(["--port", "0", "--work-fn", "user_module.work_fn", option, value], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"python -m miniray.worker_server: error: {says}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
