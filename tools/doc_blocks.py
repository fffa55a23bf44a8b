"""Hand-written Python in the documentation: find it in the Markdown pages, and run it.

Every ```python fence in ``docs/**/*.md`` is collected, except fences that include code with a
snippet line (``--8<-- "path:section"``): that code is the stage's own source, tested
elsewhere.  A page's blocks run in order, in one fresh ``python`` process, in a working
directory, as if they were one script (a later block sees an earlier block's names).
``PYTHONPATH`` is the repository root, so ``import miniray`` is the library; a page whose front
matter says ``stage: 01_local_worker`` gets that stage's folder instead.  A fence titled with a
file name, ```python title="squares.py"```, is written to that file in the working directory
instead of being run, so a later block can import it.

``tests/meta/test_docs.py`` runs every page this way; `tools.doc_driver` is the program that
runs a page's blocks.

Why not sybil or pytest-markdown-docs, which collect Markdown code blocks as tests?  What this
does that they cannot: both run the blocks inside the pytest process, where ``miniray`` is
whichever package that run imported first; here a stage page gets its own stage's
``miniray`` (a page about stage 1 must not run against stage 2's package, and two
``miniray`` packages cannot be imported in one process), in a fresh process per page.  And
the blocks fork workers and start servers: a page that hangs is killed here with its whole
process group, workers included, and named by block, where a block run in-process leaves
its children to the test runner.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tools.stages import REPO_ROOT, find_stage

DOCS_DIR = REPO_ROOT / "docs"
DRIVER = Path(__file__).with_name("doc_driver.py")  # the program that runs a page's blocks
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


def run_page(
    page: DocPage, workdir: Path, *, timeout: float = PAGE_TIMEOUT, root: Path = REPO_ROOT
) -> PageRun:
    """Run the page's blocks in order, in one fresh Python process, in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    blocks_file = workdir.parent / f"{workdir.name}.blocks.json"
    progress_file = workdir.parent / f"{workdir.name}.progress"
    blocks = [{"page": page.name, **dataclasses.asdict(b)} for b in page.blocks]
    blocks_file.write_text(json.dumps(blocks), encoding="utf-8")
    import_path = find_stage(page.stage, root).path if page.stage else root
    env = {**os.environ, "PYTHONPATH": str(import_path), "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen(
        [sys.executable, str(DRIVER), str(blocks_file), str(progress_file)],
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


# --- reading Markdown ------------------------------------------------------------------------


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
