"""Stage bookkeeping, the public face: the stage model, `sync` and `problems`, and their
command line.

Usage, from the repository root::

    python -m tools.stages sync    # carry fixes into later stages' own copies (3-way merge),
                                   # copy inherited files, write CHANGES.diff and miniray/
    python -m tools.stages check   # change nothing; list every stale or misplaced file and
                                   # every fix that has not reached a later stage's copy

What a stage is lives in `tools.stage_model`; which files are generated, and how they are
written and checked, in `tools.sync`; how fixes travel into a later stage's own copy of a
file, in `tools.carry`.  Other code imports all of it from here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.carry import CarryReport
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
from tools.sync import FileMap, display_path, problems, sync, tracked_files

__all__ = [
    "DEMO",
    "DIFF_NAME",
    "PACKAGE",
    "REPO_ROOT",
    "STAGES_DIR",
    "STAGE_TOML",
    "CarryReport",
    "Exercise",
    "FileMap",
    "Stage",
    "StageError",
    "exercise_marker",
    "find_stage",
    "list_stages",
    "load_stage",
    "main",
    "problems",
    "sync",
    "tracked_files",
    "unified_diff",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.stages",
        description="Sync or check the generated files of the MiniRay stages.",
    )
    parser.add_argument("command", choices=["sync", "check"])
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    if args.command == "sync":
        carried: list[CarryReport] = []
        try:
            written = sync(root, carried)
        except (StageError, RuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        for path in written:
            print(f"wrote {display_path(path, root)}")
        for report in carried:
            for where in report.merged:
                print(f"merged the previous stage's changes into {where}")
            for where in report.new_bases:
                print(
                    f"recorded a merge base for {where}: later changes to the earlier file travel"
                )
            for where in report.conflicts:
                print(
                    f"CONFLICT in {where}: both stages changed the same lines; resolve the "
                    "<<<<<<< ======= >>>>>>> markers by hand"
                )
        print(f"sync: {len(written)} file(s) written")
    found = problems(root)
    for problem in found:
        print(f"problem: {problem}")
    if found:
        print(f"{len(found)} problem(s); `python -m tools.stages sync` fixes generated files")
        return 1
    if args.command == "check":
        print(f"stages: ok ({len(list_stages(root))} stages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
