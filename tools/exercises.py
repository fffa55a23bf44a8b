"""Exercises: turn a stage into a learner's workspace with functions to write, and check that
every exercise is a real one.

An exercise (``[[exercises]]`` in ``stage.toml``) names a target function or method, such as
``miniray/process.py:run_work_fn``.  Its tests carry the marker ``ex01_3`` (for id "1.3").

    python -m tools.exercises workspace STAGE [--dest DIR] [--only ID ...] [--force]
        copy the stage to workspace/NN_name/ with every exercise's body replaced by
        ``raise NotImplementedError("Exercise 1.3: <title>")``
    python -m tools.exercises test ID [--workspace DIR] [-- PYTEST_ARGS ...]
        run the exercise's tests against the workspace
    python -m tools.exercises check [ID ...]
        for each exercise: the solution passes its tests, and a workspace with only that
        exercise stubbed fails them

Stubbing splices text (the body's line range comes from `ast`); everything else in the file,
comments included, stays byte for byte.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.stages import (
    DIFF_NAME,
    REPO_ROOT,
    STAGE_TOML,
    Exercise,
    Stage,
    StageError,
    find_stage,
    list_stages,
)

WORKSPACE_DIR = "workspace"
DEFAULT_TIMEOUT = 300.0
RC_WORDS = {
    0: "passed",
    1: "failed",
    2: "interrupted",
    3: "internal error",
    4: "usage error",
    5: "no tests",
}

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


class ExerciseError(Exception):
    """An exercise cannot be stubbed, found or run."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of `check_exercise`: return codes of the two pytest runs (None: timeout)."""

    stage: Stage
    exercise: Exercise
    solution_rc: int | None
    stubbed_rc: int | None
    output: str = ""  # the output of the run that went wrong, if one did

    @property
    def ok(self) -> bool:
        return self.solution_rc == 0 and self.stubbed_rc == 1

    @property
    def verdict(self) -> str:
        marker = self.exercise.marker
        if self.solution_rc == 5:
            return f"no test is marked {marker}"
        if self.solution_rc != 0:
            return "the solution fails its tests"
        if self.stubbed_rc == 0:
            return "the tests pass with the function stubbed"
        if self.stubbed_rc != 1:
            return "the stubbed run broke instead of failing tests"
        return "ok"


def stub_source(text: str, qualname: str, message: str) -> str:
    """``text`` with the body of function ``qualname`` replaced by
    ``raise NotImplementedError(message)``.

    ``qualname`` is "name", "Class.method" or deeper ("Outer.Inner.method", "func.inner").
    The signature, decorators and docstring stay, and so does every other byte of the file.
    Comment lines inside the body go with it (they would give the answer away).
    """
    tree = _parse(text)
    func = find_definition(tree, qualname)
    lines = _split_lines(text)
    starts = _line_starts(lines)
    statement = f"raise NotImplementedError({json.dumps(message, ensure_ascii=False)})"
    doc = func.body[0] if _is_docstring(func.body[0]) else None
    rest = func.body[1:] if doc is not None else func.body
    if rest:
        result = _replace_statements(text, lines, starts, func, doc, rest, statement)
    else:
        assert doc is not None  # a body cannot be empty
        result = _append_after_docstring(text, lines, starts, doc, statement)
    try:
        ast.parse(result)
    except SyntaxError as error:  # pragma: no cover - would be a bug here
        raise ExerciseError(f"stubbing {qualname} produced invalid Python: {error}") from None
    return result


def render_stub(stage: Stage | str, exercise_id: str) -> str:
    """The stubbed function as a learner sees it (decorators, signature, docstring, raise),
    dedented; for showing an exercise on a documentation page."""
    stage = find_stage(stage) if isinstance(stage, str) else stage
    exercise = stage.exercise(exercise_id)
    text = _read_target(stage, exercise)
    stubbed = stub_source(text, exercise.qualname, exercise_message(exercise))
    func = find_definition(_parse(stubbed), exercise.qualname)
    first = min([func.lineno, *(d.lineno for d in func.decorator_list)])
    end = func.end_lineno or func.lineno
    return textwrap.dedent("".join(_split_lines(stubbed)[first - 1 : end]))


def exercise_message(exercise: Exercise) -> str:
    """The NotImplementedError message of a stubbed exercise."""
    return f"Exercise {exercise.id}: {exercise.title}"


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


def make_workspace(
    stage: Stage,
    dest: Path | None = None,
    only: Sequence[str] | None = None,
    *,
    force: bool = False,
    root: Path = REPO_ROOT,
) -> Path:
    """Copy ``stage`` to ``dest`` (default ``workspace/NN_name``) with exercises stubbed.

    ``only`` limits the stubbing to those exercise ids.  An existing workspace is replaced
    only with ``force``, and only if it looks like one (it has a ``stage.toml``).
    """
    dest = (dest or root / WORKSPACE_DIR / stage.name).resolve()
    exercises = [stage.exercise(i) for i in only] if only is not None else list(stage.exercises)
    stubbed = _stubbed_files(stage, exercises)  # fails before anything is written
    if dest.exists():
        _remove_old_workspace(dest, force=force, root=root)
    shutil.copytree(
        stage.path,
        dest,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*", DIFF_NAME),
    )
    for rel, text in stubbed.items():
        (dest / rel).write_bytes(text.encode("utf-8"))
    return dest


