"""A mutation fuzzer for the marshal codec: what ``check_plain_marshal`` accepts must load safely.

    python benchmarks/fuzz_marshal.py --seconds 600 [--seed N] [--json PATH]
    python benchmarks/fuzz_marshal.py --replay HEX [--replay HEX ...]

``MarshalCodec.decode`` (``miniray/codec.py``) scans a payload with ``check_plain_marshal``
and only then calls ``marshal.loads``, which is not safe on crafted bytes. The scan once
numbered flagged None, True and False as back-reference targets, which marshal's reader
does not, and a 13-byte payload loaded as a tuple containing itself: CPython crashes when
such a tuple is hashed. This script hunts for payloads of that kind, for a fixed time:

* seeds: ``marshal.dumps(value, 4)`` of plain values (shared sub-objects, so the streams
  hold flagged values and ``r`` back-references; nested containers, sets, big ints, floats,
  strings, bytes, empty containers) and the payloads of bugs found before;
* mutants: one to a few mutations of a seed or of an earlier accepted mutant (flip a byte,
  set or clear the 0x80 flag, insert, delete or duplicate a slice, splice two inputs,
  write an interesting 4-byte int, insert a type code or an ``r`` reference), drawn from
  ``random.Random(seed)``, so a seed gives the same inputs again;
* every mutant goes through ``check_plain_marshal`` here (pure Python: it cannot crash).
  The accepted ones go, in batches of length-prefixed frames, to a long-lived child
  process (this script with ``--child``), which loads each one, checks that the value is
  plain data and acyclic, then uses it as a program would: hashes every hashable part and
  puts it in a set, ``repr``, ``json.dumps`` and ``marshal.dumps``; then it decodes the
  input as a receiver does (``MarshalCodec.decode``, which loads sets and dicts whose keys
  a peer could make collide as marked lists and rebuilds them), which must give plain,
  acyclic data equal to what ``marshal.loads`` made, or a ``ProtocolError``. It answers one byte
  per input as soon as the input is done, so when it dies by a signal the first input it
  did not answer is the one that crashed it; that input is kept (in hex) and a new child
  takes the rest. An input the child is stuck on for ``--hang-seconds`` is a hang: the
  child is killed and replaced. The child exits when its stdin closes, with the parent.

It prints a progress line to stderr every 30 s and a table at the end, and exits 1 if any
input crashed or hung the child, loaded as a cyclic or not-plain value, or raised what
``MarshalCodec.decode`` would not turn into a ``ProtocolError``; those inputs are printed
in hex. ``--replay HEX`` runs given inputs through the child, bypassing the checker.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import marshal
import os
import platform
import random
import resource
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the top-level miniray package (= the final stage)

from json_rows import Result, write_json  # noqa: E402

from miniray import ProtocolError  # noqa: E402
from miniray.codec import MARSHAL, MARSHAL_VERSION, check_plain_marshal  # noqa: E402

BATCH = 256  # mutants generated (and checked) per batch sent to the child
MAX_SIZE = 4096  # bytes: a mutant is cut to this
POOL_SIZE = 2000  # accepted mutants kept as sources for further mutants
PROGRESS_SECONDS = 30.0
STRESS_LIMIT = 100_000  # values, counting shared ones each time they occur: above, no stress
MAX_FINDINGS = 50  # failing inputs kept (and printed) per run; all are counted
FRAME = struct.Struct("<I")  # the length before each input on the child's stdin
INT32 = struct.Struct("<i")

# The child's answer per input: one byte, written as soon as the input is done.
VERDICTS = {
    ord("o"): "ok",
    ord("r"): "refused by marshal.loads",  # ValueError, EOFError, TypeError: a ProtocolError
    ord("b"): "too big to stress",  # acyclic and plain, but its shared parts add up
    ord("c"): "cyclic",
    ord("n"): "not plain",
    ord("e"): "error",  # loads or the stress raised what decode does not expect
}
# Verdicts the parent gives itself: the child died or stuck, or the checker itself raised.
CRASH, HANG, CHECKER_ERROR = "crash", "hang", "checker error"
FAILURES = (CRASH, HANG, "cyclic", "not plain", "error", CHECKER_ERROR)

SCALARS = frozenset({type(None), bool, int, float, str, bytes})
CONTAINERS = frozenset({tuple, list, dict, set, frozenset})

# Payloads of bugs found before, as seeds: their neighbourhoods are where the next one hides.
# A flagged None taken for a numbered value: a list whose second item contains itself.
SELF_CONTAINING = (
    b"[" + FRAME.pack(2) + bytes([ord("N") | 0x80, ord(")") | 0x80, 1]) + b"r" + INT32.pack(0)
)
# A set of a tuple that contains itself: marshal.loads hashes it, and CPython crashes.
CRASHING = b"<" + FRAME.pack(1) + bytes([ord("(") | 0x80]) + FRAME.pack(1) + b"r" + INT32.pack(0)


class Answer(NamedTuple):
    """One input the child ran, and what came of it."""

    data: bytes
    verdict: str
    detail: str = ""  # for a crash or a hang: how the child died or what it did not do


@dataclass
class Tally:
    """What a run did, for the table."""

    generated: int = 0
    accepted: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    findings: list[Answer] = field(default_factory=list)  # the first MAX_FINDINGS distinct
    failed: set[bytes] = field(default_factory=set)  # every failing input, once

    def add(self, answer: Answer) -> None:
        self.verdicts[answer.verdict] += 1
        if answer.verdict in FAILURES and answer.data not in self.failed:
            self.failed.add(answer.data)  # said at once, so a run cut short still tells
            print(f"[fuzz_marshal] {describe(answer)}", file=sys.stderr, flush=True)
            if len(self.findings) < MAX_FINDINGS:
                self.findings.append(answer)

    @property
    def run(self) -> int:
        """Inputs the child ran (or died or stuck on)."""
        return sum(n for verdict, n in self.verdicts.items() if verdict != CHECKER_ERROR)

    @property
    def failures(self) -> int:
        return sum(self.verdicts[verdict] for verdict in FAILURES)


def describe(answer: Answer) -> str:
    detail = f" ({answer.detail})" if answer.detail else ""
    return f"{answer.verdict}{detail}: {answer.data.hex()}"


# --- the values the seeds are made of ---------------------------------------------------


def corpus() -> list[Any]:
    """Plain values of every kind marshal writes for plain data, some sharing parts."""
    shared_tuple = (1, "two", 3.0)
    shared_list: list[object] = [None, True, False]
    shared_text = "a string long enough that nothing else interns it"
    shared_bytes = b"\x00\x01 shared bytes"
    shared_frozenset = frozenset({1, 2, (3, 4)})
    big = 2**100 + 12345
    return [
        None,
        True,
        False,
        0,
        1,
        -1,
        2**31 - 1,
        -(2**31),
        2**31,
        big,
        -big,
        2**1000,
        0.0,
        -0.0,
        1.5,
        float("inf"),
        float("nan"),
        1e308,
        "",
        "a",
        "short ascii",
        "é ünïcode ✓ 漢字",
        "🙂" * 3,
        "x" * 300,
        b"",
        b"\x00\xff",
        bytes(range(256)),
        (),
        [],
        {},
        set(),
        frozenset(),
        (1,),
        [1, 2, 3],
        {"a": 1, 2: "b", (1, 2): [3], None: {}},
        {1, 2, 3},
        {(1, 2), (3, (4, 5)), frozenset({6})},
        frozenset({"a", (1, 2)}),
        [shared_tuple, shared_tuple, shared_list, shared_list, shared_text, shared_text],
        {"k": shared_list, "v": shared_list, shared_tuple: shared_tuple},
        (shared_frozenset, shared_frozenset, [shared_frozenset], {shared_frozenset}),
        [shared_bytes] * 5,
        (shared_text, [shared_text, (shared_text, {shared_text: shared_tuple})]),
        [None, (None,), [True, (False, None)], (True, True)],
        [[[[[1]]]]],
        ((((),),),),
        {"a": {"b": {"c": {"d": None}}}},
        [x * 0.5 for x in range(50)],  # a run of floats: the checker skips it in one regex
        list(range(-10, 300)),  # a run of ints (small ones are shared, so flagged)
        tuple(range(40)),
        {i: str(i) for i in range(20)},
        set(range(30)),
        [1, 1.0, True, None, "1", b"1", (1,), [1], {1}, frozenset({1}), {1: 1}],
    ]


def seeds() -> list[bytes]:
    return [marshal.dumps(value, MARSHAL_VERSION) for value in corpus()] + [
        SELF_CONTAINING,
        CRASHING,
    ]


# --- the mutator -------------------------------------------------------------------------

INTERESTING: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 7, 8, 16, 127, 128, 255, 256, 2**15, 2**16)
INTERESTING += (2**31 - 1, -1, -2, -(2**31))  # the ends of a signed 4-byte field
PLAIN_CODES = b"NFTigzZstuaA()[<>{rl0"  # the codes the checker knows, and the dict's end
CONTAINER_CODES = b"()[<>{"


class Mutator:
    """Mutants of the seeds and of earlier accepted mutants, all drawn from one ``Random``."""

    def __init__(self, rng: random.Random, seeds: list[bytes]) -> None:
        self.rng = rng
        self.seeds = seeds
        self.pool: list[bytes] = []  # accepted mutants
        self.mutations: list[Callable[[bytearray], None]] = [
            self.flip_byte,
            self.toggle_flag,
            self.toggle_flag,  # twice: the flag is where the last bug was
            self.set_type_code,
            self.insert_slice,
            self.delete_slice,
            self.duplicate_slice,
            self.splice,
            self.interesting_int,
            self.interesting_int,
            self.insert_reference,
            self.insert_reference,
            self.insert_container,
        ]

    def mutant(self) -> bytes:
        rng = self.rng
        source = self.pool if self.pool and rng.random() < 0.5 else self.seeds
        data = bytearray(rng.choice(source))
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
            rng.choice(self.mutations)(data)
        return bytes(data[:MAX_SIZE])

    def keep(self, data: bytes) -> None:
        """Make an accepted mutant a source of later ones."""
        if len(self.pool) < POOL_SIZE:
            self.pool.append(data)
        else:
            self.pool[self.rng.randrange(POOL_SIZE)] = data

    def _at(self, data: bytearray) -> int:
        """A position to insert at (0 to len)."""
        return self.rng.randrange(len(data) + 1)

    def _span(self, data: bytearray) -> tuple[int, int]:
        start = self._at(data)
        return start, min(len(data), start + self.rng.randrange(1, 17))

    def flip_byte(self, data: bytearray) -> None:
        if data:
            i = self.rng.randrange(len(data))
            data[i] = (
                self.rng.randrange(256)
                if self.rng.random() < 0.5
                else data[i] ^ (1 << self.rng.randrange(8))
            )

    def toggle_flag(self, data: bytearray) -> None:
        if data:
            data[self.rng.randrange(len(data))] ^= 0x80

    def set_type_code(self, data: bytearray) -> None:
        if data:
            code = self.rng.choice(PLAIN_CODES) | self.rng.choice((0, 0x80))
            data[self.rng.randrange(len(data))] = code

    def insert_slice(self, data: bytearray) -> None:
        size = self.rng.randrange(1, 9)
        if data and self.rng.random() < 0.5:
            start, end = self._span(data)
            piece = bytes(data[start:end])
        else:
            piece = self.rng.randbytes(size)
        at = self._at(data)
        data[at:at] = piece

    def delete_slice(self, data: bytearray) -> None:
        start, end = self._span(data)
        del data[start:end]

    def duplicate_slice(self, data: bytearray) -> None:
        start, end = self._span(data)
        data[end:end] = data[start:end]

    def splice(self, data: bytearray) -> None:
        """Replace the tail of ``data`` with the tail of another input."""
        other = self.rng.choice(self.pool if self.pool and self.rng.random() < 0.5 else self.seeds)
        data[self._at(data) :] = other[self.rng.randrange(len(other) + 1) :]

    def interesting_int(self, data: bytearray) -> None:
        """Overwrite a 4-byte field (a count, a length, an index, an int) with an edge value."""
        if len(data) >= 4:
            at = self.rng.randrange(len(data) - 3)
            data[at : at + 4] = INT32.pack(self.rng.choice(INTERESTING))

    def insert_reference(self, data: bytearray) -> None:
        index = self.rng.randrange(8) if self.rng.random() < 0.8 else self.rng.choice(INTERESTING)
        code = ord("r") | (0x80 if self.rng.random() < 0.2 else 0)
        at = self._at(data)
        data[at:at] = bytes([code]) + INT32.pack(index)

    def insert_container(self, data: bytearray) -> None:
        """Insert a container's header (flagged or not) with a small count."""
        code = self.rng.choice(CONTAINER_CODES) | self.rng.choice((0, 0x80))
        count = self.rng.randrange(4)
        header = bytes([code, count]) if code & 0x7F == ord(")") else bytes([code])
        if code & 0x7F not in b"){":
            header += FRAME.pack(count)
        at = self._at(data)
        data[at:at] = header


