# @3+
"""Cluster: start a WorkerServer on every node over SSH, and connect its workers.

    cluster = Cluster(nodes=[NodeConfig("node1", num_workers=4),
                             NodeConfig("node2", num_workers=4)])
    workers = cluster.start(work_fn="my_module.train_fn")   # in rank order
    ...
    cluster.stop()

``start`` runs, for all nodes at once: ssh (or a local shell for ``localhost``) ->
``python -m miniray.cluster_server`` -> the cluster's secret and a nonce on its stdin ->
its ready line, with a MAC over that nonce -> one authenticated connection per worker ->
each worker's rank. Start time is that of the slowest node, not the sum. What the server
does at its end is in ``cluster_server``; how the command line and the ssh process are
made, in ``launch``.

No process outlives the cluster: each server holds a *lease*, its stdin, and ends with
it. ``stop()``, an exception, Ctrl-C, or the coordinator dying in any way closes it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import (
    Callable,  # @6+
    Sequence,
)
from types import FrameType
from typing import Any

from .cluster_node import ClusterWorker, Node
from .cluster_stacks import RankStack, collect_stacks  # @6+
from .codec import get_codec  # @5+
from .distributed import distributed_configs  # @4+
from .errors import ClusterError, ConfigError, MiniRayError
from .launchers import Launcher
from .log_delivery import LogDelivery
from .logs import LogLine, LogSink, log_to_files, log_to_stream
from .node_config import MIN_FRAME, NodeConfig, checked_nodes, work_fn_path
from .ranks import RankInfo, assign_ranks
from .rendezvous import NCCLConfig  # @4+
from .settings import check_size
from .timeouts import check_seconds
from .wire import DEFAULT_MAX_FRAME
from .wire_options import (
    DEFAULT_MAX_BUFFER_BYTES,  # @5+
    WireOptions,
)

log = logging.getLogger("miniray.cluster")


class Cluster:
    """Worker servers on several machines, started over SSH, with workers in rank order.

    Args:
        nodes: The machines, in rank order.
        log: Where workers' output goes: None (this process's stderr, as
            ``[host rN] line``, control characters shown as escapes), a function
            taking a `LogLine` (called from one thread, in order), or a directory path
            (one file per rank).
        start_timeout: Seconds for a node's server to report ready (ssh included).
        stop_grace: Seconds workers get to end after ``stop()`` closes their connections.
        connect_timeout: Seconds for each worker connection (handshake included).
        max_frame: Largest message, in encoded bytes, the coordinator and each worker may
            send each other (default 4 MiB); every node server is started with it.
        # @5+ {
        max_buffer_bytes: Largest total of the buffers (bytes, arrays, tensors) beside
            one message, either way (default 1 GiB; see ``wire_options.py``). A
            `NodeConfig` may set either limit for its own node.
        codec: What every worker's messages are encoded with: ``"json"`` (the default)
            or ``"marshal"`` (keeps tuples, bytes, sets and int keys; every node must run
            the same Python version). The node servers allow this codec only.
        # @}
        launcher: How every node's server is started, for nodes that do not name their
            own (``NodeConfig.launcher``): a name (``"ssh"``, ``"local"``...), a template
            such as ``["kubectl", "exec", "-i", "{host}", "--"]``, or a `Launcher` (see
            ``launchers``). None: SSH, or a local shell for ``localhost``.

    Attributes:
        ctrl_c_window: Seconds after a Ctrl-C during which another one stops the cluster;
            a Ctrl-C later than that interrupts the workers again, like the first.
        log_buffer_bytes: How much log text waits for a slow sink (each line counts 256
            bytes more); lines that find the buffer full are dropped, and counted, so
            that workers never wait for the sink. Set it before ``start``.
        log_drain_timeout: Seconds ``stop()`` gives the sink, once the servers have
            ended, to take the lines still waiting; the rest are dropped.
        on_stop: Functions ``stop()`` calls last, once (an engine's own release: its  # @6+
            actors, its placement group).  # @6+

    Raises:
        ConfigError: No nodes, something else than NodeConfigs, more workers than this
            process may hold sockets for (``ulimit -n``), or a setting that cannot work (a
            negative time, an unknown ``codec``, a ``max_frame`` under 1 KiB, a ``log`` that
            is no function nor folder).
    """

    ctrl_c_window = 10.0
    log_buffer_bytes = 128 << 20
    log_drain_timeout = 5.0

    def __init__(
        self,
        nodes: Sequence[NodeConfig],
        *,
        log: LogSink | str | os.PathLike[str] | None = None,
        start_timeout: float = 30.0,
        stop_grace: float = 2.0,
        connect_timeout: float = 10.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        # @5+ {
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        codec: str = "json",
        # @}
        launcher: str | Sequence[str] | Launcher | None = None,
    ) -> None:
        nodes = checked_nodes(nodes)
        for setting, seconds in [
            ("start_timeout", start_timeout),
            ("stop_grace", stop_grace),
            ("connect_timeout", connect_timeout),
        ]:
            check_seconds(setting, seconds, ConfigError)
        try:
            check_size("max_frame", max_frame, MIN_FRAME)  # a node's error report must fit
            check_size("max_buffer_bytes", max_buffer_bytes, 0)  # @5+
            codec = get_codec(codec).name  # @5+
        except (TypeError, ValueError) as e:
            raise ConfigError(str(e)) from None
        # @3-4: self.wire = WireOptions(max_frame, set_on="Cluster")
        self.wire = WireOptions(max_frame, max_buffer_bytes, codec, set_on="Cluster")  # @5+
        self.nodes = [node.with_launcher(launcher) for node in nodes]
        if not (log is None or callable(log) or (isinstance(log, str | os.PathLike) and log)):
            raise ConfigError(f"log: a function of a LogLine, a folder or None, not {log!r:.60}")
        chosen = log_to_stream() if log is None else log if callable(log) else log_to_files(log)
        self._guarded = _Guarded(chosen)
        self._sink = LogDelivery(self._guarded)  # what the nodes' log threads call
        self._start_timeout = start_timeout
        self._stop_grace = stop_grace
        self._connect_timeout = connect_timeout
        self._running: list[Node] = []
        self._lock = threading.Lock()
        self._stacks_lock = threading.Lock()  # @6+
        self._state = "new"  # -> "starting" -> "started" -> "stopped"
        self._last_ctrl_c: float | None = None  # time.monotonic() of the last Ctrl-C
        self._previous_sigint: Any = None
        self.on_stop: list[Callable[[], None]] = []  # @6+

    @property
    def workers(self) -> list[ClusterWorker]:
        """Every worker, in rank order (empty before ``start`` and after ``stop``)."""
        return [w for node in self._running for w in node.workers]

    @property
    def dropped_log_lines(self) -> int:
        """How many lines of the workers' output the log sink did not get (too slow)."""
        return self._sink.dropped

    # --8<-- [start:start]
    def start(self, work_fn: str) -> list[ClusterWorker]:
        """Start every node's server and connect all workers; return them in rank order.

        Args:
            work_fn: ``module.fn`` or ``path/to/file.py:fn``, importable on every node
                (from its ``cwd``).

        Raises:
            ClusterError: A node failed to start; every node is stopped first.
            TypeError: ``work_fn`` is not a string (a function itself cannot travel).
        """
        work_fn = work_fn_path(work_fn)
        if self._state != "new":
            raise ClusterError(f"this cluster was already started (it is {self._state})")
        self._state = "starting"
        self._sink.start(self.log_buffer_bytes)
        self._catch_ctrl_c()
        secret = secrets.token_hex(32)  # this cluster's only: a leaked one dies with it
        ranks = assign_ranks([(n.host, n.num_workers) for n in self.nodes])
        try:
            with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
                futures = [
                    pool.submit(self._start_node, config, work_fn, secret, node_ranks)
                    for config, node_ranks in zip(self.nodes, ranks, strict=True)
                ]
                errors = [f.exception() for f in futures]
            failed = [str(e) for e in errors if e is not None]
            if failed:
                raise ClusterError("\n".join(failed))
        except BaseException:
            self.stop()
            raise
        self._running.sort(key=lambda node: node.index)
        self._state = "started"
        return self.workers

    # --8<-- [end:start]

    def stop(self) -> None:
        """Stop every worker and server; safe to call more than once.

        Workers get end-of-file and ``stop_grace`` seconds to return; then each server's
        lease ends, and it kills what is left. Workers that had to be killed are logged.
        The workers' output is read to its end; the sink then gets ``log_drain_timeout``
        seconds to take what is left. Lines it did not get are counted in a warning.
        """
        with self._lock:
            if self._state == "stopped":
                return
            self._state = "stopped"
            running, self._running = self._running, []
        try:
            with concurrent.futures.ThreadPoolExecutor(max(1, len(running))) as pool:
                killed = [r for k in pool.map(self._stop_node, running) for r in k]
            if killed:
                log.warning("stop: killed workers that did not end in time: ranks %s", killed)
        finally:
            self._restore_ctrl_c()
            self._close_logs()
            for release in self.on_stop:  # @6+
                release()  # @6+

    # @6+ {
    @classmethod
    def on_ray(cls, num_nodes: int, workers_per_node: int, **options: Any) -> Cluster:
        """A cluster of one node server per Ray node, placed and held by Ray actors.

        See ``ray_cluster.on_ray`` for the options; needs ``pip install miniray[ray]``.
        """
        from .ray_cluster import on_ray  # Ray is imported only if you use it

        return on_ray(cls, num_nodes, workers_per_node, **options)

    # @}
    # @4+ {
    def distributed_configs(
        self, *, master_addr: str | None = None, master_port: int | None = None
    ) -> list[NCCLConfig]:
        """Every rank's `NCCLConfig`, in rank order, from what the nodes report.

        ``master_addr``: node 0's address as the other nodes reach it; ``master_port``: a
        port node 0 found free; each node's interface towards ``master_addr``. Pass
        either to override it. See ``distributed.distributed_configs``.
        """
        return distributed_configs(self, master_addr=master_addr, master_port=master_port)

    # @}
    def interrupt(self) -> None:
        """SIGINT every worker (a KeyboardInterrupt in ``work_fn``; callers get RemoteError)."""
        for node in list(self._running):
            if node.process is not None:
                node.process.send_control("interrupt")

    # @6+ {
    # --8<-- [start:dump_stacks]
    def dump_stacks(self, timeout: float = 5.0) -> list[RankStack]:
        """Every worker's Python stack, all threads, by rank (empty if not started).

        A worker's ``faulthandler`` dumps them on SIGUSR1, even from C code holding the
        GIL; SIGUSR1 does nothing else to a worker, and a ``work_fn`` that sets its own
        SIGUSR1 handler replaces this one. See ``cluster_stacks``.

        Args:
            timeout: Seconds for all nodes together. A rank whose node does not answer in
                time, or whose worker cannot (stopped, ended), has ``stack`` None and ``why``.

        Raises:
            ValueError: ``timeout`` is not a finite number of seconds, 0 or more.
        """
        timeout = check_seconds("timeout", timeout)  # None or inf: a wait without end
        with self._stacks_lock:  # one request at a time: answers share each node's pipe
            nodes = [n.stacks for n in list(self._running) if n.stacks is not None]
            return collect_stacks(nodes, timeout)

    # --8<-- [end:dump_stacks]
    # @}
    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        hosts = ", ".join(f"{n.host}x{n.num_workers}" for n in self.nodes)
        return f"<Cluster {self._state}: {hosts}>"

    def _start_node(
        self, config: NodeConfig, work_fn: str, secret: str, ranks: list[RankInfo]
    ) -> None:
        node = Node(config, ranks[0].group_rank, self._sink)
        with self._lock:
            if self._state != "starting":
                return  # stopped meanwhile (Ctrl-C): start nothing more
            self._running.append(node)
        try:
            node.start(
                work_fn,
                secret,
                ranks,
                self._start_timeout,
                self._connect_timeout,
                config.wire_options(self.wire),
            )
        except ClusterError:
            raise
        except (MiniRayError, OSError) as e:  # e.g. no ssh program, or a bad env name
            raise ClusterError(f"node {config.host}: {type(e).__name__}: {e}") from e

    def _stop_node(self, node: Node) -> list[int]:
        return node.stop(self._stop_grace)

    def _close_logs(self) -> None:
        """Let the sink take the lines left, until the deadline; say what it did not get."""
        dropped = self._sink.close(self.log_drain_timeout)
        if dropped:
            log.warning(
                "stop: %d log lines dropped: the log sink did not keep up "
                "(see Cluster.log_buffer_bytes and log_drain_timeout)",
                dropped,
            )
        self._guarded.close()

    def _catch_ctrl_c(self) -> None:
        """Ctrl-C interrupts the workers; a second one soon after stops the cluster."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous_sigint = signal.signal(signal.SIGINT, self._on_ctrl_c)

    def _restore_ctrl_c(self) -> None:
        if self._previous_sigint is not None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def _on_ctrl_c(self, _signum: int, _frame: FrameType | None) -> None:
        now, last = time.monotonic(), self._last_ctrl_c
        self._last_ctrl_c = now
        # "Again" means soon: one that handled an interrupt long ago should not find that the
        # next Ctrl-C kills the cluster.
        if (last is None or now - last > self.ctrl_c_window) and self._state == "started":
            self._sink(
                LogLine(
                    "coordinator",
                    None,
                    "Ctrl-C: interrupting the workers (press Ctrl-C again within "
                    f"{self.ctrl_c_window:g} s to stop the cluster)",
                )
            )
            self.interrupt()
            return
        for node in list(self._running):
            if node.process is not None:
                node.process.kill()  # at once: each server reads end-of-file and ends
        raise KeyboardInterrupt


class _Guarded:
    """A log sink that cannot break the log threads: if it raises, say so once, and send
    its lines to stderr from then on (a log thread that died would stop draining a node's
    output, and its workers would block on their next print)."""

    def __init__(self, sink: LogSink) -> None:
        self._sink: LogSink = sink
        self._failed = False

    def __call__(self, line: LogLine) -> None:
        if not self._failed:
            try:
                self._sink(line)
                return
            except Exception:
                self._failed = True
                log.exception("the cluster's log sink failed; its lines go to stderr now")
        log_to_stream()(line)

    def close(self) -> None:
        close = getattr(self._sink, "close", None)
        if callable(close):
            close()


__all__ = ["Cluster", "ClusterError", "ClusterWorker", "LogLine", "NodeConfig"]
