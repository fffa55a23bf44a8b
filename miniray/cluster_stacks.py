# @6+
"""Every rank's Python stack, on request, for any Cluster: ``Cluster.dump_stacks``.

On the node (`StackFiles`, in the cluster server): each worker, before it calls
``work_fn``, has ``faulthandler`` write all its threads' stacks to a file of its own on
SIGUSR1, in a directory only the server's user can enter. faulthandler's handler is C
code: it answers even while ``work_fn`` holds the GIL in a C call that never returns.
A ``stacks ID SECONDS`` line on the lease makes the server signal each live worker and
read what its file gained, until it stops growing (a dump is written in one go) or
SECONDS pass. A worker that is stopped (SIGSTOP) is not signalled: it could not answer,
and would dump later, into the next request. The answer goes back on the server's
stdout, with the log lines, as one record (JSON: one line):

    MINIRAY_STACKS {"id": 7, "stacks": {"0": "Thread 0x...", "1": null}, "why": {"1": "..."}}

On the coordinator (`collect_stacks`): the request to every node at once, then each
node's record with the request's id (a late answer to an earlier request is dropped),
until one deadline for all. A node that does not answer in time (stopped, or far) gets
a reason for each of its ranks instead of a stack.
"""

from __future__ import annotations

import contextlib
import faulthandler
import itertools
import json
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .channel import Channel
from .orphans import child_pids
from .run_rank import process_state
from .run_stacks import format_stack_groups
from .worker import WorkFn

STACKS_PREFIX = b"MINIRAY_STACKS "
NODE_WAIT = 1.0  # seconds a node server waits, at most, for its workers' dumps
_QUIET = 0.05  # seconds without more text that end a worker's dump
_POLL = 0.01  # seconds between looks at the files
_MAX_DUMP = 1 << 20  # bytes of one worker's dump that are sent


@dataclass(frozen=True)
class RankStack:
    """One rank's stacks, as ``Cluster.dump_stacks`` returns them.

    Attributes:
        rank: The worker's rank.
        host: Its node, as given to ``NodeConfig``.
        stack: Every thread's stack, as ``faulthandler`` writes it (the most recent call
            first), or None when there is none.
        why: Why there is none ("" when there is a stack).
    """

    rank: int
    host: str
    stack: str | None
    why: str = ""


# --8<-- [start:format_rank_stacks]
def format_rank_stacks(stacks: Sequence[RankStack]) -> str:
    """``Cluster.dump_stacks``'s answer as ``miniray run`` prints its own: ranks with the
    same stack in one group, its one-line summary first, then the ranks without a stack.

        print(format_rank_stacks(cluster.dump_stacks()))
    """
    found = {s.rank: s.stack for s in stacks if s.stack is not None}
    missing = {s.rank: s.why for s in stacks if s.stack is None}
    return format_stack_groups(found, missing)


# --8<-- [end:format_rank_stacks]


class StackFiles:
    """In a cluster server: the directory its workers' dumps go to, and the dumps.

    The directory (mode 0700) is made here; ``remove()`` deletes it. Each worker calls
    ``register(rank)``; the server calls ``answer(...)`` for each request.
    """

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="miniray-stacks-")  # 0700: ours only
        self._lock = threading.Lock()  # one dump at a time: they share the files

    def registering(self, work_fn: WorkFn) -> WorkFn:
        """``work_fn``, first registering its worker (``RANK``, set by ``ranked``) here."""

        def registered(handle: Channel) -> object:
            self.register(int(os.environ["RANK"]))
            return work_fn(handle)

        return registered

    def register(self, rank: int) -> None:
        """In a worker: dump every thread's stack to this rank's file on SIGUSR1.

        The file gets its name only once the handler is in place, so that the server,
        which signals the workers it finds files for, never kills one with a SIGUSR1
        that has no handler yet.
        """
        temporary = os.path.join(self.directory, f".{rank}.{os.getpid()}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o600)  # open for good: faulthandler writes to it
        faulthandler.register(signal.SIGUSR1, file=fd, all_threads=True, chain=False)
        os.rename(temporary, os.path.join(self.directory, f"{rank}.{os.getpid()}"))

    def answer(self, request: int, wait: float, write: Callable[[bytes], None]) -> None:
        """Dump every registered worker's stacks; ``write`` the record (see the module)."""
        with self._lock:
            try:
                stacks, why = self._dump(wait)
            except OSError:  # the directory is gone: the server is ending
                return
        fields = {"id": request, "stacks": stacks, "why": why}
        write(STACKS_PREFIX + json.dumps(fields).encode() + b"\n")

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _dump(self, wait: float) -> tuple[dict[int, str | None], dict[int, str]]:
        stacks: dict[int, str | None] = {}
        why: dict[int, str] = {}
        sizes: dict[int, tuple[str, int]] = {}  # rank -> its file, and its size before
        children = child_pids()
        for rank, pid, path in self._registered():
            state = process_state(pid)
            stacks[rank] = None
            if pid not in children or state in ("", "Z", "X"):
                why[rank] = "its worker has ended"
                with contextlib.suppress(OSError):
                    os.unlink(path)
            elif state in ("T", "t"):
                why[rank] = "stopped (SIGSTOP): it cannot dump"
            else:
                sizes[rank] = (path, os.path.getsize(path))
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGUSR1)  # our child: its pid cannot be another's
        for rank, text in _read_when_quiet(sizes, wait).items():
            stacks[rank] = text or None
            if not text:  # stopped meanwhile, or a work_fn that took SIGUSR1 for itself
                pid = int(os.path.basename(sizes[rank][0]).partition(".")[2])
                stopped = process_state(pid) in ("T", "t")
                why[rank] = (
                    "stopped (SIGSTOP): it cannot dump"
                    if stopped
                    else (f"no answer to SIGUSR1 within {wait:g} s")
                )
        return stacks, why

    def _registered(self) -> list[tuple[int, int, str]]:
        """``(rank, pid, path)`` of each worker whose handler is in place."""
        found = []
        for name in os.listdir(self.directory):
            rank, _, pid = name.partition(".")
            if rank.isdigit() and pid.isdigit():
                found.append((int(rank), int(pid), os.path.join(self.directory, name)))
        return found


