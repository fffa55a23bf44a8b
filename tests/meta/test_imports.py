"""The library's structure: no module imports itself back, however indirectly, and every
public exception lives in ``errors.py``.

An import cycle makes a reader (and Python, at import time) hold two files in mind at once;
the library has none, and this test fails on the first new one. Imports under
``TYPE_CHECKING`` count too: a cycle through a type is still a cycle for the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tools.stages import REPO_ROOT


def import_graph(package: Path) -> dict[str, set[str]]:
    """Each module of ``package`` (by name) -> the package's modules it imports."""
    modules = {path.stem for path in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
                imported.update(name for name in names if name in modules)
        graph[path.stem] = imported
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (or a module that imports itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(group) > 1 or module in graph[module]:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_library_has_no_import_cycles() -> None:
    assert cycles(import_graph(REPO_ROOT / "miniray")) == []


def test_the_cycle_finder_finds_a_cycle_through_a_type(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from .b import B\n")
    (tmp_path / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import C\nB = 1\n"
    )
    (tmp_path / "c.py").write_text("from . import a\nC = 1\n")
    (tmp_path / "d.py").write_text("from .a import B\n")
    assert cycles(import_graph(tmp_path)) == [["a", "b", "c"]]


def test_every_public_exception_lives_in_errors_py() -> None:
    # One family in one file: a reader (and `except`) finds every error the library raises.
    import miniray

    exceptions = [
        name
        for name in miniray.__all__
        if isinstance(getattr(miniray, name), type)
        and issubclass(getattr(miniray, name), Exception)
    ]
    assert len(exceptions) >= 17
    elsewhere = [n for n in exceptions if getattr(miniray, n).__module__ != "miniray.errors"]
    assert elsewhere == []
