# @6+
"""``Cluster.on_ray``: a Cluster whose node servers Ray places and holds.

One placement group with one bundle per node (``STRICT_SPREAD``: every bundle on another
Ray node), and in each bundle an actor, `_ServerHolder`, that starts the node's
``python -m miniray.cluster_server`` and holds its pipes. The coordinator's side of each
node is a `_RayProcess`, a look-alike of `subprocess.Popen` whose stdin, stdout and stderr
are pipes that threads relay to and from the actor: the secret and nonce go down, the
ready line and the log lines come up, through Ray, and everything else of the cluster (the
MAC on the ready line, the lease, the workers' TCP connections) is as over SSH.

Lifetimes are Ray's: the actors belong to this driver, so when it exits or is killed
Ray kills them; the server's stdin was the actor's pipe, so its lease ends and it stops
with its workers. ``stop()`` ends each lease, then kills the actors and removes the group.
Ray is imported only here, only when ``on_ray`` is called (``pip install miniray[ray]``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .errors import ClusterError, ConfigError
from .launchers import LaunchedNode, Launcher
from .node_config import NodeConfig
from .settings import check_count
from .timeouts import check_seconds


class _Releasing(Protocol):
    on_stop: list[Callable[[], None]]  # what Cluster.stop() calls last


C = TypeVar("C", bound=_Releasing)  # the Cluster (its class passed in: no import cycle)

_CHUNK = 1 << 16


class _ServerHolder:
    """The actor (made a Ray actor in ``on_ray``): starts one node server, holds its pipes."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def node_ip(self) -> str:
        import ray

        util: Any = ray.util  # untyped
        return str(util.get_node_ip_address())

    def start(self, argv: list[str]) -> int:
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        return self._proc.pid

    def run(self, argv: list[str], timeout: float, stdin: bytes) -> tuple[bytes, bytes] | None:
        """``Launcher.run`` on this node (a network probe); None if it timed out."""
        try:
            done = subprocess.run(
                argv, input=stdin, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return None
        return done.stdout, done.stderr

    def write(self, data: bytes) -> bool:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
            self._proc.stdin.flush()
            return True
        except OSError:
            return False

    def close_stdin(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        with contextlib.suppress(OSError):
            self._proc.stdin.close()  # the end of the server's lease

    def read(self, stream: str) -> bytes:
        """The next bytes of the server's ``stdout`` or ``stderr``; b"" at its end."""
        assert self._proc is not None
        pipe = self._proc.stdout if stream == "stdout" else self._proc.stderr
        assert pipe is not None
        return os.read(pipe.fileno(), _CHUNK)

    def poll(self) -> int | None:
        assert self._proc is not None
        return self._proc.poll()

    def kill(self) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signal.SIGKILL)


class _RayProcess:
    """What `launch.NodeProcess` needs of a `subprocess.Popen`, for a server held by an actor."""

    def __init__(self, actor: Any, argv: list[str]) -> None:
        import ray

        self._ray, self._actor = ray, actor
        self.args = argv
        self.returncode: int | None = None
        self.pid: int = ray.get(actor.start.remote(argv), timeout=60)
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        self.stdin = os.fdopen(stdin_w, "wb")
        self.stdout = os.fdopen(stdout_r, "rb")
        self.stderr = os.fdopen(stderr_r, "rb")
        pumps: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
            (self._down, (stdin_r,)),
            (self._up, ("stdout", stdout_w)),
            (self._up, ("stderr", stderr_w)),
        ]
        for target, args in pumps:
            threading.Thread(target=target, args=args, daemon=True).start()

    def _down(self, fd: int) -> None:
        """Our stdin pipe -> the server's stdin; its end -> the end of the server's lease."""
        with contextlib.suppress(Exception):  # the actor gone: so is the server's stdin
            while data := os.read(fd, _CHUNK):
                if not self._ray.get(self._actor.write.remote(data)):
                    break
        os.close(fd)
        with contextlib.suppress(Exception):
            self._actor.close_stdin.remote()

    def _up(self, stream: str, fd: int) -> None:
        """The server's stdout or stderr -> our pipe, until it ends (or the actor does)."""
        with contextlib.suppress(Exception):
            while data := self._ray.get(self._actor.read.remote(stream)):
                os.write(fd, data)
        os.close(fd)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = self._ray.get(self._actor.poll.remote(), timeout=10)
            except Exception:  # the actor (and so the server's lease) is gone
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.05)
        return code

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self._actor.kill.remote()


