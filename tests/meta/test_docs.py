"""The documentation works: its hand-written Python runs, and the site builds with --strict.

Code blocks
    Every ```python fence in ``docs/**/*.md`` is run, except fences that include code with a
    snippet line (``--8<-- "path:section"``): that code is the stage's own source, tested
    elsewhere.  A page's blocks run in order, in one fresh ``python`` process, in a temporary
    directory, as if they were one script (a later block sees an earlier block's names).
    ``PYTHONPATH`` is the repository root, so ``import miniray`` is the library; a page whose
    front matter says ``stage: 01_local_worker`` gets that stage's folder instead.  A fence
    titled with a file name, ```python title="squares.py"```, is written to that file in the
    temporary directory instead of being run, so a later block can import it.  Each page has
    `PAGE_TIMEOUT` seconds.

The site
    ``mkdocs build --strict`` passes; the built site loads nothing from the network (mermaid is
    bundled); stage pages have their exercises and included code.  The build also fails, as it
    should, on a missing snippet file or section and on a broken stage placeholder.

The collector and runner are also fed small broken pages, to show that these tests can fail.
"""

from __future__ import annotations

import html as htmllib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tools.stages import find_stage

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS_DIR = REPO_ROOT / "docs"
HOOK = REPO_ROOT / "docs_hooks" / "miniray_docs.py"
PAGE_TIMEOUT = 60.0  # seconds for all the blocks of one page
PYTHON_LANGUAGES = frozenset({"python", "py", "python3"})

FENCE_OPEN_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
SNIPPET_LINE_RE = re.compile(r"^\s*;?-+8<-+(\s|$)")
ATTRIBUTE_RE = re.compile(r"""([\w-]+)=(?:"([^"]*)"|'([^']*)'|(\S+))""")
FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\n(?P<body>.*?\n)---[ \t]*\n", re.DOTALL)
STAGE_KEY_RE = re.compile(r"^stage:[ \t]*['\"]?(?P<stage>[^'\"\s]+)['\"]?[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """One hand-written Python fence of a page."""

    number: int  # 1-based, among the page's hand-written Python blocks
    line: int  # line of the opening fence in the Markdown file
    code: str
    filename: str | None = None  # title="name.py": written to that file, not run


@dataclass
class DocPage:
    """A Markdown page and the Python blocks to run from it."""

    path: Path
    name: str  # relative to the docs folder, e.g. "stages/01_local_worker.md"
    stage: str | None  # front matter `stage:`, if any
    blocks: list[Block] = field(default_factory=list)


@dataclass(frozen=True)
class PageRun:
    """How running a page's blocks went."""

    page: DocPage
    returncode: int | None  # None: timed out
    failed_block: Block | None  # the block that raised or hung
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def message(self) -> str:
        """Which page and block failed, and the process's stderr."""
        where = self.page.name
        if self.failed_block is not None:
            block = self.failed_block
            where += f", block {block.number} (line {block.line})"
        what = "timed out" if self.returncode is None else f"failed (exit code {self.returncode})"
        return f"{where} {what}\n--- stderr ---\n{self.stderr}\n--- stdout ---\n{self.stdout}"


# --- collecting --------------------------------------------------------------------------------


def collect_pages(docs_dir: Path = DOCS_DIR) -> list[DocPage]:
    """Every Markdown page under ``docs_dir``, with its hand-written Python blocks."""
    return [parse_page(path, docs_dir) for path in sorted(docs_dir.rglob("*.md"))]


def parse_page(path: Path, docs_dir: Path) -> DocPage:
    """Read one page: its front matter's stage and its runnable Python fences."""
    text = path.read_text(encoding="utf-8")
    front = FRONT_MATTER_RE.match(text)
    stage_match = STAGE_KEY_RE.search(front["body"]) if front else None
    stage = stage_match["stage"] if stage_match else None
    page = DocPage(path, path.relative_to(docs_dir).as_posix(), stage)
    for line, language, attributes, code in iter_fences(text):
        if language not in PYTHON_LANGUAGES:
            continue
        if any(SNIPPET_LINE_RE.match(body_line) for body_line in code.splitlines()):
            continue  # included from a stage's source, not hand-written
        title = attributes.get("title", "")
        filename = title if title.endswith(".py") else None
        page.blocks.append(Block(len(page.blocks) + 1, line, code, filename))
    return page


def iter_fences(text: str) -> list[tuple[int, str, dict[str, str], str]]:
    """Each fenced block of ``text``: (line of the opening fence, language, attributes, body).

    A fence may be indented (inside an admonition); its body is dedented by as much. A fence
    inside another fence (a Markdown example showing a Python fence) is part of the outer
    fence's body, not a block of its own.
    """
    found = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE_OPEN_RE.match(lines[i])
        if match is None or (match["fence"][0] == "`" and "`" in match["info"]):
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"].expandtabs(4))
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(_strip_indent(lines[j], indent))
            j += 1
        language, attributes = parse_info(match["info"])
        found.append((i + 1, language, attributes, "\n".join(body) + "\n"))
        i = j + 1
    return found


def parse_info(info: str) -> tuple[str, dict[str, str]]:
    """The language and ``key="value"`` attributes of a fence's info string.

    Both ```` ```python title="x.py" ```` and ```` ``` { .python title="x.py" } ```` work.
    """
    info = info.strip()
    if info.startswith("{") and info.endswith("}"):
        info = info[1:-1].strip()
    words = info.split()
    language = words[0].lstrip(".").lower() if words and "=" not in words[0] else ""
    attributes = {m[1]: m[2] or m[3] or m[4] or "" for m in ATTRIBUTE_RE.finditer(info)}
    return language, attributes


def _strip_indent(line: str, indent: int) -> str:
    expanded = line.expandtabs(4)
    leading = len(expanded) - len(expanded.lstrip(" "))
    return expanded[min(indent, leading) :]


# --- running -----------------------------------------------------------------------------------

# Runs in the page's process: `python -c DRIVER blocks.json progress.txt`, cwd = the tmp dir.
DRIVER = r"""
import json, linecache, os, sys, traceback
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
progress = sys.argv[2]
namespace = {"__name__": "__main__", "__builtins__": __builtins__}
for block in blocks:
    with open(progress, "w") as f:
        f.write(str(block["number"]))
    if block["filename"]:
        path = os.path.normpath(block["filename"])
        if os.path.isabs(path) or path.startswith(".."):
            sys.exit(f"block {block['number']}: title {block['filename']!r} leaves the directory")
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(block["code"])
        continue
    name = f"<{block['page']} block {block['number']}, line {block['line']}>"
    linecache.cache[name] = (len(block["code"]), None, block["code"].splitlines(True), name)
    try:
        exec(compile(block["code"], name, "exec"), namespace)
    except BaseException as error:
        sys.stdout.flush()
        print(f"docs: {name} raised:", file=sys.stderr)
        traceback.print_exception(type(error), error, error.__traceback__.tb_next)
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
with open(progress, "w") as f:
    f.write("done")
"""


def run_page(
    page: DocPage, workdir: Path, *, timeout: float = PAGE_TIMEOUT, root: Path = REPO_ROOT
) -> PageRun:
    """Run the page's blocks in order, in one fresh Python process, in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    blocks_file = workdir.parent / f"{workdir.name}.blocks.json"
    progress_file = workdir.parent / f"{workdir.name}.progress"
    blocks_file.write_text(
        json.dumps(
            [
                {
                    "page": page.name,
                    "number": b.number,
                    "line": b.line,
                    "code": b.code,
                    "filename": b.filename,
                }
                for b in page.blocks
            ]
        ),
        encoding="utf-8",
    )
    import_path = find_stage(page.stage, root).path if page.stage else root
    env = {**os.environ, "PYTHONPATH": str(import_path), "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(blocks_file), str(progress_file)],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so a timeout can end its workers too
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        returncode: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        returncode = None
    failed = None
    if returncode != 0:
        reached = progress_file.read_text() if progress_file.exists() else ""
        failed = next((b for b in page.blocks if str(b.number) == reached), None)
    return PageRun(page, returncode, failed, stdout, stderr)


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


# --- the site ----------------------------------------------------------------------------------


def mkdocs_build(config: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` from the repository root (snippet paths are relative to it)."""
    command = ["build", "--strict", "--config-file", str(config), "--site-dir", str(site_dir)]
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", *command],
        cwd=REPO_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    done = mkdocs_build(REPO_ROOT / "mkdocs.yml", site_dir)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return site_dir


def test_mkdocs_build_strict_passes(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "stages" / "01_local_worker" / "index.html").is_file()


def test_the_site_loads_nothing_from_the_network(site: Path) -> None:
    mermaid = site / "assets" / "javascripts" / "mermaid.min.js"
    assert mermaid.stat().st_size > 1_000_000, "the bundled mermaid is missing or truncated"
    external = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]*\"[^>]*>")
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        tags = [t for t in external.findall(text) if "<link" not in t or "stylesheet" in t]
        assert not tags, f"{html.relative_to(site)} loads from the network: {tags}"
        if html.name == "index.html":
            assert "assets/javascripts/mermaid.min.js" in text, html