# --- the child: loads each input and uses the value -----------------------------------


def child_main() -> None:
    """Read length-prefixed inputs on stdin, answer one byte each on stdout, until EOF."""
    faulthandler.enable()  # a crash prints the child's stack to stderr before it dies
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which stops us
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash is expected: no core files
    stdin, stdout = sys.stdin.buffer, sys.stdout.fileno()
    while len(header := stdin.read(FRAME.size)) == FRAME.size:
        (size,) = FRAME.unpack(header)
        data = stdin.read(size)
        if len(data) < size:
            break
        os.write(stdout, bytes([examine(data)]))  # unbuffered: the acknowledgement


def examine(data: bytes) -> int:
    """Load ``data``, check the value, use it; the verdict's byte (see VERDICTS)."""
    try:
        value = marshal.loads(data)
    except (ValueError, EOFError, TypeError):  # what MarshalCodec.decode turns away
        return ord("r")
    except Exception:
        traceback.print_exc()
        return ord("e")
    verdict, containers, size = walk(value)
    if verdict != "ok":  # above all, never hash a value that contains itself
        return ord("c") if verdict == "cyclic" else ord("n")
    if size > STRESS_LIMIT:
        return ord("b")
    try:
        stress(value, containers)
    except Exception:
        traceback.print_exc()
        return ord("e")
    try:
        decoded = MARSHAL.decode(data)  # the receiver's way: marked lists, rebuilt
    except ProtocolError:  # refused, say for keys that share a hash: what decode may do
        return ord("o")
    except Exception:
        traceback.print_exc()
        return ord("e")
    verdict, _, _ = walk(decoded)
    if verdict != "ok":
        return ord("c") if verdict == "cyclic" else ord("n")
    if decoded != value and not any(map(has_nan, [value, *containers])):
        print(f"decode gave {decoded!r:.200}, marshal.loads {value!r:.200}", file=sys.stderr)
        return ord("e")  # (a NaN is unequal to itself: values holding one are not compared)
    return ord("o")


