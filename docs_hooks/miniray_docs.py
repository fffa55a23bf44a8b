"""MkDocs hook for the MiniRay site: stage pages built from the stage folders, and mermaid
bundled so that the site works offline.

A stage page names its stage in front matter (``stage: 01_local_worker``).  On such a page:

* each exercise of the stage's ``stage.toml`` is placed where the walkthrough quotes its
  function (`tools.page_exercises.place_exercises`): the statement and the stub first, the
  hint in a collapsed ``??? tip "Hint"`` block, the stage's code in a collapsed
  ``??? success "The stage's code"`` block, still included from the source;
* ``<!-- exercises -->``, alone on a line, becomes the index of those exercises, linking to
  each one;
* ``<!-- changed-files -->``, alone on a line, becomes a table of the files in the stage's
  generated ``CHANGES.diff`` (new, changed or removed, and how many lines) and a link to the
  diff itself, which ``on_files`` copies into the site as ``changes/NN_name.diff``.

The replacement happens in ``on_page_markdown``, before Markdown is converted, so the
snippets and superfences extensions process the generated text like hand-written text.
A placeholder on a page without ``stage:``, an unknown stage, a missing ``CHANGES.diff``
or a stage page with exercises but no ``<!-- exercises -->`` stops the build.

``on_files`` also adds mermaid (the bundle shipped in the ``mermaidx`` wheel) to the site as
``assets/javascripts/mermaid.min.js``, which ``mkdocs.yml`` lists in ``extra_javascript``.
Material only fetches mermaid from its CDN when no global ``mermaid`` object exists.
"""

from __future__ import annotations

import importlib.util
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # MkDocs restores sys.path after loading a hook, so import now
    sys.path.insert(0, str(ROOT))

from tools.page_exercises import exercise_index, place_exercises  # noqa: E402
from tools.stages import DIFF_NAME, Stage, StageError, find_stage, list_stages  # noqa: E402
from tools.stubs import ExerciseError  # noqa: E402

MERMAID_URI = "assets/javascripts/mermaid.min.js"
CHANGES_DIR = "changes"  # the stages' CHANGES.diff files, in the site
EXERCISES_RE = re.compile(r"^[ \t]*<!--[ \t]*exercises[ \t]*-->[ \t]*$", re.MULTILINE)
CHANGED_FILES_RE = re.compile(r"^[ \t]*<!--[ \t]*changed-files[ \t]*-->[ \t]*$", re.MULTILINE)
DIFF_HEADER_RE = re.compile(r"^diff --git a/(?P<old>\S+) b/(?P<new>\S+)$")


# --- mermaid, bundled ------------------------------------------------------------------------


def mermaid_bundle() -> Path:
    """The mermaid bundle inside the installed ``mermaidx`` package."""
    spec = importlib.util.find_spec("mermaidx")
    if spec is None or not spec.submodule_search_locations:
        raise PluginError("mermaidx is not installed: pip install mermaidx (it ships mermaid.js)")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "mermaid.js"
    if not path.is_file():
        raise PluginError(f"mermaidx has no mermaid bundle at {path}")
    return path


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the mermaid bundle to the site, so that no page needs a CDN, and every stage's
    ``CHANGES.diff``, so that the stage pages can link to it."""
    files.append(File.generated(config, MERMAID_URI, abs_src_path=str(mermaid_bundle())))
    for stage in list_stages(ROOT):
        diff = stage.path / DIFF_NAME
        if diff.is_file():
            files.append(File.generated(config, diff_uri(stage), abs_src_path=str(diff)))
    return files


def diff_uri(stage: Stage) -> str:
    """Where a stage's ``CHANGES.diff`` lives in the site: ``changes/01_local_worker.diff``."""
    return f"{CHANGES_DIR}/{stage.name}.diff"


# --- stage pages ------------------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Fill the placeholders of a stage page from its stage folder."""
    where = page.file.src_uri
    has_exercises = EXERCISES_RE.search(markdown) is not None
    has_changes = CHANGED_FILES_RE.search(markdown) is not None
    spec = page.meta.get("stage")
    if spec is None:
        if has_exercises or has_changes:
            raise PluginError(f"{where}: placeholders need front matter naming the stage")
        return markdown
    try:
        stage = find_stage(str(spec), ROOT)
    except StageError as error:
        raise PluginError(f"{where}: front matter stage {spec!r}: {error}") from None
    if stage.exercises and not has_exercises:
        raise PluginError(f"{where}: stage {stage.name} has exercises; add <!-- exercises -->")
    try:
        markdown, unplaced = place_exercises(markdown, stage, ROOT)
        text = exercise_index(stage, unplaced, ROOT)
    except ExerciseError as error:
        raise PluginError(f"{where}: {error}") from None
    if has_exercises:
        markdown = EXERCISES_RE.sub(lambda _: text, markdown)
    if has_changes:
        link = posixpath.relpath(diff_uri(stage), posixpath.dirname(page.file.src_uri) or ".")
        text = changed_files_markdown(stage, link)
        markdown = CHANGED_FILES_RE.sub(lambda _: text, markdown)
    return markdown


def changed_files_markdown(stage: Stage, link: str) -> str:
    """A table of the files in the stage's ``CHANGES.diff``, and a link to the diff."""
    path = stage.path / DIFF_NAME
    if not path.is_file():
        raise PluginError(f"{path} is missing: run `python -m tools.stages sync`")
    rows = diff_summary(path.read_text(encoding="utf-8"))
    if not rows:
        return "No file changed since the previous stage."
    lines = ["| File | Change | Lines added | Lines removed |", "| --- | --- | ---: | ---: |"]
    lines += [f"| `{r['file']}` | {r['change']} | {r['added']} | {r['removed']} |" for r in rows]
    added, removed = sum(r["added"] for r in rows), sum(r["removed"] for r in rows)
    lines += [
        "",
        f"The whole diff, {added} lines added and {removed} removed: [{DIFF_NAME}]({link}) "
        f"(`stages/{stage.name}/{DIFF_NAME}` in the repository; `git apply` takes it).",
    ]
    return "\n".join(lines)


def diff_summary(diff: str) -> list[dict[str, Any]]:
    """Per file of a git-style unified diff: its name, new/changed/removed, lines +/-."""
    rows: list[dict[str, Any]] = []
    in_header = False
    for line in diff.splitlines():
        match = DIFF_HEADER_RE.match(line)
        if match:
            rows.append({"file": match["new"], "change": "changed", "added": 0, "removed": 0})
            in_header = True
        elif not rows:
            continue
        elif in_header and line.startswith("new file"):
            rows[-1]["change"] = "new"
        elif in_header and line.startswith("deleted file"):
            rows[-1]["change"] = "removed"
        elif in_header and line.startswith(("---", "+++", "index ", "old mode", "new mode")):
            pass
        elif line.startswith("@@"):
            in_header = False
        elif line.startswith("+"):
            rows[-1]["added"] += 1
        elif line.startswith("-"):
            rows[-1]["removed"] += 1
    return rows