class RayLauncher(Launcher):
    """Starts a node's server through its `_ServerHolder` actor (see the module)."""

    name, bind = "ray", "127.0.0.1"  # on_ray sets each node's address to its Ray node's

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def argv(self, node: LaunchedNode, command: str, timeout: float) -> list[str]:
        return ["/bin/sh", "-c", command]  # run by the actor, on its node

    def popen(self, argv: list[str], **options: Any) -> Any:
        return _RayProcess(self.actor, argv)

    def run(self, argv: list[str], timeout: float, stdin: bytes = b"") -> tuple[bytes, bytes]:
        import ray

        done: tuple[bytes, bytes] | None = ray.get(
            self.actor.run.remote(argv, timeout, stdin), timeout=timeout + 30
        )
        if done is None:
            raise subprocess.TimeoutExpired(argv, timeout)
        return done


# --8<-- [start:on_ray]
def on_ray(
    cluster_class: Callable[..., C],
    num_nodes: int,
    workers_per_node: int,
    *,
    bundle: dict[str, float] | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    python: str | None = None,
    timeout: float = 60.0,
    **cluster_options: Any,
) -> C:
    """A ``cluster_class`` (`Cluster`) of one node server per Ray node (see the module);
    call ``start`` on it.

    Connects to Ray with ``ray.init()`` unless this process already has. ``bundle``: the
    resources each node's bundle reserves (default one CPU). ``env``, ``cwd``, ``python``:
    as in `NodeConfig`. Other options go to `Cluster`.

    Raises:
        ConfigError: Ray is not installed, a count is not an int of 1 or more,
            ``timeout`` is not a finite number of seconds, or ``env``, ``cwd`` or
            ``python`` cannot work (as `NodeConfig` checks them).
        ClusterError: Ray could not place ``num_nodes`` bundles on as many nodes within
            ``timeout`` seconds.
    """
    try:
        check_count("num_nodes", num_nodes)
        check_count("workers_per_node", workers_per_node)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"Cluster.on_ray: {e}") from None
    check_seconds("timeout", timeout, ConfigError)
    options: dict[str, Any] = {"env": {} if env is None else env}
    options.update({k: v for k, v in (("cwd", cwd), ("python", python)) if v is not None})
    NodeConfig("ray-node", workers_per_node, **options)  # its ConfigError before Ray places any
    try:
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    except ImportError:
        raise ConfigError("Cluster.on_ray needs Ray: pip install miniray[ray]") from None

    if not ray.is_initialized():
        ray.init()
    group = placement_group([dict(bundle or {"CPU": 1})] * num_nodes, strategy="STRICT_SPREAD")
    holder: Any = ray.remote(_ServerHolder)
    actors: list[Any] = []
    try:
        ray.get(group.ready(), timeout=timeout)
        for index in range(num_nodes):
            strategy = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)
            # Reads block: a thread for each of stdout, stderr and the writes and polls.
            placed = holder.options(max_concurrency=4, scheduling_strategy=strategy)
            actors.append(placed.remote())
        addresses = ray.get([actor.node_ip.remote() for actor in actors], timeout=timeout)
    except Exception as e:
        for actor in actors:
            ray.kill(actor)
        remove_placement_group(group)
        raise ClusterError(f"Ray could not place {num_nodes} nodes: {e}") from e
    nodes = [
        NodeConfig(
            f"ray-node-{i}", workers_per_node, launcher=RayLauncher(a), address=ip, **options
        )
        for i, (a, ip) in enumerate(zip(actors, addresses, strict=True))
    ]

    def release() -> None:
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        with contextlib.suppress(Exception):
            remove_placement_group(group)

    cluster = cluster_class(nodes, **cluster_options)
    cluster.on_stop.append(release)
    return cluster


# --8<-- [end:on_ray]
