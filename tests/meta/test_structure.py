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


def reach_ins(package: Path) -> list[str]:
    """``obj._name`` (or ``getattr(obj, "_name")``) where ``obj`` is not ``self``/``cls``
    and no code of the same module sets ``_name``: private state of another module's class."""
    found: list[str] = []
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = (
            {
                target.attr
                for node in ast.walk(tree)
                for target in _targets(node)
                if isinstance(target, ast.Attribute)
            }
            | {
                node.name
                for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef | ast.ClassDef)
            }
            | {
                node.target.id
                for node in ast.walk(tree)
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
            }
        )
        for node in ast.walk(tree):
            name, owner = _private_access(node)
            if name and name not in own and owner not in ("self", "cls", "os", "sys"):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, ast.AnnAssign | ast.AugAssign):
        return [node.target]
    return []


def _private_access(node: ast.AST) -> tuple[str, str]:
    """The private name read and the name of what it is read from ('' if not one)."""
    if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
        owner = node.value.id if isinstance(node.value, ast.Name) else ""
        return ("", "") if node.attr.startswith("__") else (node.attr, owner)
    is_getattr = isinstance(node, ast.Call) and ast.unparse(node.func) == "getattr"
    if is_getattr and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
        attribute = node.args[1].value
        if isinstance(attribute, str) and attribute.startswith("_"):  # a dunder, as above:
            dunder = attribute.startswith("__")  # public, not private state
            return ("", "") if dunder else (attribute, ast.unparse(node.args[0]))
    return "", ""


def test_no_module_reaches_into_another_modules_private_state() -> None:
    assert reach_ins(REPO_ROOT / "miniray") == []


def test_the_reach_in_finder_finds_one(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("class A:\n    def __init__(self):\n        self._x = 1\n")
    (tmp_path / "b.py").write_text(
        "def f(a, w):\n    return a._x, getattr(w, '_channel', None), a._y, getattr(w, '__doc__')"
        "\n\n"
        "class B:\n    def g(self):\n        self._y = 2\n        return self._y\n"
    )
    assert reach_ins(tmp_path) == ["b.py:2: a._x", "b.py:2: getattr(w, '_channel', None)"]