def visible_text(html: str) -> str:
    """The text of an HTML page as a reader sees it: tags removed, entities decoded."""
    return htmllib.unescape(re.sub(r"<[^>]*>", "", html))


def test_stage_pages_have_their_code_and_exercises(site: Path) -> None:
    html = (site / "stages" / "01_local_worker" / "index.html").read_text(encoding="utf-8")
    assert "<!-- exercises -->" not in html and "<!-- changed-files -->" not in html
    assert 'class="mermaid"' in html
    text = visible_text(html)
    assert "--8<--" not in text, "a snippet line was not replaced"
    assert "def _take_frame(self)" in text and "def die_with_parent(" in text
    for exercise in find_stage("01_local_worker").exercises:
        assert f"Exercise {exercise.id} — {exercise.title}" in text
        assert f"make exercise EX={exercise.id}" in text


BROKEN_SITES = {
    "good include": ('```python\n--8<-- "{stage}/miniray/channel.py:format"\n```\n', None),
    "missing section": (
        '```python\n--8<-- "{stage}/miniray/channel.py:no_such_section"\n```\n',
        "could not be located",
    ),
    "missing file": ('```python\n--8<-- "{stage}/miniray/no_such_file.py"\n```\n', "could not be"),
    "placeholder without stage": ("<!-- exercises -->\n", "front matter"),
    "unknown stage": ("---\nstage: 99_nothing\n---\n<!-- exercises -->\n", "99_nothing"),
}


@pytest.mark.parametrize("case", BROKEN_SITES)
def test_the_build_fails_on_broken_includes_and_placeholders(case: str, tmp_path: Path) -> None:
    body, expected_error = BROKEN_SITES[case]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(body.format(stage="stages/01_local_worker"), encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {REPO_ROOT / 'mkdocs.yml'}\n"
        f"docs_dir: {docs}\n"
        f"hooks: [{HOOK}]\n"
        "watch: []\n"
        "nav: [index.md]\n",
        encoding="utf-8",
    )
    done = mkdocs_build(config, tmp_path / "site")
    output = done.stdout + done.stderr
    if expected_error is None:
        assert done.returncode == 0, output
    else:
        assert done.returncode != 0, f"the build passed despite: {case}"
        assert expected_error in output, output
