"""The stage markers (`tools.weave`): each form, and each mistake they must refuse."""

from __future__ import annotations

import pytest

from tools.weave import MarkerError, Stages, parse

SOURCE = """\
\"\"\"A module.\"\"\"
import a
import b  # @3+
# @1-2: X = 1
X = 2  # @3+
# @2-3 {
# def old():
#
#     return 0
# @}
# @3+ {
def new():
    return 1
# @}
"""


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        (1, '"""A module."""\nimport a\nX = 1\n'),
        (2, '"""A module."""\nimport a\nX = 1\ndef old():\n\n    return 0\n'),
        (
            3,
            '"""A module."""\nimport a\nimport b\nX = 2\ndef old():\n\n    return 0\n'
            "def new():\n    return 1\n",
        ),
        (4, '"""A module."""\nimport a\nimport b\nX = 2\ndef new():\n    return 1\n'),
    ],
)
def test_each_stage_reads_its_own_lines(stage: int, expected: str) -> None:
    text, lines = parse(SOURCE, "m.py", final=4).render(stage) or ("", [])
    assert text == expected
    assert len(lines) == text.count("\n")


def test_each_line_knows_its_source_line_and_stage() -> None:
    woven = parse(SOURCE, "m.py", final=4)
    _, lines = woven.render(3) or ("", [])
    assert lines == [1, 2, 3, 5, 7, 8, 9, 12, 13]
    assert [woven.origin(n) for n in (2, 3, 4, 5, 7, 12)] == [1, 3, 1, 3, 2, 3]


def test_a_file_that_enters_later_is_absent_before() -> None:
    woven = parse("# @3+\nX = 1\n", "m.py", final=4)
    assert woven.stages == Stages(3)
    assert woven.render(2) is None
    assert woven.render(3) == ("X = 1\n", [2])


def test_blank_lines_around_a_dropped_block_do_not_add_up() -> None:
    source = "A = 1\n\n\n# @2+ {\ndef f():\n    pass\n# @}\n\n\nB = 2\n"
    assert (parse(source, "m.py", final=2).render(1) or ("",))[0] == "A = 1\n\n\nB = 2\n"
    tail = "A = 1\n\n\n# @2+ {\ndef f():\n    pass\n# @}\n"
    assert (parse(tail, "m.py", final=2).render(1) or ("",))[0] == "A = 1\n"


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("X = 1  # @1-2\n", "runs in the library"),  # live in the final stage's source
        ("# @3: X = 1\n", "comments out a line of the library"),
        ("# @2 {\nX = 1\n# @}\n", "must be commented out"),
        ("# @2+ {\nX = 1\n", "never closed"),
        ("# @}\n", "closes no block"),
        ("# @2+ {\n# @3+ {\n# @}\n# @}\n", "inside the block"),
        ("X = 1  # @1+\n", "marks every stage"),
        ("# @2+\nX = 1  # @1-3\n", "not all stages of the file"),
        ("X = 1  # @3-2\n", "backwards"),
        ("X = 1  # @9+\n", "no stage 9"),
        ("X = 1  # @2++\n", "no marker"),
        ("# @2\nX = 1\n", "outside 2"),
    ],
)
def test_impossible_markers_are_refused_with_their_line(source: str, complaint: str) -> None:
    with pytest.raises(MarkerError, match=complaint) as refused:
        parse(source, "m.py", final=3)
    assert str(refused.value).startswith("m.py:")


def test_the_library_source_parses_and_uses_markers_sparingly() -> None:
    from tools.stages import REPO_ROOT, list_stages, read_sources

    sources = read_sources(REPO_ROOT, list_stages(REPO_ROOT)[-1].number)
    assert "auth.py" in sources and sources["auth.py"].stages.first == 2
