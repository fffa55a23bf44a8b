"""One source for every stage: the stage markers of the top-level ``miniray/``, and how a
stage's copy of a file is cut out of it.

The top-level package is the final stage, and it runs as it stands. A line that is not in
every stage of its file carries a *stage marker*, a comment that starts with ``# @`` and
names a range of stages: ``3`` (stage 3 alone), ``3+`` (stage 3 and every later one) or
``2-4``. There are four forms::

    # @3+                the first line of a file that enters at stage 3
    code  # @5+          a line that enters at stage 5
    # @2-4: code         a line of stages 2-4 only; the final stage lacks it, so here it
                         is a comment, and the stage's copy gets ``code`` at this indentation
    # @2-4 {             the lines up to the closing ``# @}`` are in stages 2-4 only. Where
    # code               the final stage lacks them they are commented out: ``# `` right
    # @}                 after the marker's indentation, which the copy drops

(``# @`` and not ``#@``: the formatter puts a space after every ``#``.)

A stage's copy holds the file's lines for that stage, without markers (`WovenFile.render`);
`WovenFile.origin` says in which stage a line enters. Markers are checked as they are read:
a marker whose range covers every stage of the file, a live line marked as in a range the
final stage lacks (it would run in the library), a block left open, a nested block, and a
stray ``# @`` are errors (`MarkerError`), with the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

RANGE = r"(?P<first>[1-9]\d*)(?:(?P<plus>\+)|-(?P<last>[1-9]\d*))?"
_FILE_MARK = re.compile(rf"# @{RANGE}")
_OPEN = re.compile(rf"(?P<indent>[ \t]*)# @{RANGE} \{{")
_CLOSE = re.compile(r"[ \t]*# @\}")
_PREFIX = re.compile(rf"(?P<indent>[ \t]*)# @{RANGE}:(?: (?P<code>.*))?")
_SUFFIX = re.compile(rf"(?P<code>.*?\S)[ \t]+# @{RANGE}")
_STRAY = re.compile(r"# @[\d}]")  # what a marker starts with


class MarkerError(ValueError):
    """A stage marker that cannot be read, or that says something impossible."""


@dataclass(frozen=True)
class Stages:
    """A range of stage numbers: ``first`` to ``last`` (``None``: every later stage)."""

    first: int
    last: int | None = None

    def __contains__(self, stage: object) -> bool:
        return (
            isinstance(stage, int)
            and self.first <= stage
            and (self.last is None or stage <= self.last)
        )

    def within(self, outer: Stages) -> bool:
        """Whether every stage of this range is in ``outer`` too."""
        if self.first < outer.first:
            return False
        if outer.last is None:
            return True
        return self.last is not None and self.last <= outer.last

    def __str__(self) -> str:
        if self.last is None:
            return f"{self.first}+"
        return str(self.first) if self.last == self.first else f"{self.first}-{self.last}"


@dataclass(frozen=True)
class SourceLine:
    """One line of a stage copy-to-be: its text there, and where it stands in the source."""

    number: int  # 1-based, in the source file
    text: str  # as the stages that have it read it: no marker, not commented out
    stages: Stages | None  # None: every stage that has the file


@dataclass(frozen=True)
class WovenFile:
    """A source file, read: the stages that have it, and its lines with their stages."""

    path: str
    stages: Stages
    lines: tuple[SourceLine, ...]

    def render(self, stage: int) -> tuple[str, list[int]] | None:
        """Stage ``stage``'s copy, and for each of its lines the source line it comes from;
        ``None`` if the file is not in that stage."""
        if stage not in self.stages:
            return None
        kept: list[SourceLine] = []
        for line in self.lines:
            if line.stages is not None and stage not in line.stages:
                continue
            if kept and line.number > kept[-1].number + 1 and not line.text.strip():
                _close_gap(kept)  # the first blank line after lines (or markers) left out
            kept.append(line)
        while kept and not kept[-1].text.strip():
            kept.pop()  # a file ends with its last line, whatever came after it went
        return "".join(line.text + "\n" for line in kept), [line.number for line in kept]

    def origin(self, number: int) -> int:
        """The stage in which source line ``number`` enters (the file's, for unmarked lines;
        for a marker line, that of the line it marks)."""
        for line in self.lines:
            if line.number >= number:
                return (line.stages or self.stages).first
        raise MarkerError(f"{self.path} has no line {number}")


def _close_gap(kept: list[SourceLine]) -> None:
    """Where lines were left out between two runs of blank lines, the runs would add up
    (two blank lines above a dropped class and two below it make four): keep the blank
    lines that follow the gap, and drop those before it."""
    while kept and not kept[-1].text.strip():
        kept.pop()


def parse(text: str, path: str, final: int) -> WovenFile:
    """Read the markers of source file ``path`` (of stages up to ``final``, the last stage).

    Raises:
        MarkerError: A marker that cannot be read or says something impossible, with the
            file and line.
    """
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()  # the newline that ends the last line
    file_stages, start = Stages(1), 0
    if raw and (match := _FILE_MARK.fullmatch(raw[0].rstrip())):
        file_stages, start = _stages(match, f"{path}:1", final), 1
        if final not in file_stages:
            raise MarkerError(f"{path}:1: the library is stage {final}, outside {file_stages}")
    lines = list(_read_lines(raw, start, path, final, file_stages))
    return WovenFile(path, file_stages, tuple(lines))


def _read_lines(
    raw: list[str], start: int, path: str, final: int, file_stages: Stages
) -> Iterator[SourceLine]:
    block: tuple[int, str, Stages] | None = None  # where the open block starts, its indent
    for index in range(start, len(raw)):
        number, line = index + 1, raw[index]
        where = f"{path}:{number}"
        stripped = line.rstrip()
        if block is not None:
            opened_at, indent, stages = block
            if _CLOSE.fullmatch(stripped):
                block = None
            elif _STRAY.search(line):
                raise MarkerError(f"{where}: a marker inside the block of line {opened_at}")
            elif final in stages:
                yield SourceLine(number, line, stages)
            else:
                yield SourceLine(number, _uncomment(line, indent, where), stages)
        elif match := _OPEN.fullmatch(stripped):
            block = (number, match["indent"], _line_stages(match, where, final, file_stages))
        elif _CLOSE.fullmatch(stripped):
            raise MarkerError(f"{where}: '# @}}' closes no block")
        elif match := _PREFIX.fullmatch(stripped):
            stages = _line_stages(match, where, final, file_stages)
            if final in stages:
                raise MarkerError(f"{where}: '# @{stages}:' comments out a line of the library")
            yield SourceLine(number, match["indent"] + (match["code"] or ""), stages)
        elif match := _SUFFIX.fullmatch(stripped):
            stages = _line_stages(match, where, final, file_stages)
            if final not in stages:
                raise MarkerError(
                    f"{where}: this line runs in the library (stage {final}) but is marked "
                    f"{stages}: write it as '# @{stages}: ...'"
                )
            yield SourceLine(number, match["code"], stages)
        elif _STRAY.search(line):
            raise MarkerError(f"{where}: a '# @' that is no marker: {stripped.strip()!r}")
        else:
            yield SourceLine(number, line, None)
    if block is not None:
        raise MarkerError(f"{path}:{block[0]}: '# @{block[2]} {{' is never closed by '# @}}'")


def _line_stages(match: re.Match[str], where: str, final: int, file_stages: Stages) -> Stages:
    stages = _stages(match, where, final)
    if not stages.within(file_stages):
        raise MarkerError(f"{where}: stages {stages} are not all stages of the file")
    if stages == file_stages or (stages.first == file_stages.first and final in stages):
        raise MarkerError(f"{where}: '# @{stages}' marks every stage of the file; drop it")
    return stages


def _stages(match: re.Match[str], where: str, final: int) -> Stages:
    first = int(match["first"])
    last = None if match["plus"] else int(match["last"] or first)
    if last is not None and last < first:
        raise MarkerError(f"{where}: stages {first}-{last} run backwards")
    if first > final:
        raise MarkerError(f"{where}: there is no stage {first} (the last is {final})")
    return Stages(first, last)


def _uncomment(line: str, indent: str, where: str) -> str:
    if line == indent + "#":  # a blank line of the block
        return ""
    if not line.startswith(indent + "# "):
        raise MarkerError(
            f"{where}: a line of a block the library lacks must be commented out with "
            f"'# ' after the block's indentation ({len(indent)} columns)"
        )
    return indent + line[len(indent) + 2 :]
