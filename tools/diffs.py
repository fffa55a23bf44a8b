"""Git-style unified diffs between two sets of files, as written to a stage's CHANGES.diff.

The output applies with ``git apply``: new and deleted files carry their mode lines, a missing
final newline gets git's marker, and files that are not UTF-8 text are reported as binary.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping

from tools.lines import split_lines


def unified_diff(old: Mapping[str, bytes], new: Mapping[str, bytes]) -> str:
    """A git-style unified diff from ``old`` to ``new`` (path -> content), paths sorted."""
    return "".join(
        "".join(_file_diff(path, old.get(path), new.get(path)))
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path)
    )


def _file_diff(path: str, old: bytes | None, new: bytes | None) -> Iterator[str]:
    yield f"diff --git a/{path} b/{path}\n"
    if old is None:
        yield "new file mode 100644\n"
    if new is None:
        yield "deleted file mode 100644\n"
    try:
        old_lines = split_lines(old.decode("utf-8")) if old is not None else []
        new_lines = split_lines(new.decode("utf-8")) if new is not None else []
    except UnicodeDecodeError:
        yield f"Binary files a/{path} and b/{path} differ\n"
        return
    from_file = f"a/{path}" if old is not None else "/dev/null"
    to_file = f"b/{path}" if new is not None else "/dev/null"
    for line in difflib.unified_diff(old_lines, new_lines, from_file, to_file):
        yield line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
