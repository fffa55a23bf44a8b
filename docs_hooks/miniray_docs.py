"""MkDocs hook for the MiniRay site: stage pages built from the stage folders, and mermaid
bundled so that the site works offline.

A stage page names its stage in front matter (``stage: 01_local_worker``) and may hold two
placeholders, each alone on a line:

* ``<!-- exercises -->``: replaced by every ``[[exercises]]`` entry of the stage's
  ``stage.toml``: a heading "Exercise 1.3 — title", the hint, the stub the learner gets
  (``tools.exercises.render_stub``) and the ``make`` commands that set it up and test it.
* ``<!-- changed-files -->``: replaced by a table of the files in the stage's generated
  ``CHANGES.diff`` (new, changed or removed, and how many lines). The diff itself is
  included on the page with pymdownx.snippets, so a missing diff also fails the build.

The replacement happens in ``on_page_markdown``, before Markdown is converted, so the
snippets and superfences extensions process the generated text like hand-written text.
A placeholder on a page without ``stage:``, an unknown stage, a missing ``CHANGES.diff``
or a stage page with exercises but no ``<!-- exercises -->`` stops the build.

``on_files`` adds mermaid (the bundle shipped in the ``mermaidx`` wheel) to the site as
``assets/javascripts/mermaid.min.js``, which ``mkdocs.yml`` lists in ``extra_javascript``.
Material only fetches mermaid from its CDN when no global ``mermaid`` object exists.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # MkDocs restores sys.path after loading a hook, so import now
    sys.path.insert(0, str(ROOT))

from tools.exercises import render_stub  # noqa: E402
from tools.stages import DIFF_NAME, Stage, StageError, find_stage  # noqa: E402

MERMAID_URI = "assets/javascripts/mermaid.min.js"
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
    """Add the mermaid bundle to the site, so that no page needs a CDN."""
    files.append(File.generated(config, MERMAID_URI, abs_src_path=str(mermaid_bundle())))
    return files


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
    if has_exercises:
        text = exercises_markdown(stage)
        markdown = EXERCISES_RE.sub(lambda _: text, markdown)
    if has_changes:
        text = changed_files_markdown(stage)
        markdown = CHANGED_FILES_RE.sub(lambda _: text, markdown)
    return markdown


def exercises_markdown(stage: Stage) -> str:
    """Markdown for every exercise of ``stage``, in ``stage.toml`` order."""
    if not stage.exercises:
        return "This stage has no exercises."
    parts = []
    for exercise in stage.exercises:
        try:
            stub = render_stub(stage, exercise.id).rstrip("\n")
        except Exception as error:  # the stubber names the exercise and what went wrong
            raise PluginError(f"exercise {exercise.id}: cannot render its stub: {error}") from None
        fence = _fence_for(stub)
        parts.append(
            f"### Exercise {exercise.id} — {exercise.title}\n\n"
            f"In `{exercise.file}`, write `{exercise.qualname}`. "
            f"Its tests are marked `{exercise.marker}`.\n\n"
            f'??? tip "Hint"\n\n{textwrap.indent(exercise.hint, "    ")}\n\n'
            f"You start from this stub:\n\n"
            f'{fence}python title="{exercise.file}"\n{stub}\n{fence}\n\n'
            f"Make a workspace once (it stubs every exercise of the stage), then test "
            f"your answer:\n\n"
            f"```bash\n"
            f"make workspace STAGE={stage.number}\n"
            f"make exercise EX={exercise.id}\n"
            f"```\n"
        )
    return "\n".join(parts)


def changed_files_markdown(stage: Stage) -> str:
    """A table of the files in the stage's ``CHANGES.diff``."""
    path = stage.path / DIFF_NAME
    if not path.is_file():
        raise PluginError(f"{path} is missing: run `python -m tools.stages sync`")
    rows = diff_summary(path.read_text(encoding="utf-8"))
    if not rows:
        return "No file changed since the previous stage."
    lines = ["| File | Change | Lines added | Lines removed |", "| --- | --- | ---: | ---: |"]
    lines += [f"| `{r['file']}` | {r['change']} | {r['added']} | {r['removed']} |" for r in rows]
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


def _fence_for(text: str) -> str:
    """A backtick fence longer than any run of backticks inside ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)
