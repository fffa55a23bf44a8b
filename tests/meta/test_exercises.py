"""Checks of the exercise tooling (`tools.exercises`) and of every exercise of every stage.

`stub_source` is tested on small sources; then, for each exercise in the stage.toml files, the
solution must pass the exercise's tests and a workspace with only that exercise stubbed must
fail them (one pair of pytest subprocesses per exercise).
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

from tools.exercises import (
    ExerciseError,
    check_exercise,
    make_workspace,
    render_stub,
    stub_source,
)
from tools.stages import Exercise, Stage, find_stage, list_stages

MESSAGE = "Exercise 9.9: do it"
RAISE = 'raise NotImplementedError("Exercise 9.9: do it")'


def stub(source: str, qualname: str) -> str:
    return stub_source(textwrap.dedent(source), qualname, MESSAGE)


def call(source: str, name: str, *args: object) -> object:
    namespace: dict[str, object] = {}
    exec(compile(source, "<stub>", "exec"), namespace)
    target: object = namespace
    for part in name.split("."):
        target = target[part] if isinstance(target, dict) else getattr(target, part)
    assert callable(target)
    return target(*args)


def test_a_function_keeps_signature_decorators_docstring_and_surroundings() -> None:
    source = '''\
        import functools

        # --8<-- [start:f]
        @functools.lru_cache  # keep me
        def f(x: int,
              y: int = 2) -> int:  # and me
            """Add.

            Really.
            """
            # how: just add
            z = x + y

            return z  # done
        # --8<-- [end:f]


        def g() -> int:
            return 3
        '''
    expected = '''\
        import functools

        # --8<-- [start:f]
        @functools.lru_cache  # keep me
        def f(x: int,
              y: int = 2) -> int:  # and me
            """Add.

            Really.
            """
            raise NotImplementedError("Exercise 9.9: do it")
        # --8<-- [end:f]


        def g() -> int:
            return 3
        '''
    result = stub(source, "f")
    assert result == textwrap.dedent(expected)
    with pytest.raises(NotImplementedError, match=re.escape(MESSAGE)):
        call(result, "f", 1)


def test_a_method() -> None:
    source = """\
        class Worker:
            x = 1

            def is_alive(self) -> bool:
                return True

            # --8<-- [end:is_alive]
            def other(self) -> int:
                return 2
        """
    result = stub(source, "Worker.is_alive")
    assert result == textwrap.dedent(source).replace("return True", RAISE)
    assert call(result, "Worker.other", None) == 2


def test_a_function_with_only_a_docstring() -> None:
    result = stub('def f():\n    """Only a docstring."""\n\nX = 1\n', "f")
    assert result == f'def f():\n    """Only a docstring."""\n    {RAISE}\n\nX = 1\n'


def test_a_docstring_only_function_at_the_end_of_a_file_without_newline() -> None:
    result = stub('def f():\n    """Doc."""', "f")
    assert result == f'def f():\n    """Doc."""\n    {RAISE}\n'


def test_a_body_on_the_def_line() -> None:
    assert stub("def f(x): return x  # same line\n", "f") == f"def f(x): {RAISE}  # same line\n"
    assert stub('def f(): "doc"\n', "f") == f'def f(): "doc"; {RAISE}\n'


def test_non_ascii_before_the_body_on_the_def_line() -> None:
    assert stub('def f(s="é"): return s\n', "f") == f'def f(s="é"): {RAISE}\n'


def test_nested_indentation() -> None:
    source = """\
        class Outer:
            class Inner:
                async def run(self) -> None:
                    if True:
                        pass
                    # trailing body comment
                    # another one

                # Outer-level comment stays
            def f(self) -> None:
                def inner() -> int:
                    return 1
                return None
        """
    result = stub(source, "Outer.Inner.run")
    assert "pass" not in result and "trailing body comment" not in result
    assert f"        async def run(self) -> None:\n            {RAISE}\n\n" in result
    assert "# Outer-level comment stays" in result
    nested = stub(source, "Outer.f.inner")
    assert f"        def inner() -> int:\n            {RAISE}\n        return None\n" in nested


def test_a_body_that_starts_with_a_decorated_function() -> None:
    source = """\
        def f():
            @staticmethod
            def g():
                return 1
            return g
        """
    assert stub(source, "f") == f"def f():\n    {RAISE}\n"


def test_windows_line_endings_survive() -> None:
    result = stub_source("def f():\r\n    return 1\r\n\r\nX = 2\r\n", "f", MESSAGE)
    assert result == f"def f():\r\n    {RAISE}\r\n\r\nX = 2\r\n"


def test_the_implementation_of_an_overloaded_function_is_stubbed() -> None:
    source = """\
        from typing import overload

        @overload
        def f(x: int) -> int: ...
        @overload
        def f(x: str) -> str: ...
        def f(x):
            return x
        """
    result = stub(source, "f")
    assert result == textwrap.dedent(source).replace("return x", RAISE)


@pytest.mark.parametrize(
    ("qualname", "error"),
    [
        ("nope", "no definition of nope"),
        ("C.nope", "no definition of C.nope"),
        ("C", "is a class, not a function"),
        ("twice", "defined 2 times"),
    ],
)
def test_bad_targets_are_clear_errors(qualname: str, error: str) -> None:
    source = "class C:\n    pass\n\ndef twice(): pass\ndef twice(): pass\n"
    with pytest.raises(ExerciseError, match=error):
        stub_source(source, qualname, MESSAGE)


def test_the_message_is_a_valid_literal_whatever_it_holds() -> None:
    message = 'Exercise 1.1: "quotes", \\ and ünïcode'
    result = stub_source("def f():\n    return 1\n", "f", message)
    with pytest.raises(NotImplementedError) as raised:
        call(result, "f")
    assert str(raised.value) == message


# --- workspaces and rendering, on a small stage ------------------------------------------------

STAGE_TOML = """\
title = "Tiny"
capabilities = ["local"]

