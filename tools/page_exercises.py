"""Exercises on a stage page: each one beside the walkthrough code that explains its function,
with that function's body folded away until the reader asks for it.

A stage page quotes the stage's code with snippet fences::

    ```python
    --8<-- "stages/01_local_worker/miniray/channel.py:take_frame"
    ```

`place_exercises` finds every such fence whose section holds an exercise's target and splits
it: the code before the target and after it stay quoted as they were, and the target becomes
an exercise box (statement, the stub the learner starts from, the ``make`` commands), with
the hint in a collapsed ``??? tip`` block and the stage's code in a collapsed ``??? success``
one.  That code is still included from the source, by line range (``path:first:last``, which
pymdownx.snippets reads), so the page keeps one truth.  Where a function is quoted again, only
the collapsed answer is shown there.

`exercise_index` is the short list at the end of the page, linking to each box.  An exercise
whose function the page never quotes gets its box there instead, so that its answer is still
folded; ``tests/meta/test_docs.py`` then fails, asking for the function to be quoted in the
walkthrough.
The MkDocs hook (``docs_hooks/miniray_docs.py``) calls both.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.stages import REPO_ROOT, Exercise, Stage
from tools.stubs import definition_lines
from tools.workspaces import render_stub

SNIPPET_FENCE_RE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,})python[ \t]*\n"
    r'(?P=indent)--8<--[ \t]+"(?P<file>[^":]+):(?P<section>\w+)"[ \t]*\n'
    r"(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE,
)
SECTION_MARKER_RE = re.compile(r"^\s*#\s*-+8<-+\s*\[(?P<kind>start|end):(?P<name>\w+)\]")
ANSWER_TITLE = "The stage's code"
HINT_TITLE = "Hint"


@dataclass(frozen=True)
class _Section:
    first: int  # first line inside the markers, 1-based
    last: int  # last line inside the markers


def anchor(exercise: Exercise) -> str:
    """The HTML id of an exercise's box: "1.3" -> "exercise-1-3"."""
    return "exercise-" + exercise.id.replace(".", "-")


def place_exercises(
    markdown: str, stage: Stage, root: Path = REPO_ROOT
) -> tuple[str, list[Exercise]]:
    """``markdown`` with every exercise's target, where a snippet fence quotes it, turned into
    an exercise box with the answer collapsed; and the exercises the page never quotes."""
    placed: set[str] = set()

    def rewrite(match: re.Match[str]) -> str:
        path = (root / match["file"]).resolve()
        targets = [e for e in stage.exercises if (stage.path / e.file).resolve() == path]
        if not targets:
            return match[0]
        text = path.read_text(encoding="utf-8")
        section = _find_section(text, match["section"])
        if section is None:
            return match[0]  # the snippets extension reports the missing section
        spans = []
        for exercise in targets:
            first, last = definition_lines(text, exercise.qualname)
            if section.first <= first and last <= section.last:
                spans.append((first, last, exercise))
        if not spans:
            return match[0]
        parts: list[str] = []
        cursor = section.first
        for first, last, exercise in sorted(spans, key=lambda s: s[0]):
            parts.append(_quote(match["file"], text, cursor, first - 1))
            if exercise.id in placed:  # quoted again: only the answer, folded
                parts.append(_answer(match["file"], text, first, last))
            else:
                parts.append(_exercise_box(stage, exercise, match["file"], text, first, last))
            placed.add(exercise.id)
            cursor = last + 1
        parts.append(_quote(match["file"], text, cursor, section.last))
        return textwrap.indent("\n\n".join(p for p in parts if p), match["indent"])

    result = SNIPPET_FENCE_RE.sub(rewrite, markdown)
    return result, [e for e in stage.exercises if e.id not in placed]


def exercise_index(stage: Stage, unplaced: Sequence[Exercise] = (), root: Path = REPO_ROOT) -> str:
    """The list of the stage's exercises, each linking to its box on the page; then the boxes
    of the ``unplaced`` exercises, whose functions the page does not quote."""
    if not stage.exercises:
        return "This stage has no exercises."
    lines = [
        f"- [Exercise {e.id} — {e.title}](#{anchor(e)}): `{e.qualname}` in `{e.file}`, "
        f"`make exercise EX={e.id}`"
        for e in stage.exercises
    ]
    boxes = []
    for exercise in unplaced:
        path = stage.path / exercise.file
        file = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        first, last = definition_lines(text, exercise.qualname)
        boxes.append(_exercise_box(stage, exercise, file, text, first, last))
    return "\n\n".join(["\n".join(lines), *boxes])


# --- building the pieces --------------------------------------------------------------------


def _exercise_box(
    stage: Stage, exercise: Exercise, file: str, text: str, first: int, last: int
) -> str:
    stub = render_stub(stage, exercise.id).rstrip("\n")
    fence = _fence_for(stub)
    statement = f" {exercise.statement}" if exercise.statement else ""
    body = (
        f"In `{exercise.file}`, write `{exercise.qualname}`.{statement}\n\n"
        f'{fence}python title="{exercise.file}: what you start from"\n{stub}\n{fence}\n\n'
        f"Try it before you read on or open the answer: `make workspace STAGE={stage.number}` "
        f"once, then `make exercise EX={exercise.id}` runs its tests (the exercises you have "
        "not written yet run the stage's code meanwhile).\n\n"
        f"{_hint(exercise)}\n\n"
        f"{_answer(file, text, first, last)}\n"
    )
    return (
        f'<span id="{anchor(exercise)}"></span>\n\n'
        f'!!! question "Exercise {exercise.id} — {exercise.title}"\n\n'
        f"{textwrap.indent(body, '    ')}"
    )


def _hint(exercise: Exercise) -> str:
    """The exercise's hint in a collapsed block: shown when asked, as ``make hint`` does."""
    body = f"{exercise.hint}\n\nIn a terminal: `make hint EX={exercise.id}`."
    return f'??? tip "{HINT_TITLE}"\n\n{textwrap.indent(body, "    ")}'


def _answer(file: str, text: str, first: int, last: int) -> str:
    """The stage's code for lines ``first..last``, in a collapsed block."""
    quote = _quote(file, text, first, last)
    return f'??? success "{ANSWER_TITLE}"\n\n{textwrap.indent(quote, "    ")}'


def _quote(file: str, text: str, first: int, last: int) -> str:
    """A snippet fence including lines ``first..last`` of ``file``, without blank edges or
    section markers; "" if nothing is left."""
    lines = text.splitlines()
    keep = [n for n in range(first, last + 1) if SECTION_MARKER_RE.match(lines[n - 1]) is None]
    while keep and not lines[keep[0] - 1].strip():
        keep.pop(0)
    while keep and not lines[keep[-1] - 1].strip():
        keep.pop()
    if not keep:
        return ""
    ranges: list[list[int]] = []
    for n in keep:
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    spec = ",".join(f"{a}:{b}" for a, b in ranges)
    return f'```python\n--8<-- "{file}:{spec}"\n```'


def _find_section(text: str, name: str) -> _Section | None:
    start = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = SECTION_MARKER_RE.match(line)
        if match is None or match["name"] != name:
            continue
        if match["kind"] == "start" and start is None:
            start = number
        elif match["kind"] == "end" and start is not None:
            return _Section(start + 1, number - 1)
    return None


def _fence_for(text: str) -> str:
    """A backtick fence longer than any run of backticks inside ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)