def has_nan(part: object) -> bool:
    """Whether ``part`` is a NaN or holds one directly (a dict: as a key or a value)."""
    items = [part] if isinstance(part, float) else items_of(part)
    return any(isinstance(x, float) and x != x for x in items)


def items_of(part: object) -> list[object]:
    return list(items(part)) if type(part) in CONTAINERS else []


def walk(value: object) -> tuple[str, list[object], int]:
    """Is ``value`` plain and acyclic: ("ok" / "cyclic" / "not plain", its distinct
    containers, how many values it has counting a shared one each time it occurs)."""
    if type(value) in SCALARS:
        return "ok", [], 1
    if type(value) not in CONTAINERS:
        return "not plain", [], 0
    enclosing = {id(value)}  # the containers around the one being walked
    sizes: dict[int, int] = {}  # id -> size, for the containers walked to the end
    containers: list[object] = []
    stack: list[tuple[object, Iterator[object]]] = [(value, items(value))]
    totals = [1]  # the size so far of each container on the stack
    while stack:
        container, children = stack[-1]
        for child in children:
            kind = type(child)
            if kind in SCALARS:
                totals[-1] += 1
            elif kind not in CONTAINERS:
                return "not plain", containers, 0
            elif id(child) in enclosing:
                return "cyclic", containers, 0
            elif id(child) in sizes:  # shared, and already walked
                totals[-1] += sizes[id(child)]
            else:
                enclosing.add(id(child))
                stack.append((child, items(child)))
                totals.append(1)
                break
        else:
            stack.pop()
            enclosing.discard(id(container))
            containers.append(container)
            size = sizes[id(container)] = totals.pop()
            if totals:
                totals[-1] += size
    return "ok", containers, sizes[id(value)]


