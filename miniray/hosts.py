# @6+
"""Where a run's hosts come from: ``--hosts h1,h2``, a hostfile, or a SLURM allocation.

Every source ends as a list of `NodeConfig`s, one per host, with the number of
workers (ranks) each host runs.

Inside a SLURM allocation (``salloc``, ``sbatch``), ``SLURM_JOB_NODELIST`` names the
hosts in SLURM's compressed *hostlist* form, ``gpu[01-03,07],login1``, and
``SLURM_TASKS_PER_NODE`` says how many tasks each runs, ``2(x3),1``. ``scontrol show
hostnames`` expands a hostlist where SLURM is installed; `expand_hostlist` reads the
same syntax (and names with a suffix after a bracket, ``cn[1-2]-ib``) where it is not.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .node_config import NodeConfig

log = logging.getLogger("miniray.hosts")

MAX_HOSTS = 65536  # a hostlist that names more hosts is refused before it is expanded
SCONTROL_TIMEOUT = 10.0  # seconds for `scontrol show hostnames`
_NUMBER = re.compile(r"[0-9]{1,18}")  # a node number: ASCII digits, small enough for int()
_TASKS = re.compile(r"([0-9]{1,9})(?:\(x([0-9]{1,9})\))?")  # "2" or "2(x3)"


def hosts_from_option(value: str, **node_options: Any) -> list[NodeConfig]:
    """The hosts named by ``--hosts``: a file's path if one exists there, else ``h1,h2``.

    Args:
        value: A hostfile's path, or host names separated by commas.
        **node_options: More `NodeConfig` fields for every host (``num_workers`` is the
            default slot count of a host that names none).

    Raises:
        ConfigError: No host, or a malformed entry.
    """
    if Path(value).is_file():
        return hosts_from_file(value, **node_options)
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise ConfigError(f"--hosts {value!r}: an empty host name")
    return [NodeConfig(name, **node_options) for name in names]


# --8<-- [start:hosts_from_file]
def hosts_from_file(path: str | Path, **node_options: Any) -> list[NodeConfig]:
    """The hosts of a hostfile: one host per line, ``slots=N`` optional, ``#`` comments.

    Raises:
        ConfigError: No host in the file, a malformed line (named with its number), or a
            file that cannot be read.
    """
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"hostfile {path}: cannot be read: {error}") from None
    nodes = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        options = dict(node_options)
        for word in words[1:]:
            key, _, count = word.partition("=")
            if key != "slots" or not _NUMBER.fullmatch(count) or int(count) < 1:
                raise ConfigError(f"{path}:{number}: {word!r} is not slots=N (N >= 1)")
            options["num_workers"] = int(count)
        nodes.append(NodeConfig(words[0], **options))
    if not nodes:
        raise ConfigError(f"{path}: no host in the file")
    return nodes


# --8<-- [end:hosts_from_file]


# --8<-- [start:hosts_from_slurm]
def hosts_from_slurm(
    environ: Mapping[str, str] | None = None, **node_options: Any
) -> list[NodeConfig]:
    """The hosts of the SLURM allocation this process runs in (``SLURM_JOB_NODELIST``).

    The list is expanded by ``scontrol show hostnames`` when ``scontrol`` is on
    ``environ``'s PATH (SLURM's own reading of its own syntax), by `expand_hostlist`
    otherwise. Each host runs as many workers as ``SLURM_TASKS_PER_NODE`` says, or else
    ``SLURM_JOB_CPUS_PER_NODE``; with neither, ``num_workers`` of ``node_options`` (1).

    Args:
        environ: The environment to read (its PATH and SLURM_CONF are scontrol's too);
            by default this process's, ``os.environ``.
        **node_options: More `NodeConfig` fields for every host.

    Raises:
        ConfigError: Not inside an allocation, a node list or count that cannot be read,
            counts for a different number of hosts, or an ``scontrol`` that fails.
    """
    environ = os.environ if environ is None else environ
    nodelist = environ.get("SLURM_JOB_NODELIST", "").strip()
    if not nodelist:
        raise ConfigError(
            "--slurm: not inside a SLURM allocation (SLURM_JOB_NODELIST is not set): "
            "run it in salloc or an sbatch script"
        )
    scontrol = shutil.which("scontrol", path=environ.get("PATH", ""))
    if scontrol:
        names = _scontrol_hostnames(scontrol, nodelist, environ)
    else:
        names = expand_hostlist(nodelist)
    for variable in ("SLURM_TASKS_PER_NODE", "SLURM_JOB_CPUS_PER_NODE"):  # the first set
        if environ.get(variable, "").strip():
            counts = parse_tasks_per_node(environ[variable].strip())
            if len(counts) != len(names):
                raise ConfigError(
                    f"{variable}={environ[variable]!r} counts {len(counts)} hosts, but "
                    f"SLURM_JOB_NODELIST={nodelist!r} names {len(names)}"
                )
            break
    else:  # neither is set
        counts = [node_options.get("num_workers", 1)] * len(names)
    log.debug("SLURM allocation %s: %d hosts (%s)", nodelist, len(names), scontrol or "parsed")
    options = {key: value for key, value in node_options.items() if key != "num_workers"}
    return [
        NodeConfig(name, num_workers=n, **options) for name, n in zip(names, counts, strict=True)
    ]


# --8<-- [end:hosts_from_slurm]


def _scontrol_hostnames(scontrol: str, nodelist: str, environ: Mapping[str, str]) -> list[str]:
    """``scontrol show hostnames NODELIST``, checked: it may print nothing or a broken
    name and still exit 0 (``Invalid hostlist`` on stderr), so those are errors too."""
    command = f"{scontrol} show hostnames {nodelist!r}"
    try:
        done = subprocess.run(
            [scontrol, "show", "hostnames", nodelist],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=dict(environ),
            timeout=SCONTROL_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{command}: no answer in {SCONTROL_TIMEOUT:g} s") from None
    except OSError as error:
        raise ConfigError(f"{command}: cannot run: {error}") from None
    names = done.stdout.split()
    if done.returncode != 0 or not names or any(set(name) & set("[],") for name in names):
        said = done.stderr.strip() or done.stdout.strip() or "nothing"
        raise ConfigError(f"{command} failed (exit status {done.returncode}): {said}")
    return names


# --8<-- [start:expand_hostlist]
def expand_hostlist(text: str) -> list[str]:
    """The host names of a SLURM hostlist: ``gpu[01-02],login1`` -> gpu01, gpu02, login1.

    Names are separated by commas outside brackets. A bracket holds numbers and ranges,
    ``[1-3,5]``; a range keeps its first number's zero padding, ``[006-011]``. Brackets
    may be anywhere in a name, and several make every combination, the first bracket
    varying slowest (as SLURM orders them): ``r[1-2]n[1-2]`` -> r1n1, r1n2, r2n1, r2n2.

    Raises:
        ConfigError: Unbalanced or nested brackets, an empty name or range, a range that
            is not numbers or runs backwards, or more than `MAX_HOSTS` names.
    """
    _check_syntax(text)
    groups, depth, start = [], 0, 0
    for i, char in enumerate(text + ","):  # the "," ends the last group
        if char in "[]":
            depth += 1 if char == "[" else -1
        elif char == "," and depth == 0:  # a comma inside brackets belongs to the ranges
            groups.append(text[start:i])
            start = i + 1
    names: list[str] = []
    for group in groups:
        parts = re.split(r"\[([^\]]*)\]", group)  # "r[1-2]n[01-02]" -> r, 1-2, n, 01-02, ""
        expanded = [parts[0]]
        for ranges, after in zip(parts[1::2], parts[2::2], strict=True):
            numbers = [
                str(n).zfill(len(first))  # "006" -> "007": the same width
                for first, last in _ranges(ranges, group)
                for n in range(int(first), int(last) + 1)
            ]
            if len(names) + len(expanded) * len(numbers) > MAX_HOSTS:
                raise ConfigError(f"hostlist {text!r}: more than {MAX_HOSTS} hosts")
            expanded = [name + number + after for name in expanded for number in numbers]
        if len(names) + len(expanded) > MAX_HOSTS:  # a name without brackets counts too
            raise ConfigError(f"hostlist {text!r}: more than {MAX_HOSTS} hosts")
        names += expanded
    return names


# --8<-- [end:expand_hostlist]


def _check_syntax(text: str) -> None:
    """Refuse a hostlist whose brackets and commas `expand_hostlist` cannot read,
    saying where: brackets must pair up without nesting, and no name may be empty."""
    if not text:
        raise ConfigError("an empty hostlist")
    if text.count(",") >= MAX_HOSTS:
        raise ConfigError(f"a hostlist of more than {MAX_HOSTS} hosts")
    depth = 0
    for i, char in enumerate(text):
        where = f"hostlist {text!r}, character {i + 1}"
        if char.isspace():
            raise ConfigError(f"{where}: a space in a host name")
        if char == "[":
            if depth:
                raise ConfigError(f"{where}: a '[' inside brackets")
            depth = 1
        elif char == "]":
            if not depth:
                raise ConfigError(f"{where}: a ']' without its '['")
            depth = 0
        elif char == "," and not depth and (i in (0, len(text) - 1) or text[i - 1] == ","):
            raise ConfigError(f"{where}: an empty host name (two commas, or one at an end)")
    if depth:
        raise ConfigError(f"hostlist {text!r}: a '[' without its ']'")


def _ranges(ranges: str, group: str) -> list[tuple[str, str]]:
    """The ranges of one bracket, as written: ``"1-3,05"`` -> [("1", "3"), ("05", "05")].

    Raises:
        ConfigError: A range that is empty, not numbers, or backwards, or more than
            `MAX_HOSTS` numbers in the bracket.
    """
    found = []
    for item in ranges.split(","):
        first, dash, last = item.partition("-")
        last = last if dash else first
        if not (_NUMBER.fullmatch(first) and _NUMBER.fullmatch(last)):
            what = repr(item) if item else "an empty range"
            raise ConfigError(f"host {group!r}: [{ranges}] holds {what}, not N or N-M")
        if int(first) > int(last):
            raise ConfigError(f"host {group!r}: the range {item} runs backwards")
        found.append((first, last))
    if sum(int(last) - int(first) + 1 for first, last in found) > MAX_HOSTS:
        raise ConfigError(f"host {group!r}: more than {MAX_HOSTS} hosts in [{ranges}]")
    return found


def parse_tasks_per_node(text: str) -> list[int]:
    """SLURM's per-node counts, one per host: ``"2(x3),1"`` -> [2, 2, 2, 1].

    The form of ``SLURM_TASKS_PER_NODE`` and ``SLURM_JOB_CPUS_PER_NODE``: counts separated
    by commas, ``N(xM)`` for M hosts in a row with N each.

    Raises:
        ConfigError: An item that is not ``N`` or ``N(xM)`` with N, M >= 1, or more than
            `MAX_HOSTS` counts.
    """
    counts: list[int] = []
    for item in text.split(","):
        match = _TASKS.fullmatch(item)
        if not match or int(match[1]) < 1 or int(match[2] or 1) < 1:
            raise ConfigError(f"tasks per node {text!r}: {item!r} is not N or N(xM), N, M >= 1")
        repeat = int(match[2] or 1)
        if len(counts) + repeat > MAX_HOSTS:
            raise ConfigError(f"tasks per node {text!r}: more than {MAX_HOSTS} hosts")
        counts += [int(match[1])] * repeat
    return counts
