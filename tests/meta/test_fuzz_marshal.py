"""The marshal fuzzer (``benchmarks/fuzz_marshal.py``) runs and finds nothing in a short run,
and it can fail: a payload that loads as a tuple containing itself is reported as cyclic
(never hashed), and one that crashes ``marshal.loads`` is reported as a crash."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INT32 = struct.Struct("<i")
# A list whose second item is a tuple containing itself: the checker once let it through,
# because it numbered the flagged None as marshal's reader does not.
SELF_CONTAINING = (
    b"[" + INT32.pack(2) + bytes([ord("N") | 0x80, ord(")") | 0x80, 1]) + b"r" + INT32.pack(0)
)
# A set of a tuple containing itself: marshal.loads hashes the tuple, and CPython crashes.
CRASHING = b"<" + INT32.pack(1) + bytes([ord("(") | 0x80]) + INT32.pack(1) + b"r" + INT32.pack(0)


def fuzz_marshal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "benchmarks/fuzz_marshal.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def table(stdout: str) -> dict[str, float]:
    """The printed table: row name -> value."""
    rows = (re.fullmatch(r"(\S.*?) {2,}([\d,.]+)", line) for line in stdout.splitlines())
    return {row[1]: float(row[2].replace(",", "")) for row in rows if row}


def test_a_short_fuzz_run_finds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    result = fuzz_marshal("--seconds", "3", "--seed", "1", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table(result.stdout)
    assert rows["inputs generated"] >= rows["accepted by check_plain_marshal"] > 0
    assert rows["run in the child"] == rows["accepted by check_plain_marshal"]
    for failure in ("crashes", "hangs", "cyclic values", "not-plain values", "errors"):
        assert rows[failure] == 0, failure
    document = json.loads(out.read_text(encoding="utf-8"))
    written = {row["name"]: row["median"] for row in document["rows"]}
    assert list(written) == list(rows)  # the printed rows, in the printed order
    assert written["run in the child"] == rows["run in the child"] and written["crashes"] == 0
    assert document["notes"]["seed"] == 1 and document["notes"]["findings"] == []


def test_a_value_containing_itself_is_reported_cyclic_not_hashed() -> None:
    result = fuzz_marshal("--replay", SELF_CONTAINING.hex())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "check_plain_marshal refuses it" in result.stdout  # the fixed checker does
    assert "in the child: cyclic" in result.stdout
    rows = table(result.stdout)
    assert (rows["run in the child"], rows["cyclic values"], rows["crashes"]) == (1, 1, 0)
    assert f"cyclic: {SELF_CONTAINING.hex()}" in result.stdout


def test_a_crash_is_recorded_and_the_child_replaced() -> None:
    result = fuzz_marshal("--replay", CRASHING.hex(), "--replay", "4e")  # then None
    assert result.returncode == 1, result.stdout + result.stderr
    assert "in the child: crash (killed by SIGSEGV)" in result.stdout
    assert "in the child: ok" in result.stdout  # the next input, in a new child
    rows = table(result.stdout)
    assert (rows["run in the child"], rows["crashes"], rows["cyclic values"]) == (2, 1, 0)
    assert f"crash (killed by SIGSEGV): {CRASHING.hex()}" in result.stdout
