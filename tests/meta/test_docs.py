"""The documentation's hand-written Python runs.

Every hand-written ```python fence in ``docs/**/*.md`` runs, page by page, as
`tools.doc_blocks` describes (one fresh process per page, blocks in order, front matter
``stage:`` picks the stage's package, a fence titled ``name.py`` is written to that file).
Each page has `PAGE_TIMEOUT` seconds.  The collector and runner are also fed small broken
pages, to show that these tests can fail.  The built site is tested in ``test_site.py``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tools.doc_blocks import PAGE_TIMEOUT, DocPage, collect_pages, parse_page, run_page
from tools.stages import REPO_ROOT

# --- the real docs -----------------------------------------------------------------------------

PAGES_WITH_CODE = [page for page in collect_pages() if page.blocks]


def test_the_docs_have_python_blocks_to_run() -> None:
    names = {page.name: page for page in PAGES_WITH_CODE}
    assert "index.md" in names
    assert "stages/01_local_worker.md" in names
    assert names["stages/01_local_worker.md"].stage == "01_local_worker"


@pytest.mark.timeout(PAGE_TIMEOUT + 30)
@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=[p.name for p in PAGES_WITH_CODE])
def test_page_code_runs(page: DocPage, tmp_path: Path) -> None:
    run = run_page(page, tmp_path / "work")
    if not run.ok:
        pytest.fail(run.message(), pytrace=False)


# --- the collector and the runner can fail -----------------------------------------------------


def write_page(docs: Path, name: str, text: str) -> DocPage:
    path = docs / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return parse_page(path, docs)


def test_a_failing_block_is_reported_with_its_number(tmp_path: Path) -> None:
    page = write_page(
        tmp_path / "docs",
        "broken.md",
        """\
        # Broken

        ```python
        x = 1
        ```

        ```python
        assert x == 2, "x is not 2"
        ```

        ```python
        print("never reached")
        ```
        """,
    )
    run = run_page(page, tmp_path / "work")
    assert not run.ok
    assert run.failed_block is not None and run.failed_block.number == 2
    assert "broken.md, block 2 (line 7)" in run.message()
    assert "AssertionError: x is not 2" in run.stderr
    assert "never reached" not in run.stdout


def test_blocks_share_one_process_and_titled_files_are_written(tmp_path: Path) -> None:
    page = write_page(
        tmp_path / "docs",
        "modules.md",
        """\
        ```python title="helper.py"
        def double(x):
            return 2 * x
        ```

        !!! note

            ```python
            from helper import double
            value = double(21)
            ```

        ```{ .python title="Using the helper" }
        assert value == 42
        print("value", value)
        ```
        """,
    )
    assert [b.filename for b in page.blocks] == ["helper.py", None, None]
    assert page.blocks[1].code.startswith("from helper import double")  # dedented
    run = run_page(page, tmp_path / "work")
    assert run.ok, run.message()
    assert "value 42" in run.stdout
    assert (tmp_path / "work" / "helper.py").is_file()


def test_included_and_nested_fences_are_not_run(tmp_path: Path) -> None:
    page = write_page(
        tmp_path / "docs",
        "skips.md",
        """\
        ```python
        --8<-- "stages/01_local_worker/miniray/channel.py:format"
        ```

        ````markdown
        ```python
        raise SystemExit("inside a Markdown example")
        ```
        ````

        ```pycon
        >>> raise SystemExit("not python")
        ```

        ```python
        ran = True
        ```
        """,
    )
    assert [b.code for b in page.blocks] == ["ran = True\n"]


def test_front_matter_stage_picks_the_stage_package(tmp_path: Path) -> None:
    code = """\
        ```python
        import pathlib, miniray
        print(pathlib.Path(miniray.__file__).parent.parent.name)
        ```
        """
    staged = write_page(tmp_path / "docs", "staged.md", "---\nstage: 01_local_worker\n---\n" + code)
    plain = write_page(tmp_path / "docs", "plain.md", code)
    assert staged.stage == "01_local_worker" and plain.stage is None
    staged_run = run_page(staged, tmp_path / "staged")
    plain_run = run_page(plain, tmp_path / "plain")
    assert staged_run.stdout.strip() == "01_local_worker", staged_run.message()
    assert plain_run.stdout.strip() == REPO_ROOT.name, plain_run.message()


def test_a_hanging_page_times_out_and_names_the_block(tmp_path: Path) -> None:
    page = write_page(
        tmp_path / "docs",
        "hangs.md",
        """\
        ```python
        import time
        ```

        ```python
        time.sleep(60)
        ```
        """,
    )
    run = run_page(page, tmp_path / "work", timeout=1.0)
    assert run.returncode is None
    assert run.failed_block is not None and run.failed_block.number == 2
    assert "timed out" in run.message()
