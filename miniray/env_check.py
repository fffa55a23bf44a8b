# @6+
"""The same software everywhere: a run's nodes compared before its script starts.

A run whose nodes differ (another Python, an older MiniRay, torch 2.4 on one host and 2.5
on the others, a script edited on one machine but not copied to the rest) fails late and
strangely: a pickle that will not load, a collective that hangs. So each node reports its
`software_facts`, and `check_same_software` refuses the run, naming the nodes and the
values, before any rank starts.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import stat

from . import __version__
from .errors import ClusterError

MAX_FILE_BYTES = 10 << 20  # a bigger file is hashed by its size, not its contents
MAX_READ_BYTES = 64 << 20  # once this much is read, the rest by name and size
MAX_FILES = 10_000  # past this many files, the rest by name and size
MAX_WALK = 100_000  # past this many files, the walk stops (the digest says so)
SHOWN_NODES = 8  # nodes named per value in the error; the rest are counted


def software_facts(script_dir: str) -> dict[str, str]:
    """What this node runs, to compare with the other nodes' (plain strings: JSON-able).

    Runs on each node. Keys: ``python`` (its version), ``miniray``, ``torch`` (its
    version, read from the package's metadata without importing it, or ``not installed``)
    and ``script_dir`` (`directory_digest` of the script's directory).
    """
    return {
        "python": platform.python_version(),
        "miniray": __version__,
        "torch": _torch_version(),
        "script_dir": directory_digest(script_dir),
    }


def _torch_version() -> str:
    if importlib.util.find_spec("torch") is None:  # finds it without importing it (seconds)
        return "not installed"
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:  # importable, but no metadata
        return "installed, version unknown"


def directory_digest(path: str) -> str:
    """A digest of the regular files under ``path``: their relative paths and contents.

    Left out: ``__pycache__``, ``.git`` and every hidden directory or file (a name
    starting with "."), symbolic links, and every directory on another filesystem, as
    ``find -xdev`` leaves them: a mounted data volume is not the script's code, and a
    script in ``/`` would have the walk read ``/proc``, where a read can block for ever.
    Bounded, so that a big data directory does not stall the start: a file over
    `MAX_FILE_BYTES` counts by its path and size only, and so does every file once
    `MAX_FILES` files or `MAX_READ_BYTES` bytes have been read; after `MAX_WALK` files
    the walk stops (the digest then covers those). Files are taken in sorted order, so
    the same tree gives the same digest on every node. An unreadable file counts as
    such. Returns ``sha256:`` and 16 hex digits, or ``missing``.
    """
    if not os.path.isdir(path):
        return "missing"
    device = os.stat(path).st_dev
    digest = hashlib.sha256()
    files = read = 0
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d != "__pycache__"
            and _on_device(os.path.join(root, d), device)
        )
        for name in sorted(n for n in names if not n.startswith(".")):
            full = os.path.join(root, name)
            try:
                info = os.lstat(full)
            except OSError:
                continue  # gone since the walk listed it
            if not stat.S_ISREG(info.st_mode):
                continue
            files += 1
            if files > MAX_WALK:
                digest.update(b"\0walk stopped\0")
                return "sha256:" + digest.hexdigest()[:16]
            relative = os.path.relpath(full, path).replace(os.sep, "/")
            digest.update(f"{relative}\0{info.st_size}\0".encode(errors="surrogateescape"))
            small = info.st_size <= MAX_FILE_BYTES and read + info.st_size <= MAX_READ_BYTES
            if small and files <= MAX_FILES:
                read += info.st_size
                digest.update(_file_digest(full))
            digest.update(b"\n")
    return "sha256:" + digest.hexdigest()[:16]


def _on_device(path: str, device: int) -> bool:
    try:
        return os.lstat(path).st_dev == device
    except OSError:
        return False  # gone since the walk listed it


def _file_digest(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").digest()
    except OSError:
        return b"unreadable"


# --8<-- [start:check_same_software]
def check_same_software(facts_by_node: dict[str, dict[str, str]]) -> None:
    """Refuse a run whose nodes' `software_facts` differ, naming the nodes and values.

    Args:
        facts_by_node: Each node's name (its host) and the facts it reported.

    Raises:
        ClusterError: Some fact differs between nodes (or a node did not report it):
            one line per fact, each value with the nodes that have it.
    """
    keys = list(dict.fromkeys(key for facts in facts_by_node.values() for key in facts))
    differences = []
    for key in keys:
        nodes_by_value: dict[str, list[str]] = {}
        for node, facts in facts_by_node.items():
            nodes_by_value.setdefault(facts.get(key, "(not reported)"), []).append(node)
        if len(nodes_by_value) > 1:
            values = "; ".join(f"{v} on {_some(nodes)}" for v, nodes in nodes_by_value.items())
            differences.append(f"{key}: {values}")
    if differences:
        raise ClusterError(
            "the nodes do not run the same software (miniray run --no-env-check runs it "
            "anyway):\n  " + "\n  ".join(differences)
        )


# --8<-- [end:check_same_software]


def _some(nodes: list[str]) -> str:
    """``a, b, c``, or the first `SHOWN_NODES` and how many more."""
    if len(nodes) <= SHOWN_NODES:
        return ", ".join(nodes)
    return ", ".join(nodes[:SHOWN_NODES]) + f" and {len(nodes) - SHOWN_NODES} more"


def script_dir(argv: list[str]) -> str:
    """The directory of the script a command runs (``python train.py``, ``train.py``), as
    the command names it (relative to the node's working directory); else ``"."``."""
    words = argv[1:] if argv and not argv[0].endswith(".py") else argv
    for word in words:
        if word == "-m" or not word.startswith("-"):
            if not word.endswith(".py"):
                return "."  # a module (-m), or a program: its working directory
            return os.path.dirname(word) or "."
    return "."
