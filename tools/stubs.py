"""Stubbing a function in Python source: its body becomes ``raise NotImplementedError(...)``.

This is how an exercise is made from a stage's solution.  The body's line range comes from
`ast`, and the change is spliced into the text, so everything else in the file, comments
included, stays byte for byte.
"""

from __future__ import annotations

import ast
import itertools
import json
import textwrap

from tools.lines import split_lines

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


class ExerciseError(Exception):
    """An exercise cannot be stubbed, found or run."""


def stub_source(text: str, qualname: str, message: str) -> str:
    """``text`` with the body of function ``qualname`` replaced by
    ``raise NotImplementedError(message)``.

    ``qualname`` is "name", "Class.method" or deeper ("Outer.Inner.method", "func.inner").
    The signature, decorators and docstring stay, and so does every other byte of the file.
    Comment lines inside the body go with it (they would give the answer away).
    """
    func = find_definition(_parse(text), qualname)
    source = _Source(text)
    statement = f"raise NotImplementedError({json.dumps(message, ensure_ascii=False)})"
    doc = func.body[0] if _is_docstring(func.body[0]) else None
    rest = func.body[1:] if doc is not None else func.body
    if rest:
        result = _replace_statements(source, func, doc, rest, statement)
    else:
        assert doc is not None  # a body cannot be empty
        result = _append_after_docstring(source, doc, statement)
    try:
        ast.parse(result)
    except SyntaxError as error:  # pragma: no cover - would be a bug here
        raise ExerciseError(f"stubbing {qualname} produced invalid Python: {error}") from None
    return result


def function_source(text: str, qualname: str) -> str:
    """The definition of function ``qualname`` in ``text``, decorators included, dedented."""
    func = find_definition(_parse(text), qualname)
    end = func.end_lineno or func.lineno
    return textwrap.dedent("".join(split_lines(text)[_first_line(func) - 1 : end]))


def is_stub(text: str, qualname: str) -> bool:
    """Whether function ``qualname`` in ``text`` is still a stub: apart from its docstring,
    its body is one ``raise NotImplementedError(...)``."""
    func = find_definition(_parse(text), qualname)
    body = func.body[1:] if _is_docstring(func.body[0]) else func.body
    if len(body) != 1 or not isinstance(body[0], ast.Raise):
        return False
    raised = body[0].exc
    if isinstance(raised, ast.Call):
        raised = raised.func
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


def replace_definition(text: str, qualname: str, definition: str) -> str:
    """``text`` with the definition of function ``qualname`` (decorators included) replaced by
    ``definition``, a dedented definition such as `function_source` returns; it is indented
    to where the old one stood.  Every other byte of ``text`` stays."""
    func = find_definition(_parse(text), qualname)
    lines = split_lines(text)
    first, last = _first_line(func), func.end_lineno or func.lineno
    line = lines[first - 1]
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    new = textwrap.indent(definition.rstrip("\r\n"), indent) + (_ending(lines[last - 1]) or "")
    result = "".join(lines[: first - 1]) + new + "".join(lines[last:])
    try:
        ast.parse(result)
    except SyntaxError as error:
        raise ExerciseError(f"replacing {qualname} produced invalid Python: {error}") from None
    return result


def definition_lines(text: str, qualname: str) -> tuple[int, int]:
    """The first and last line (1-based) of function ``qualname``'s definition, decorators
    included."""
    func = find_definition(_parse(text), qualname)
    return _first_line(func), func.end_lineno or func.lineno


def find_definition(tree: ast.Module, qualname: str) -> FunctionNode:
    """The function or method ``qualname`` names, looking through class and function bodies.

    Of several definitions with the same name, all but the last must be ``@overload``s.
    """
    scope: list[ast.stmt] = tree.body
    node: ast.stmt | None = None
    parts = qualname.split(".")
    for depth, part in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        matches = [
            n
            for n in scope
            if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and n.name == part
        ]
        if not matches:
            raise ExerciseError(f"no definition of {where}")
        if any(not _is_overload(n) for n in matches[:-1]):
            raise ExerciseError(f"{where} is defined {len(matches)} times; which one is meant?")
        node = matches[-1]
        scope = node.body
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        raise ExerciseError(f"{qualname} is a class, not a function")
    return node