def _read_when_quiet(sizes: Mapping[int, tuple[str, int]], wait: float) -> dict[int, str]:
    """What each file gained once it has stopped growing for `_QUIET` s (or at ``wait``)."""
    deadline = time.monotonic() + wait
    last: dict[int, tuple[int, float]] = {rank: (size, 0.0) for rank, (_, size) in sizes.items()}
    pending = set(sizes)
    while pending and time.monotonic() < deadline:
        time.sleep(_POLL)  # a file gives no event when it grows: look again soon
        now = time.monotonic()
        for rank in list(pending):
            path, before = sizes[rank]
            size = os.path.getsize(path)
            if size != last[rank][0]:
                last[rank] = (size, now)
            elif size > before and now - last[rank][1] >= _QUIET:
                pending.discard(rank)
    texts = {}
    for rank, (path, before) in sizes.items():
        with open(path, "rb") as file:
            file.seek(before)
            texts[rank] = file.read(_MAX_DUMP).decode(errors="replace")
        os.truncate(path, 0)  # the next dump starts at 0 (the worker appends)
    return texts


# --- on the coordinator -------------------------------------------------------------

_requests = itertools.count(1)


def parse_answer(
    record: bytes, ranks: Sequence[int]
) -> tuple[int, dict[int, tuple[str | None, str]]]:
    """A node's ``MINIRAY_STACKS`` record: its request id, and ``rank -> (stack, why)``
    for the node's own ``ranks`` (anything else in it is ignored). ValueError if garbled.
    """
    fields = json.loads(record[len(STACKS_PREFIX) :])
    # Checked by hand, not with assert (gone under -O): the record comes from the node.
    if not isinstance(fields, dict) or not isinstance(fields.get("id"), int):
        raise ValueError(f"garbled stacks record: {record[:200]!r}")
    stacks, why = fields.get("stacks"), fields.get("why")
    stacks = stacks if isinstance(stacks, dict) else {}
    why = why if isinstance(why, dict) else {}
    answers: dict[int, tuple[str | None, str]] = {}
    for rank in ranks:
        text = stacks.get(str(rank))
        if str(rank) in stacks:
            reason = why.get(str(rank))
            answers[rank] = (
                text if isinstance(text, str) else None,
                reason if isinstance(reason, str) else "",
            )
    return fields["id"], answers


class NodeStacks:
    """A node's answers as they arrive (``put``, from its log thread) and the request."""

    def __init__(self, host: str, ranks: Sequence[int], send: Callable[[str], bool]) -> None:
        self.host, self.ranks, self._send = host, list(ranks), send
        self._answers: queue.Queue[bytes] = queue.Queue()

    def put(self, record: bytes) -> None:
        self._answers.put(record)

    def ask(self, request: int, wait: float) -> bool:
        return self._send(f"stacks {request} {wait:.3f}")

    def take(self, request: int, deadline: float) -> dict[int, tuple[str | None, str]] | None:
        """This request's answer, if it comes before ``deadline``; older ones are dropped."""
        while (left := deadline - time.monotonic()) > 0:
            try:
                record = self._answers.get(timeout=left)
            except queue.Empty:
                break
            with contextlib.suppress(ValueError, RecursionError):  # garbled: not an answer
                request_id, answers = parse_answer(record, self.ranks)
                if request_id == request:
                    return answers
        return None


def collect_stacks(nodes: Sequence[NodeStacks], timeout: float) -> list[RankStack]:
    """Ask every node at once; each rank's `RankStack`, by rank, within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    request = next(_requests)
    wait = max(_QUIET * 2, min(NODE_WAIT, timeout / 2))  # leave the rest for the way back
    asked = [(node, node.ask(request, wait)) for node in nodes]
    found: list[RankStack] = []
    for node, sent in asked:
        answers = node.take(request, deadline) if sent else None
        problem = f"no answer from the node server within {timeout:g} s"
        if not sent:
            problem = "its node server could not be asked (its lease is closed or full)"
        for rank in node.ranks:
            stack, why = (None, problem) if answers is None else answers.get(rank, (None, ""))
            if stack is None and not why:
                why = "its worker is not running work_fn"  # ended, or not started yet
            found.append(RankStack(rank, node.host, stack, "" if stack is not None else why))
    return sorted(found, key=lambda r: r.rank)
