"""Stage bookkeeping, the public face: the stage model, `sync` and `problems`, and their
command line.

Usage, from the repository root::

    python -m tools.stages sync                # write every stage's miniray/ and CHANGES.diff
                                               # from the top-level miniray/ (the one source)
    python -m tools.stages check               # change nothing; list stale or hand-edited
                                               # copies and malformed markers
    python -m tools.stages origin FILE[:LINE]  # the stage in which a line (or file) enters;
                                               # FILE may be a source or a generated copy

What a stage is lives in `tools.stage_model`; the stage markers in `tools.weave`; which files
are generated, and how they are written and checked, in `tools.sync`.  Other code imports all
of it from here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.diffs import unified_diff
from tools.stage_model import (
    DEMO,
    DIFF_NAME,
    PACKAGE,
    REPO_ROOT,
    STAGE_TOML,
    STAGES_DIR,
    Exercise,
    Stage,
    StageError,
    exercise_marker,
    find_stage,
    list_stages,
    load_stage,
)
from tools.sync import (
    FileMap,
    display_path,
    keeps_every_line,
    plan_files,
    problems,
    read_sources,
    sync,
    tracked_files,
)
from tools.weave import MarkerError

__all__ = [
    "DEMO",
    "DIFF_NAME",
    "PACKAGE",
    "REPO_ROOT",
    "STAGES_DIR",
    "STAGE_TOML",
    "Exercise",
    "FileMap",
    "Stage",
    "StageError",
    "exercise_marker",
    "find_stage",
    "keeps_every_line",
    "list_stages",
    "load_stage",
    "main",
    "origin",
    "plan_files",
    "problems",
    "sync",
    "tracked_files",
    "unified_diff",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.stages",
        description="Sync or check the MiniRay stages generated from miniray/, or say where "
        "a line enters.",
    )
    parser.add_argument("command", choices=["sync", "check", "origin"])
    parser.add_argument("where", nargs="?", help="origin: FILE or FILE:LINE")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    try:
        if args.command == "origin":
            print(origin(args.where or "", root))
            return 0
        if args.command == "sync":
            written = sync(root)
            for path in written:
                print(f"wrote {display_path(path, root)}")
            print(f"sync: {len(written)} file(s) written")
    except (StageError, MarkerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    found = problems(root)
    for problem in found:
        print(f"problem: {problem}")
    if found:
        print(f"{len(found)} problem(s); edit miniray/, then `python -m tools.stages sync`")
        return 1
    if args.command == "check":
        print(f"stages: ok ({len(list_stages(root))} stages)")
    return 0


def origin(where: str, root: Path = REPO_ROOT) -> str:
    """Which stage a line enters in, for ``FILE[:LINE]``: a source file under ``miniray/`` or
    a generated copy under ``stages/`` (traced back to its source line).

    Raises:
        StageError: No such file or line, or a file that is neither.
    """
    name, _, number = (
        where.rpartition(":") if where.rpartition(":")[2].isdigit() else (where, "", "")
    )
    path = Path(name).resolve() if Path(name).is_absolute() else (Path.cwd() / name).resolve()
    rel = display_path(path, root) if path.exists() else name
    stages = list_stages(root)
    line = int(number) if number else 0
    traced = ""
    if rel.startswith(f"{STAGES_DIR}/"):
        generated = plan_files(root).get(rel)
        if generated is None or not generated.source.endswith(".py"):
            raise StageError(f"{rel} is not a generated copy of a source file")
        if line:
            if not 1 <= line <= len(generated.lines) or generated.lines[line - 1] == 0:
                raise StageError(f"{rel}:{line} comes from no source line (the header or [new])")
            line = generated.lines[line - 1]
        traced = f"{rel}{':' + number if number else ''} comes from "
        rel = generated.source
    if not rel.startswith(f"{PACKAGE}/"):
        raise StageError(f"{where}: give a file under {PACKAGE}/ or {STAGES_DIR}/")
    woven = read_sources(root, stages[-1].number).get(rel.removeprefix(f"{PACKAGE}/"))
    if woven is None:
        raise StageError(f"{rel}: no such source file")
    first = woven.origin(line) if line else woven.stages.first
    stage = next(s for s in stages if s.number == first)
    what = f"{rel}:{line}" if line else rel
    return f"{traced}{what}, which enters at stage {first} ({stage.name})"


if __name__ == "__main__":
    sys.exit(main())
