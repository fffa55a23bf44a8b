# @6+
"""Stack dumps of many ranks, made readable: identical stacks printed once, with their ranks.

Eight ranks of a hung job usually show two or three different stacks: seven waiting in a
collective, one somewhere else. That one is the news, so stacks are grouped by their text
(thread ids removed: they differ from process to process) and each group is printed with
the ranks that share it, the one-line summary first:

    ranks 0-2,4-7: all_reduce <- step <- train.py:88
    rank 3: __next__ <- dataloader.py:41
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

_THREAD = re.compile(r"^(Current thread|Thread) 0x[0-9a-f]+", re.M)
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+) in (?P<fn>\S+)', re.M)
_LIBRARY = re.compile(r"/(site|dist)-packages/|/lib/python\d+\.\d+/")


def format_ranks(ranks: Iterable[int]) -> str:
    """``[0, 1, 2, 4, 5, 7]`` -> ``"0-2,4-5,7"``: runs of consecutive ranks as ranges."""
    ordered = sorted(set(ranks))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def normalize_stack(text: str) -> str:
    """A dump without what differs between processes alike: thread ids, ``Current``."""
    return _THREAD.sub("Thread", text).strip()


def without_boot(text: str) -> str:
    """A rank's dump without MiniRay's own part: the heartbeat thread, the frames of
    ``run_boot.py`` under the script, and blank lines."""
    threads = re.split(r"\n\s*\n", text.strip())
    kept = [t for t in threads if not re.search(r'run_boot\.py", line \d+ in _beat', t)]
    lines = [
        line for thread in kept for line in [*thread.splitlines(), ""] if "run_boot.py" not in line
    ]
    return "\n".join(lines).strip()


# --8<-- [start:group_stacks]
def group_stacks(stacks_by_rank: Mapping[int, str]) -> list[tuple[list[int], str]]:
    """Group ranks whose stacks are the same (up to thread ids; see `normalize_stack`).

    Returns ``(ranks, stack)`` pairs: each group's ranks in increasing order, its stack
    normalized; the groups ordered by their lowest rank. Every rank is in one group.
    """
    groups: dict[str, list[int]] = {}
    for rank in sorted(stacks_by_rank):
        groups.setdefault(normalize_stack(stacks_by_rank[rank]), []).append(rank)
    return sorted(((ranks, stack) for stack, ranks in groups.items()), key=lambda g: g[0][0])


# --8<-- [end:group_stacks]


def summarize_stack(stack: str) -> str:
    """One line for a dump: ``all_reduce <- step <- train.py:88``.

    The last thread listed (the main thread: faulthandler lists the newest first), from
    the innermost frame out to the first frame of the user's code (not in the standard
    library or site-packages), which is named with its file and line; at most two library
    functions before it.
    """
    threads = [t for t in re.split(r"\n\s*\n", stack.strip()) if _FRAME.search(t)]
    if not threads:
        return stack.strip().splitlines()[0] if stack.strip() else "(empty)"
    frames = list(_FRAME.finditer(threads[-1]))  # innermost first
    names: list[str] = []
    for frame in frames:
        if not _LIBRARY.search(frame["file"]):
            where = f"{os.path.basename(frame['file'])}:{frame['line']}"
            return " ← ".join([*names[:2], frame["fn"], where])
        names.append(frame["fn"])
    last = frames[0]
    return " ← ".join([last["fn"], f"{os.path.basename(last['file'])}:{last['line']}"])


def format_stack_groups(
    stacks_by_rank: Mapping[int, str], why_by_rank: Mapping[int, str] | None = None
) -> str:
    """The report ``miniray run`` prints: each group's summary, then its stack indented;
    ranks without a stack (``why_by_rank``) last, with the reason."""
    lines: list[str] = []
    for ranks, stack in group_stacks(stacks_by_rank):
        label = f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {format_ranks(ranks)}"
        lines.append(f"{label}: {summarize_stack(stack)}")
        lines += ["    " + line for line in stack.splitlines() if line.strip()]
    by_reason: dict[str, list[int]] = {}
    for rank, why in sorted((why_by_rank or {}).items()):
        by_reason.setdefault(why, []).append(rank)
    for why, ranks in by_reason.items():
        label = f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {format_ranks(ranks)}"
        lines.append(f"{label}: no stack ({why})")
    return "\n".join(lines)