def run_exercise_tests(
    exercise_id: str,
    workspace: Path,
    extra_args: Sequence[str] = (),
    *,
    timeout: float | None = None,
    capture: bool = False,
    root: Path = REPO_ROOT,
) -> tuple[int | None, str]:
    """Run ``pytest tests --stage WORKSPACE -m exNN_M``; return (exit code or None on
    timeout, captured output or "")."""
    exercise = _find_exercise(exercise_id, root)[1]
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests",
        "--stage",
        str(workspace),
        "-m",
        exercise.marker,
        *extra_args,
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        done = subprocess.run(
            command,
            cwd=root,
            env=env,
            timeout=timeout,
            capture_output=capture,
            text=True,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        return None, _text(expired.stdout) + _text(expired.stderr)
    return done.returncode, (done.stdout or "") + (done.stderr or "")


def check_exercise(
    stage: Stage, exercise: Exercise, *, timeout: float = DEFAULT_TIMEOUT, root: Path = REPO_ROOT
) -> CheckResult:
    """Run the exercise's tests on the solution (must pass) and on a workspace with only this
    exercise stubbed (must fail: pytest exit code 1)."""
    args = ["-p", "no:cacheprovider", "-q"]
    solution_rc, solution_out = run_exercise_tests(
        exercise.id, stage.path, args, timeout=timeout, capture=True, root=root
    )
    with tempfile.TemporaryDirectory(prefix="miniray-exercise-") as tmp:
        workspace = make_workspace(stage, Path(tmp) / stage.name, [exercise.id], root=root)
        stubbed_rc, stubbed_out = run_exercise_tests(
            exercise.id, workspace, args, timeout=timeout, capture=True, root=root
        )
    output = solution_out if solution_rc != 0 else stubbed_out
    return CheckResult(stage, exercise, solution_rc, stubbed_rc, output)


def check_exercises(
    ids: Sequence[str] = (), *, timeout: float = DEFAULT_TIMEOUT, root: Path = REPO_ROOT
) -> list[CheckResult]:
    """`check_exercise` for the given exercise ids, or for every exercise of every stage."""
    if ids:
        pairs = [_find_exercise(i, root) for i in ids]
    else:
        pairs = [(s, e) for s in list_stages(root) for e in s.exercises]
    return [check_exercise(s, e, timeout=timeout, root=root) for s, e in pairs]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "workspace":
            return _cmd_workspace(args)
        if args.command == "test":
            return _cmd_test(args)
        return _cmd_check(args)
    except (ExerciseError, StageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


# --- command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.exercises", description="MiniRay exercises: make, test, check."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ws = sub.add_parser("workspace", help="copy a stage with its exercises stubbed")
    ws.add_argument("stage", help="1, 01_local_worker or stages/01_local_worker")
    ws.add_argument("--dest", type=Path, help="default: workspace/NN_name")
    ws.add_argument("--only", nargs="+", metavar="ID", help="stub only these exercises")
    ws.add_argument("--force", action="store_true", help="replace an existing workspace")
    test = sub.add_parser("test", help="run one exercise's tests against your workspace")
    test.add_argument("id", help="exercise id, like 1.3")
    test.add_argument("--workspace", type=Path, help="default: workspace/NN_name")
    test.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    check = sub.add_parser("check", help="check that every exercise is tested")
    check.add_argument("ids", nargs="*", metavar="ID", help="default: every exercise")
    check.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="per pytest run")
    return parser


def _cmd_workspace(args: argparse.Namespace) -> int:
    stage = find_stage(args.stage)
    dest = make_workspace(stage, args.dest, args.only, force=args.force)
    exercises = [stage.exercise(i) for i in args.only] if args.only else stage.exercises
    print(f"workspace: {_shown(dest)}")
    for exercise in exercises:
        print(f"  {exercise.id}  {exercise.target}: {exercise.title}")
        print(f"       hint: {exercise.hint}")
    first = exercises[0].id if exercises else "ID"
    print(f"test one with: python -m tools.exercises test {first}   (or: make exercise EX={first})")
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    stage, exercise = _find_exercise(args.id, REPO_ROOT)
    workspace = args.workspace or REPO_ROOT / WORKSPACE_DIR / stage.name
    if not (workspace / STAGE_TOML).is_file():
        raise ExerciseError(
            f"no workspace at {_shown(workspace)}; create it with "
            f"`python -m tools.exercises workspace {stage.number}`"
        )
    print(f"exercise {exercise.id}: {exercise.title}\n  hint: {exercise.hint}", flush=True)
    rc, _ = run_exercise_tests(exercise.id, workspace.resolve(), args.pytest_args)
    return 1 if rc is None else rc


def _cmd_check(args: argparse.Namespace) -> int:
    results: list[CheckResult] = []
    print(f"{'exercise':<9}{'target':<48}{'solution':<12}{'stubbed':<12}verdict", flush=True)
    pairs = (
        [_find_exercise(i, REPO_ROOT) for i in args.ids]
        if args.ids
        else [(s, e) for s in list_stages() for e in s.exercises]
    )
    for stage, exercise in pairs:
        result = check_exercise(stage, exercise, timeout=args.timeout)
        results.append(result)
        print(
            f"{exercise.id:<9}{exercise.target:<48}{_rc_word(result.solution_rc):<12}"
            f"{_rc_word(result.stubbed_rc):<12}{result.verdict}",
            flush=True,
        )
    bad = [r for r in results if not r.ok]
    for result in bad:
        tail = "\n".join(result.output.splitlines()[-30:])
        print(f"\n--- {result.exercise.id}: {result.verdict} ---\n{tail}")
    print(f"\n{len(results) - len(bad)} exercise(s) ok, {len(bad)} not ok")
    return 1 if bad else 0


# --- helpers ---------------------------------------------------------------------------------


def _find_exercise(exercise_id: str, root: Path) -> tuple[Stage, Exercise]:
    for stage in list_stages(root):
        for exercise in stage.exercises:
            if exercise.id == exercise_id:
                return stage, exercise
    raise ExerciseError(f"no exercise {exercise_id!r} in any stage.toml")


def _stubbed_files(stage: Stage, exercises: Sequence[Exercise]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for exercise in exercises:
        text = texts.get(exercise.file) or _read_target(stage, exercise)
        try:
            texts[exercise.file] = stub_source(text, exercise.qualname, exercise_message(exercise))
        except ExerciseError as error:
            raise ExerciseError(f"exercise {exercise.id} ({exercise.target}): {error}") from None
    return texts


def _read_target(stage: Stage, exercise: Exercise) -> str:
    path = stage.path / exercise.file
    if not path.is_file():
        raise ExerciseError(f"exercise {exercise.id}: {path} does not exist")
    return path.read_bytes().decode("utf-8")


def _remove_old_workspace(dest: Path, *, force: bool, root: Path) -> None:
    if not force:
        raise ExerciseError(f"{_shown(dest)} exists; add --force to replace it")
    stages = {s.path for s in list_stages(root)}
    if not (dest / STAGE_TOML).is_file() or dest in stages or dest == root.resolve():
        raise ExerciseError(f"{_shown(dest)} does not look like a workspace; not replacing it")
    shutil.rmtree(dest)


def _replace_statements(
    text: str,
    lines: list[str],
    starts: list[int],
    func: FunctionNode,
    doc: ast.stmt | None,
    rest: list[ast.stmt],
    statement: str,
) -> str:
    first, last = rest[0], rest[-1]
    first_line = min([first.lineno, *(d.lineno for d in _decorators(first))])
    start = _offset(lines, starts, first.lineno, first.col_offset)
    line_start = starts[first_line - 1]
    if _decorators(first) or not text[line_start:start].strip():  # the body is a block
        indent = re.match(r"[ \t]*", lines[first_line - 1])
        assert indent is not None
        header_end = (doc.end_lineno if doc is not None else func.lineno) or func.lineno
        top = _extend_up(lines, first_line, header_end)
        bottom = _extend_down(lines, last.end_lineno or last.lineno, func.col_offset)
        ending = _ending(lines[bottom - 1]) or ""
        return (
            text[: starts[top - 1]] + indent.group() + statement + ending + text[starts[bottom] :]
        )
    # the body shares a line with the header (def f(): return 1) or the docstring
    end = _offset(lines, starts, last.end_lineno or last.lineno, last.end_col_offset or 0)
    return text[:start] + statement + text[end:]


def _append_after_docstring(
    text: str, lines: list[str], starts: list[int], doc: ast.stmt, statement: str
) -> str:
    doc_start = _offset(lines, starts, doc.lineno, doc.col_offset)
    end_line = doc.end_lineno or doc.lineno
    if text[starts[doc.lineno - 1] : doc_start].strip():  # def f(): "doc"
        end = _offset(lines, starts, end_line, doc.end_col_offset or 0)
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


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


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


def _parse(text: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError as error:
        raise ExerciseError(f"cannot parse the target file: {error}") from None


def _split_lines(text: str) -> list[str]:
    """Lines with their endings, split where `ast` counts lines ("\\n"; "\\r\\n" ends in it)."""
    return [line for line in re.split(r"(?<=\n)", text) if line]


def _line_starts(lines: list[str]) -> list[int]:
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    return starts


def _offset(lines: list[str], starts: list[int], lineno: int, col_bytes: int) -> int:
    """The text offset of an `ast` position (its column counts UTF-8 bytes)."""
    line = lines[lineno - 1]
    return starts[lineno - 1] + len(line.encode("utf-8")[:col_bytes].decode("utf-8"))


def _ending(line: str) -> str | None:
    if line.endswith("\r\n"):
        return "\r\n"
    return "\n" if line.endswith("\n") else None


def _rc_word(rc: int | None) -> str:
    return "timeout" if rc is None else RC_WORDS.get(rc, f"rc {rc}")


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
