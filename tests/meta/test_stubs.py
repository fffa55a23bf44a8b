"""Checks of `tools.stubs`: `stub_source` on small sources, where the body to replace sits in
every awkward place a real file may put it (decorators, comments, one-line bodies, docstring-only
functions, nesting, overloads, Windows line endings, non-ASCII text).
"""

from __future__ import annotations

import re
import textwrap

import pytest

from tools.stubs import ExerciseError, is_stub, replace_definition, stub_source

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


def test_is_stub_tells_a_stub_from_a_written_body() -> None:
    source = "class C:\n    def m(self):\n        return 1\n"
    stubbed = stub_source(source, "C.m", MESSAGE)
    assert is_stub(stubbed, "C.m") and not is_stub(source, "C.m")
    assert not is_stub('def f():\n    """Doc."""\n    raise ValueError()\n', "f")


def test_replace_definition_puts_a_solution_back_where_the_stub_was() -> None:
    source = textwrap.dedent(
        """\
        class C:
            @staticmethod
            def m(x):
                '''Doc.'''
                # a comment the stub drops
                return x + 1

            def other(self):
                return 2
        """
    )
    stubbed = stub_source(source, "C.m", MESSAGE)
    solution = "@staticmethod\ndef m(x):\n    '''Doc.'''\n    return x + 1\n"
    filled = replace_definition(stubbed, "C.m", solution)
    assert filled == source.replace("        # a comment the stub drops\n", "")
    assert call(filled, "C.m", 1) == 2
