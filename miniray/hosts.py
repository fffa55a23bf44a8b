# @6+
"""Where a run's hosts come from: ``--hosts h1,h2``, a hostfile, or a SLURM allocation.

Every source ends as a list of `NodeConfig`s, one per host, with the number of
workers (ranks) each host runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .node_config import NodeConfig


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
        ConfigError: No host in the file, or a malformed line (named with its number).
    """
    nodes = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        options = dict(node_options)
        for word in words[1:]:
            key, _, count = word.partition("=")
            if key != "slots" or not count.isdigit() or int(count) < 1:
                raise ConfigError(f"{path}:{number}: {word!r} is not slots=N (N >= 1)")
            options["num_workers"] = int(count)
        nodes.append(NodeConfig(words[0], **options))
    if not nodes:
        raise ConfigError(f"{path}: no host in the file")
    return nodes


# --8<-- [end:hosts_from_file]


def hosts_from_slurm(environ: Mapping[str, str], **node_options: Any) -> list[NodeConfig]:
    """The hosts of the SLURM allocation this process runs in (``SLURM_JOB_NODELIST``).

    Raises:
        ConfigError: Not inside an allocation, or a node list that cannot be read.
    """
    raise ConfigError("hosts_from_slurm: not written yet")  # the full hostlist syntax: TODO
