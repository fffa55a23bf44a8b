# @3+
"""One node of a Cluster: its server process, its workers, and the thread reading its logs.

`ClusterWorker` is a `RemoteWorker` that knows its place in the cluster (``rank``,
``local_rank``, ``host``); it is what ``Cluster.start`` returns.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Sequence

from .cluster_stacks import STACKS_PREFIX, NodeStacks  # @6+
from .errors import ClusterError, MiniRayError
from .launch import (
    READ_COMMAND,
    NodeProcess,
    remote_command,
)
from .logs import LogLine, LogSink, parse_record
from .node_config import NodeConfig, server_args
from .ranks import RankInfo
from .remote_worker import RemoteWorker
from .wire_options import WireOptions


class ClusterWorker(RemoteWorker):
    """A worker of a Cluster: a `RemoteWorker` with its rank.

    Attributes:
        rank: Its rank in the cluster (``RANK`` in the worker).
        local_rank: Its index on its node (``LOCAL_RANK``).
        host: Its node's name, as given to ``NodeConfig``.
        rendezvous_port: A port its node's server holds for torch.distributed's store.  # @4+
    """

    rendezvous_port: int | None = None  # @4+

    def __init__(
        self,
        info: RankInfo,
        address: str,
        port: int,
        *,
        secret: str,
        connect_timeout: float,
        wire: WireOptions,
    ) -> None:
        super().__init__(
            address,
            port,
            secret=secret,
            connect_timeout=connect_timeout,
            wire=wire,
        )
        self.rank, self.local_rank, self.address = info.rank, info.local_rank, address
        self.host = info.host
        try:
            self.send(info.message())  # the worker sets its environment, then runs work_fn
        except BaseException:
            self.close(timeout=0)
            raise

    def __repr__(self) -> str:
        return f"<ClusterWorker rank={self.rank} pid={self.pid} on {self.host}>"

    def stop_gracefully(self, grace: float) -> bool:
        """End-of-file to the worker; True if it ended within ``grace`` seconds."""
        ended = True
        if self.is_alive():
            with contextlib.suppress(OSError):
                self._channel.shutdown(socket.SHUT_WR)  # its recv() sees the end: a normal return
            try:
                self.wait(grace)
            except TimeoutError:
                ended = False
            except (MiniRayError, OSError):
                pass  # it ended, with an error: the caller had its chance to see it
        self.close(timeout=0)
        return ended


class Node:
    """A started (or starting) node: the server's process, its workers, its log thread."""

    def __init__(self, config: NodeConfig, index: int, sink: LogSink) -> None:
        self.config, self.index, self._sink = config, index, sink
        self._log_sink, self._sink = sink, self._take  # stacks answers stop here  # @6+
        self.workers: list[ClusterWorker] = []
        self.process: NodeProcess | None = None  # set by start()
        self.stacks: NodeStacks | None = None  # @6+
        self._log_thread: threading.Thread | None = None

    def start(
        self,
        work_fn: str,
        secret: str,
        ranks: Sequence[RankInfo],
        start_timeout: float,
        connect_timeout: float,
        wire: WireOptions,
    ) -> None:
        """Launch the server, wait for it, connect every worker. ClusterError on failure.

        The server and every worker use ``wire``'s settings (a server allows its codec only).
        """
        config = self.config
        args = ["-m", "miniray.cluster_server", "--work-fn", work_fn]
        args += ["--workers", str(config.num_workers), "--port", str(config.base_port or 0)]
        launcher = config.get_launcher()  # ssh, local, a template... (see launchers)
        args += ["--host", config.address or launcher.bind, *server_args(wire)]
        command = remote_command(config.python, args, cwd=config.cwd, env=config.env)
        argv = launcher.argv(config, READ_COMMAND, start_timeout)  # the command: on stdin
        self.process = process = NodeProcess(
            argv,
            secret,
            config.host,
            self._server_line,
            via_ssh=launcher.via_ssh,
            popen=launcher.popen,
            command=command,
        )
        ready, rest = process.wait_ready(start_timeout)
        address = ready["host"]  # where the ssh connection arrived, so reachable from here
        own_ranks = [info.rank for info in ranks]  # @6+
        self.stacks = NodeStacks(config.host, own_ranks, process.send_control)  # @6+
        self._log_thread = threading.Thread(
            target=self._read_logs,
            args=(process, rest),
            name=f"miniray-logs-{config.host}",
            daemon=True,
        )
        self._log_thread.start()
        process.forward_stderr()
        for info in ranks:
            try:
                worker = ClusterWorker(
                    info,
                    address,
                    ready["port"],
                    secret=secret,
                    connect_timeout=connect_timeout,
                    wire=wire,
                )
            except (MiniRayError, OSError) as e:
                problem = f"worker {info.local_rank} (rank {info.rank}) could not connect: {e}"
                raise ClusterError(process.describe(problem)) from e
            held = ready.get("rendezvous_port")  # @4+
            worker.rendezvous_port = held if isinstance(held, int) else None  # @4+
            self.workers.append(worker)

    def stop(self, grace: float) -> list[int]:
        """Stop the workers, then the server; return the ranks that had to be killed."""
        stoppers = {w.rank: _Stopper(w, grace) for w in self.workers}
        killed = [rank for rank, stopper in stoppers.items() if not stopper.result()]
        if self.process is not None:
            self.process.stop(timeout=5.0)
        if self._log_thread is not None:
            self._log_thread.join(timeout=2.0)  # the server exited: its stdout has ended
        if self.process is not None:
            self.process.close_pipes()
        return killed

    def _read_logs(self, process: NodeProcess, already: bytes) -> None:
        """Until the server's stdout ends: each line to the sink (which never waits)."""
        pending = already
        while True:
            try:
                chunk = os.read(process.stdout_fd, 1 << 16)
            except OSError:
                chunk = b""
            *records, pending = (pending + chunk).split(b"\n")
            for record in records:
                self._sink(parse_record(self.config.host, record))
            if not chunk:
                break
        if pending:
            self._sink(parse_record(self.config.host, pending))

    # @6+ {
    def _take(self, line: LogLine) -> None:
        """A stacks answer to ``Cluster.dump_stacks``; any other line to the log sink."""
        if line.rank is None and line.text.startswith(STACKS_PREFIX.decode()):
            if self.stacks is not None:
                self.stacks.put(line.text.encode())
        else:
            self._log_sink(line)

    # @}

    def _server_line(self, text: str) -> None:
        self._sink(LogLine(self.config.host, None, text))


class _Stopper:
    """``stop_gracefully`` in a thread of its own: all workers of a node get the same grace."""

    def __init__(self, worker: ClusterWorker, grace: float) -> None:
        self._ended = False
        self._thread = threading.Thread(target=self._run, args=(worker, grace), daemon=True)
        self._thread.start()

    def _run(self, worker: ClusterWorker, grace: float) -> None:
        self._ended = worker.stop_gracefully(grace)

    def result(self) -> bool:
        self._thread.join()
        return self._ended