# --- splicing --------------------------------------------------------------------------------


class _Source:
    """A text, split into lines, with the offset where each line starts (and where it ends)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = split_lines(text)
        self.starts = list(itertools.accumulate(map(len, self.lines), initial=0))

    def offset(self, lineno: int, col_bytes: int) -> int:
        """The text offset of an `ast` position (its column counts UTF-8 bytes)."""
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col_bytes].decode("utf-8"))


def _replace_statements(
    source: _Source, func: FunctionNode, doc: ast.stmt | None, rest: list[ast.stmt], statement: str
) -> str:
    text, lines, starts = source.text, source.lines, source.starts
    first, last = rest[0], rest[-1]
    first_line = _first_line(first)
    start = source.offset(first.lineno, first.col_offset)
    if _decorators(first) or not text[starts[first_line - 1] : start].strip():  # a block body
        line = lines[first_line - 1]
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        header_end = (doc.end_lineno if doc is not None else func.lineno) or func.lineno
        top = _extend_up(lines, first_line, header_end)
        bottom = _extend_down(lines, last.end_lineno or last.lineno, func.col_offset)
        ending = _ending(lines[bottom - 1]) or ""
        return text[: starts[top - 1]] + indent + statement + ending + text[starts[bottom] :]
    # the body shares a line with the header (def f(): return 1) or the docstring
    end = source.offset(last.end_lineno or last.lineno, last.end_col_offset or 0)
    return text[:start] + statement + text[end:]


def _append_after_docstring(source: _Source, doc: ast.stmt, statement: str) -> str:
    text, lines, starts = source.text, source.lines, source.starts
    doc_start = source.offset(doc.lineno, doc.col_offset)
    end_line = doc.end_lineno or doc.lineno
    if text[starts[doc.lineno - 1] : doc_start].strip():  # def f(): "doc"
        end = source.offset(end_line, doc.end_col_offset or 0)
        return text[:end] + "; " + statement + text[end:]
    indent = text[starts[doc.lineno - 1] : doc_start]
    ending = _ending(lines[end_line - 1])
    if ending is None:  # the docstring ends the file
        return text + "\n" + indent + statement + "\n"
    return text[: starts[end_line]] + indent + statement + ending + text[starts[end_line] :]


def _extend_up(lines: list[str], first_line: int, header_end: int) -> int:
    """Widen the removed range upwards over comment lines, but keep blank lines."""
    top = first_line
    while top - 1 > header_end and _is_blank_or_comment(lines[top - 2]):
        top -= 1
    while top < first_line and not lines[top - 1].strip():
        top += 1
    return top


def _extend_down(lines: list[str], last_line: int, def_col: int) -> int:
    """Widen the removed range downwards over comments indented deeper than the ``def``."""
    bottom = last_line
    while bottom < len(lines) and _is_blank_or_comment(lines[bottom]):
        line = lines[bottom]
        if line.strip() and len(line) - len(line.lstrip()) <= def_col:
            break
        bottom += 1
    while bottom > last_line and not lines[bottom - 1].strip():
        bottom -= 1
    return bottom


def _ending(line: str) -> str | None:
    if line.endswith("\r\n"):
        return "\r\n"
    return "\n" if line.endswith("\n") else None


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


# --- reading the tree ------------------------------------------------------------------------


def _parse(text: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError as error:
        raise ExerciseError(f"cannot parse the target file: {error}") from None


def _first_line(node: ast.stmt) -> int:
    """The first line of a statement, counting the decorators of a definition."""
    return min([node.lineno, *(d.lineno for d in _decorators(node))])


def _decorators(node: ast.stmt) -> list[ast.expr]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.decorator_list
    return []


def _is_overload(node: ast.stmt) -> bool:
    return any(
        (isinstance(d, ast.Name) and d.id == "overload")
        or (isinstance(d, ast.Attribute) and d.attr == "overload")
        for d in _decorators(node)
    )


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )
