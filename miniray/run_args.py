# @6+
"""The command line of ``miniray run``: its options, each checked as argparse reads it
(a usage error, exit 2), and the run's `RunOptions` built from them (`ConfigError` for
what cannot work together: no command, a host list that names nothing, ``--ranks`` past the
run's ranks...).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import subprocess
from typing import Any

from .errors import ConfigError
from .hosts import hosts_from_option, hosts_from_slurm
from .launch import is_shell_name, remote_command
from .node_config import NodeConfig
from .run_group import RunOptions
from .timeouts import check_seconds


def parser() -> argparse.ArgumentParser:
    """The options of ``miniray run``."""
    p = argparse.ArgumentParser(
        prog="miniray run",
        description="Run a command (a torchrun script) on many hosts: one rank per process.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--hosts", help="a hostfile (host [slots=N] per line) or h1,h2,...")
    where.add_argument("--slurm", action="store_true", help="the hosts of this SLURM job")
    p.add_argument(
        "--nproc-per-node",
        type=parse_nproc,
        metavar="N|gpu",
        help="ranks on each host (default: a hostfile's slots=N, SLURM's task counts, or 1)",
    )
    p.add_argument(
        "--log-dir", type=parse_folder, help="rankN.out, rankN.err and summary.json go there"
    )
    p.add_argument("--ranks", type=parse_ranks, help="only these ranks on the console")
    p.add_argument("--max-restarts", type=parse_count, default=0, metavar="N")
    p.add_argument("--timeout", type=parse_seconds, metavar="SECONDS", help="for the whole run")
    p.add_argument(
        "--hang-after",
        type=parse_seconds,
        default=30.0,
        metavar="SECONDS",
        help="heartbeat silence before a rank is reported hung (%(default)s)",
    )
    p.add_argument(
        "--stop-grace",
        type=parse_seconds,
        default=5.0,
        metavar="SECONDS",
        help="from SIGTERM to SIGKILL when ranks are stopped (%(default)s)",
    )
    p.add_argument(
        "--launcher",
        type=parse_launcher,
        metavar="HOW",
        help="how each host's server starts: ssh (the default; local for localhost), local, "
        "srun (the default with --slurm: no SSH keys), or a command template with {host}, "
        "e.g. 'kubectl exec -i {host} --'",
    )
    p.add_argument("--bind-gpus", action="store_true", help="CUDA_VISIBLE_DEVICES=LOCAL_RANK")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable for the nodes' servers and every rank",
    )
    p.add_argument("--no-env-check", action="store_true", help="skip the software check")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- python train.py ARGS")
    return p


def options_from(args: argparse.Namespace) -> RunOptions:
    """The run's options from the parsed command line; `ConfigError` if they cannot work."""
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ConfigError("no command to run: miniray run [options] -- python train.py ...")
    if not command[0].strip():  # every rank would fail to start it, with status 126
        raise ConfigError("an empty program name: miniray run [options] -- python train.py ...")
    env = {}
    for item in args.env:
        name, equals, value = item.partition("=")
        if not equals:
            raise ConfigError(f"--env {item!r}: NAME=VALUE")
        if not is_shell_name(name):  # else every node's server would refuse it, later
            raise ConfigError(f"--env {item!r}: {name!r} is not a shell name")
        env[name] = value
    given = args.nproc_per_node  # a count, "gpu", or None: not given
    node_options: dict[str, Any] = {"num_workers": given if isinstance(given, int) else 1}
    node_options["env"] = env
    launcher = args.launcher or ("srun" if args.slurm else None)
    if launcher is not None:  # a name, or a template of several words
        words = shlex.split(launcher)
        node_options["launcher"] = words[0] if len(words) == 1 else words
    if args.slurm:
        nodes = hosts_from_slurm(**node_options)
    else:
        nodes = hosts_from_option(args.hosts, **node_options)
    if isinstance(given, int):  # said on the command line: it wins over slots and SLURM's counts
        nodes = [dataclasses.replace(n, num_workers=given) for n in nodes]
    if args.nproc_per_node == "gpu":
        nodes = [dataclasses.replace(n, num_workers=gpus_on(n)) for n in nodes]
    return RunOptions(
        argv=command,
        nodes=nodes,
        max_restarts=args.max_restarts,
        timeout=args.timeout,
        hang_after=args.hang_after,
        stop_grace=args.stop_grace,
        bind_gpus=args.bind_gpus,
        env_check=not args.no_env_check,
        env=env,
    )


