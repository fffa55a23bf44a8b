"""The program that runs one documentation page's Python blocks (see `tools.doc_blocks`).

    python tools/doc_driver.py BLOCKS_JSON PROGRESS_FILE

Run by file path, in a fresh process whose working directory is the page's scratch folder and
whose ``PYTHONPATH`` picks the page's ``miniray``; it imports nothing but the standard library,
so the repository's own packages never shadow the stage's.  ``BLOCKS_JSON`` lists the blocks
(``page``, ``number``, ``line``, ``code``, ``filename``).  The blocks run in order in one
namespace, like one script; a block with a ``filename`` is written to that file instead.
Before each block its number is written to ``PROGRESS_FILE`` ("done" at the end), so that the
caller can name the block that failed or hung.  A block that raises ends the process with
exit code 1, after printing its traceback without this file's frames.
"""

from __future__ import annotations

import json
import linecache
import os
import sys
import traceback
from typing import Any


def main(blocks_json: str, progress: str) -> int:
    """Run the blocks; return the exit code (0, or 1 after a failed block)."""
    with open(blocks_json, encoding="utf-8") as f:
        blocks: list[dict[str, Any]] = json.load(f)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    for block in blocks:
        _write(progress, str(block["number"]))
        if block["filename"]:
            write_file(block)
            continue
        name = f"<{block['page']} block {block['number']}, line {block['line']}>"
        code: str = block["code"]
        linecache.cache[name] = (len(code), None, code.splitlines(True), name)
        try:
            exec(compile(code, name, "exec"), namespace)
        except BaseException as error:
            sys.stdout.flush()
            print(f"docs: {name} raised:", file=sys.stderr)
            frames = error.__traceback__
            traceback.print_exception(type(error), error, frames.tb_next if frames else None)
            sys.stderr.flush()
            return 1
        sys.stdout.flush()
        sys.stderr.flush()
    _write(progress, "done")
    return 0


def write_file(block: dict[str, Any]) -> None:
    """Write a titled block to its file, inside the working directory."""
    path = os.path.normpath(block["filename"])
    if os.path.isabs(path) or path.startswith(".."):
        sys.exit(f"block {block['number']}: title {block['filename']!r} leaves the directory")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(block["code"])


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    # Import from the working directory, as `python -c` would, and not from tools/: the
    # blocks import the files that titled blocks wrote there.
    sys.path[0] = ""
    # os._exit: a page's workers or servers (threads, atexit hooks) must not keep it alive
    code = main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    sys.stderr.flush()
    if code:
        os._exit(code)
    sys.exit(code)