def items(container: object) -> Iterator[object]:
    """What a container holds: a dict's keys and values, any other's items."""
    if isinstance(container, dict):
        for key, item in container.items():
            yield key
            yield item
    else:
        assert isinstance(container, tuple | list | set | frozenset)
        yield from container


def stress(value: Any, containers: list[object]) -> None:
    """Use the value as a program would; only the exceptions plain data may raise are fine."""
    seen: set[object] = set()
    for part in [*containers, value]:
        with suppress(TypeError):  # a list, dict or set, or a tuple holding one
            hash(part)  # a tuple or frozenset: hashes everything inside it
            seen.add(part)  # and compares it with what the set holds
        if isinstance(part, list):
            with suppress(TypeError):
                seen.update(part)
    with suppress(RecursionError, ValueError):  # deep nesting; an int of over 4300 digits
        repr(value)
    with suppress(TypeError, ValueError, RecursionError):
        json.dumps(value, default=repr, skipkeys=True)
    with suppress(ValueError):  # nested too deep for marshal's writer
        marshal.dumps(value, MARSHAL_VERSION)


# --- the parent's side of the child ---------------------------------------------------


class Child:
    """The long-lived child process, and the inputs sent to it that it has not answered."""

    def __init__(self, hang_seconds: float) -> None:
        self.hang_seconds = hang_seconds
        self.waiting: deque[bytes] = deque()  # sent (or to send), in order, not answered
        self.outgoing = bytearray()  # frames not yet written to its stdin
        self.restarts = 0
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdin is not None
        os.set_blocking(process.stdin.fileno(), False)  # every wait is a select with a timeout
        self.broken = False  # its stdin is closed: it died
        return process

    def submit(self, inputs: Iterable[bytes]) -> None:
        """Queue ``inputs`` and write what the pipe takes now; `drain` waits for them."""
        for data in inputs:
            self.waiting.append(data)
            self.outgoing += FRAME.pack(len(data)) + data
        self._write()

    def _write(self) -> None:
        assert self.process.stdin is not None
        if not self.outgoing or self.broken:
            return
        try:
            written = os.write(self.process.stdin.fileno(), self.outgoing)
        except BlockingIOError:
            return
        except BrokenPipeError:
            self.broken = True  # its answers so far are still to be read from stdout
            return
        del self.outgoing[:written]

    def drain(self) -> list[Answer]:
        """Wait until every input sent has an answer, replacing the child after a crash or a
        hang; the answers, in order."""
        assert self.process.stdin is not None and self.process.stdout is not None
        answers: list[Answer] = []
        deadline = time.monotonic() + self.hang_seconds  # from the last answer on
        while self.waiting:
            stdin, stdout = self.process.stdin.fileno(), self.process.stdout.fileno()
            writing = [stdin] if self.outgoing and not self.broken else []
            timeout = max(0.0, deadline - time.monotonic())
            readable, writable, _ = select.select([stdout], writing, [], timeout)
            if writable:
                self._write()
            if readable:
                received = os.read(stdout, 65536)
                if not received:  # EOF: it died; the first input not answered killed it
                    answers.append(self._replace(CRASH, self._death()))
                else:
                    answers += [Answer(self.waiting.popleft(), VERDICTS[b]) for b in received]
                deadline = time.monotonic() + self.hang_seconds
            elif not writable and time.monotonic() >= deadline:
                self.process.kill()
                self.process.wait()
                detail = f"no answer in {self.hang_seconds:g} s"
                answers.append(self._replace(HANG, detail))
                deadline = time.monotonic() + self.hang_seconds
        return answers

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=self.hang_seconds)
        except subprocess.TimeoutExpired:  # stdout closed, yet alive: make sure it is gone
            self.process.kill()
            code = self.process.wait()
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    def _replace(self, verdict: str, detail: str) -> Answer:
        """Blame the first input not answered, start a new child, send it the rest."""
        self._close_pipes()
        self.restarts += 1
        answer = Answer(self.waiting.popleft(), verdict, detail)
        self.process = self._start()
        rest = list(self.waiting)
        self.waiting.clear()
        self.outgoing.clear()
        self.submit(rest)
        return answer

    def _close_pipes(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with suppress(BrokenPipeError):  # a buffered write that never was
                    pipe.close()

    def close(self) -> None:
        """Close its stdin (it exits at EOF) and wait; kill it if it does not go."""
        self._close_pipes()
        try:
            self.process.wait(timeout=self.hang_seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the runs ----------------------------------------------------------------------------


def fuzz(seconds: float, seed: int, hang_seconds: float) -> tuple[Tally, float]:
    """Mutants for ``seconds``; the tally, and the seconds it took."""
    mutator = Mutator(random.Random(seed), seeds())
    tally = Tally()
    child = Child(hang_seconds)
    started = time.monotonic()
    next_progress = started + PROGRESS_SECONDS
    try:
        while (now := time.monotonic()) < started + seconds:
            batch = []
            for _ in range(BATCH):
                data = mutator.mutant()
                tally.generated += 1
                try:
                    check_plain_marshal(data)
                except ProtocolError:
                    continue
                except Exception as e:  # the checker must refuse with ProtocolError only
                    tally.add(Answer(data, CHECKER_ERROR, f"{type(e).__name__}: {e}"))
                    continue
                tally.accepted += 1
                mutator.keep(data)
                batch.append(data)
            for answer in child.drain():  # the last batch, run while this one was made
                tally.add(answer)
            child.submit(batch)
            if now >= next_progress:
                progress(tally, now - started, seconds)
                next_progress += PROGRESS_SECONDS
        for answer in child.drain():
            tally.add(answer)
    except KeyboardInterrupt:
        print("[fuzz_marshal] interrupted: the table counts what ran", file=sys.stderr)
    finally:
        child.close()
    return tally, time.monotonic() - started


def progress(tally: Tally, elapsed: float, seconds: float) -> None:
    print(
        f"[fuzz_marshal] {elapsed:4.0f}/{seconds:g} s: {tally.generated:,} generated, "
        f"{tally.accepted:,} accepted, {tally.run:,} run in the child, "
        f"{tally.failures} failures, {tally.generated / elapsed:,.0f} inputs/s",
        file=sys.stderr,
        flush=True,
    )


def replay(inputs: list[bytes], hang_seconds: float) -> tuple[Tally, float]:
    """Run each input through the child, accepted by the checker or not; say what came of it."""
    tally = Tally()
    child = Child(hang_seconds)
    started = time.monotonic()
    try:
        for number, data in enumerate(inputs, 1):
            tally.generated += 1
            try:
                check_plain_marshal(data)
                checker = "accepts it"
                tally.accepted += 1
            except ProtocolError as e:
                checker = f"refuses it: {e}"
            print(f"input {number} ({len(data)} bytes): {data.hex()}")
            print(f"  check_plain_marshal {checker}")
            child.submit([data])
            for answer in child.drain():
                tally.add(answer)
                detail = f" ({answer.detail})" if answer.detail else ""
                print(f"  in the child: {answer.verdict}{detail}")
    finally:
        child.close()
    return tally, time.monotonic() - started


def table(tally: Tally, seconds: float) -> list[tuple[str, float, str, str]]:
    """The rows: (name, value, unit, which way is better)."""
    counts = [
        ("inputs generated", tally.generated, "higher"),
        ("accepted by check_plain_marshal", tally.accepted, "higher"),
        ("run in the child", tally.run, "higher"),
        ("refused by marshal.loads", tally.verdicts["refused by marshal.loads"], "lower"),
        ("too big to stress", tally.verdicts["too big to stress"], "lower"),
        ("crashes", tally.verdicts[CRASH], "lower"),
        ("hangs", tally.verdicts[HANG], "lower"),
        ("cyclic values", tally.verdicts["cyclic"], "lower"),
        ("not-plain values", tally.verdicts["not plain"], "lower"),
        ("errors", tally.verdicts["error"] + tally.verdicts[CHECKER_ERROR], "lower"),
    ]
    rows = [(name, float(value), "inputs", better) for name, value, better in counts]
    rows.append(("inputs/s", tally.generated / max(seconds, 1e-9), "inputs/s", "higher"))
    rows.append(("seconds", seconds, "s", "lower"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to fuzz")
    parser.add_argument("--seed", type=int, help="the mutator's seed (default: a random one)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows to PATH as JSON")
    parser.add_argument(
        "--hang-seconds", type=float, default=10.0, help="an input the child takes longer on hangs"
    )
    parser.add_argument(
        "--replay",
        metavar="HEX",
        action="append",
        type=bytes.fromhex,
        help="run this input through the child, bypassing the checker (repeatable); no fuzzing",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main()
        return 0
    python = f"Python {platform.python_version()}"
    notes: dict[str, object] = {"python": python}
    if args.replay:
        print(f"replaying {len(args.replay)} input(s) through the child ({python})")
        tally, seconds = replay(args.replay, args.hang_seconds)
    else:
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
        notes.update(seed=seed, seconds=args.seconds)
        print(f"fuzzing check_plain_marshal for {args.seconds:g} s, seed {seed} ({python})")
        tally, seconds = fuzz(args.seconds, seed, args.hang_seconds)
    rows = table(tally, seconds)
    print(f"{'measure':34} {'value':>14}")
    for name, value, _unit, _better in rows:
        shown = f"{value:,.1f}" if name == "seconds" else f"{value:,.0f}"
        print(f"{name:34} {shown:>14}")
    if tally.failures:
        more = f", the first {MAX_FINDINGS} shown" if len(tally.failed) > MAX_FINDINGS else ""
        print(f"{tally.failures} failures: {len(tally.failed)} distinct inputs{more}")
        print("(replay one with: python benchmarks/fuzz_marshal.py --replay HEX)")
        for answer in tally.findings:
            print(f"  {describe(answer)}")
    if args.json:
        notes["findings"] = [
            answer._asdict() | {"data": answer.data.hex()} for answer in tally.findings
        ]
        results = [
            Result("marshal fuzz", name, v, v, v, 1, unit, better) for name, v, unit, better in rows
        ]
        write_json(args.json, results, notes)
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