[[exercises]]
id = "1.1"
target = "miniray/mod.py:Thing.size"
title = "Measure the thing"
hint = "len()."

[[exercises]]
id = "1.2"
target = "miniray/mod.py:double"
title = "Double it"
hint = "Times two."
"""

MODULE = '''\
"""A module."""


class Thing:
    def size(self, items: list[int]) -> int:
        """How many."""
        return len(items)


def double(x: int) -> int:
    return 2 * x
'''


@pytest.fixture
def tiny(tmp_path: Path) -> Stage:
    folder = tmp_path / "stages" / "01_tiny"
    (folder / "miniray" / "__pycache__").mkdir(parents=True)
    (folder / "stage.toml").write_text(STAGE_TOML)
    (folder / "miniray" / "mod.py").write_text(MODULE)
    (folder / "miniray" / "__pycache__" / "mod.cpython-311.pyc").write_text("junk")
    (folder / "CHANGES.diff").write_text("the solution, in full\n")
    return find_stage("1", tmp_path)


def test_render_stub_shows_the_dedented_stub(tiny: Stage) -> None:
    expected = f'def size(self, items: list[int]) -> int:\n    """How many."""\n    {RAISE}\n'
    assert render_stub(tiny, "1.1") == expected.replace("9.9: do it", "1.1: Measure the thing")


def test_a_workspace_stubs_every_exercise_and_leaves_out_the_answers(
    tiny: Stage, tmp_path: Path
) -> None:
    workspace = make_workspace(tiny, tmp_path / "ws", root=tmp_path)
    text = (workspace / "miniray" / "mod.py").read_text()
    assert "len(items)" not in text and "2 * x" not in text
    assert "Exercise 1.1: Measure the thing" in text and "Exercise 1.2: Double it" in text
    assert not (workspace / "CHANGES.diff").exists()
    assert not (workspace / "miniray" / "__pycache__").exists()
    assert (workspace / "stage.toml").read_text() == STAGE_TOML


def test_a_workspace_with_only_some_exercises(tiny: Stage, tmp_path: Path) -> None:
    workspace = make_workspace(tiny, tmp_path / "ws", ["1.2"], root=tmp_path)
    text = (workspace / "miniray" / "mod.py").read_text()
    assert "len(items)" in text and "2 * x" not in text


def test_a_workspace_is_replaced_only_with_force(tiny: Stage, tmp_path: Path) -> None:
    workspace = make_workspace(tiny, tmp_path / "ws", root=tmp_path)
    (workspace / "mine.txt").write_text("my work")
    with pytest.raises(ExerciseError, match="--force"):
        make_workspace(tiny, workspace, root=tmp_path)
    assert (workspace / "mine.txt").exists()
    make_workspace(tiny, workspace, force=True, root=tmp_path)
    assert not (workspace / "mine.txt").exists()


def test_force_never_deletes_something_that_is_not_a_workspace(tiny: Stage, tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    with pytest.raises(ExerciseError, match="does not look like a workspace"):
        make_workspace(tiny, tmp_path / "precious", force=True, root=tmp_path)
    with pytest.raises(ExerciseError, match="does not look like a workspace"):
        make_workspace(tiny, tiny.path, force=True, root=tmp_path)
    assert (tiny.path / "miniray" / "mod.py").read_text() == MODULE


# --- the real exercises ----------------------------------------------------------------------

EXERCISES: list[tuple[Stage, Exercise]] = [(s, e) for s in list_stages() for e in s.exercises]
IDS = [e.id for _, e in EXERCISES]


@pytest.mark.parametrize(("owner", "exercise"), EXERCISES, ids=IDS)
def test_every_exercise_target_can_be_stubbed(owner: Stage, exercise: Exercise) -> None:
    stubbed = render_stub(owner, exercise.id)
    assert f"Exercise {exercise.id}: " in stubbed
    ast.parse(stubbed)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("owner", "exercise"), EXERCISES, ids=IDS)
def test_every_exercise_is_tested(owner: Stage, exercise: Exercise) -> None:
    result = check_exercise(owner, exercise)
    tail = "\n".join(result.output.splitlines()[-30:])
    assert result.ok, f"exercise {exercise.id}: {result.verdict}\n{tail}"