def parse_nproc(value: str) -> int | str:
    """``--nproc-per-node``: a count (at least 1), or ``gpu`` (each node's GPU count)."""
    if value == "gpu":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a count (1 or more) nor 'gpu'")
    return int(value)


def parse_seconds(value: str) -> float:
    """``--timeout``, ``--hang-after``, ``--stop-grace``: a finite number of seconds, 0 or
    more (a negative timeout would end the run at once; NaN would never compare)."""
    try:
        return check_seconds("", float(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a number of seconds (0 or more)"
        ) from None


def parse_count(value: str) -> int:
    """``--max-restarts``: a whole number, 0 or more."""
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a count (0 or more)")
    return int(value)


def parse_ranks(value: str) -> list[tuple[int, int]]:
    """``--ranks 0,3`` (or ``0-3,6``): which ranks reach the console, as (first, last) pairs.

    Kept as ranges until the run's size is known (`shown_ranks`): ``0-999999999`` must be
    refused, not made into a set of a billion numbers.
    """
    ranges: list[tuple[int, int]] = []
    for part in value.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise argparse.ArgumentTypeError(f"{value!r}: ranks are N, N-M, separated by ','")
        if int(last or first) < int(first):
            raise argparse.ArgumentTypeError(f"{value!r}: {part.strip()} ends before it begins")
        ranges.append((int(first), int(last or first)))
    return ranges


def shown_ranks(ranges: list[tuple[int, int]] | None, world_size: int) -> set[int] | None:
    """The ranks ``--ranks`` shows on the console (None: every rank).

    Raises:
        ConfigError: It names a rank the run does not have: the console would show nothing.
    """
    if ranges is None:
        return None
    beyond = [(max(first, world_size), last) for first, last in ranges if last >= world_size]
    if beyond:
        named = ",".join(
            str(first) if first == last else f"{first}-{last}" for first, last in beyond
        )
        has = "rank 0 only" if world_size == 1 else f"ranks 0-{world_size - 1}"
        raise ConfigError(f"--ranks {named}: this run has {has}")
    return {rank for first, last in ranges for rank in range(first, last + 1)}


def parse_launcher(value: str) -> str:
    """``--launcher``: a name or a command template; not blank (it read as no option)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty launcher: ssh, local, srun or a template")
    return value


def parse_folder(value: str) -> str:
    """``--log-dir``: not blank (an unset shell variable would read as no option)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty folder name")
    return value


def count_gpus(listing: str) -> int:
    """The number of GPUs in ``nvidia-smi -L``'s output (``GPU 0: NVIDIA H100 ...``)."""
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def gpus_on(node: NodeConfig, timeout: float = 30.0) -> int:
    """How many GPUs ``node`` has, by running ``nvidia-smi -L`` there (through its launcher).

    Raises:
        ConfigError: No GPU there (or no nvidia-smi), naming the host.
    """
    command = remote_command("nvidia-smi", ["-L"], cwd="/", env=node.env)
    launcher = node.get_launcher()  # the way the node's server will start: ssh, srun...
    try:
        out, err = launcher.run_command(node, command, timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"no GPU on host {node.host}: nvidia-smi: {e}") from None
    listing, said = out.decode(errors="replace"), err.decode(errors="replace")
    count = count_gpus(listing)
    if count == 0:
        said = (said.strip() or listing.strip() or "no output").splitlines()[-1]
        raise ConfigError(f"no GPU on host {node.host} (nvidia-smi -L: {said})")
    return count
