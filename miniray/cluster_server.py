# @3+
"""The server a Cluster starts on each node: a WorkerServer on a lease, with ranks and logs.

    python -m miniray.cluster_server --work-fn my_module.train_fn --workers 4 --port 0

It is ``miniray.worker_server`` with these additions, all for a server that a coordinator
started over SSH and that must never outlive it:

* **The lease.** Its stdin is the coordinator's pipe (through ssh). The first line is the
  cluster's secret and a fresh nonce, so the secret never shows on a command line, in an
  environment or in a file. Later lines are commands (``interrupt``: SIGINT every worker).
  End-of-file means the coordinator is gone or done, whatever the reason (``stop()``, a
  crash, ``kill -9``, a lost network): the server stops its workers and exits.
* **The watchdog.** A process of its own that kills the server if it is still there
  ``_HUNG_AFTER`` seconds after the lease ended: a stopped (SIGSTOP) or hung server
  cannot act on the end of its lease, and sshd sends it no signal when ssh goes.
* **A ready line only the coordinator can check.** It carries a MAC, keyed by the secret,
  over the coordinator's nonce and the address and port: a line printed by someone else
  (a login script) cannot send the coordinator to an address of their choosing.
* **Ranks.** A worker's first message is its rank (``ranks.RankInfo``), sent by the
  coordinator right after the handshake; the worker sets ``RANK``, ``LOCAL_RANK``... and
  only then calls ``work_fn``.
* **Logs.** Each worker's stdout and stderr go to the ``logs.LogRelay``, which sends them
  back on this server's stdout, after the ready line.

``--host auto`` binds the address the coordinator's ssh connection arrived at (from
``$SSH_CONNECTION``), so the coordinator can reach it whatever the node's name was in
``~/.ssh/config``; without SSH it binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import atexit  # @6+
import errno
import functools  # @6+
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

from .channel import Channel
from .cluster_stacks import NODE_WAIT, StackFiles  # @6+
from .codec import CODECS  # @5+
from .errors import MiniRayError
from .launch import ready_mac
from .logs import LogRelay
from .netprobe import reserve_port  # @4+
from .orphans import end_orphans
from .process import become_subreaper, fork_child
from .ranks import RankInfo
from .tcp_server import WorkerServer
from .wire import DEFAULT_MAX_FRAME
from .wire_options import (
    DEFAULT_MAX_BUFFER_BYTES,  # @5+
    WireOptions,
)
from .worker import WorkFn
from .worker_server import (
    READY_PREFIX,
    load_work_fn,
    parse_codecs,  # @5+
)

_RANK_TIMEOUT = 30.0  # seconds a new worker waits for its rank
_SECRET_TIMEOUT = 30.0  # seconds the server waits for the secret on stdin
# Seconds a server may take to stop after its lease ended before its watchdog kills it:
# its own stop takes at most about 4 (2 from SIGTERM to SIGKILL for its workers, then up
# to 2 to send their last log lines).
_HUNG_AFTER = 5.0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m miniray.cluster_server``)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="cluster_server[%(process)d] %(message)s"
    )
    first_line = read_first_line(0, _SECRET_TIMEOUT).split()
    if len(first_line) != 2:
        parser.exit(2, f"{parser.prog}: error: no secret and nonce on stdin\n")
    secret, nonce = first_line
    watchdog = start_watchdog(0, _HUNG_AFTER)  # first: a fork, before any thread or socket
    become_subreaper()  # what a worker leaves running comes to us: ended as we stop, below
    host = bind_address(args.host)
    relay = LogRelay(sys.stdout.fileno())
    stacks = StackFiles()  # @6+
    atexit.register(stacks.remove)  # @6+
    # The lease holds from now on: a coordinator gone before we serve ends us too.
    lease = threading.Thread(
        target=follow_lease,
        args=(0, relay.interrupt_workers, _stop_this_server),
        kwargs={"on_command": functools.partial(_command, stacks, relay)},  # @6+
        daemon=True,
    )
    lease.start()
    try:
        work_fn = load_work_fn(args.work_fn)
        work_fn = stacks.registering(work_fn)  # each worker can dump its stacks  # @6+
        server = WorkerServer(
            ranked(work_fn, relay),
            host=host,
            port=args.port,
            max_workers=args.workers,
            secret=secret,
            exit_grace=args.exit_grace,
            codecs=args.codecs,  # @5+
            # @3-4: wire=WireOptions(args.max_frame, set_on="Cluster"),
            wire=WireOptions(args.max_frame, args.max_buffer_bytes, set_on="Cluster"),  # @5+
        )
    except OSError as e:
        problem = str(e)
        if e.errno == errno.EADDRINUSE:
            problem = f"port {args.port} on {socket.gethostname()} ({host}) is already in use"
        parser.exit(2, f"{parser.prog}: error: {problem}\n")
    except MiniRayError as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    ready = {"host": server.host, "port": server.port, "pid": os.getpid()}
    ready["mac"] = ready_mac(secret, nonce, server.host, server.port)
    # A port held for torch.distributed's store while this server runs (see  # @4+
    # Cluster.distributed_configs): rank 0's store listens there, no one else binds it.  # @4+
    rendezvous = reserve_port()  # @4+
    ready["rendezvous_port"] = rendezvous.getsockname()[1]  # @4+
    print(READY_PREFIX + json.dumps(ready), flush=True)
    relay.start()
    try:
        server.serve_forever()
    finally:  # the workers are reaped: what else is our child is theirs, or the watchdog
        end_orphans(keep=frozenset({watchdog}))
    relay.finish(timeout=2.0)
    return 0


# --8<-- [start:follow_lease]
def follow_lease(
    fd: int,
    on_interrupt: Callable[[], None],
    on_end: Callable[[], None],
    on_command: Callable[[str], None] | None = None,  # @6+
) -> None:
    """Read control lines from ``fd`` (the server's stdin) until end-of-file, then ``on_end()``.

    Each ``interrupt`` line calls ``on_interrupt()``; other lines are ignored. End-of-file
    (or a read error) is the end of the lease: the coordinator closed the pipe, exited or
    was killed, or its ssh connection dropped.
    """
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.strip() == b"interrupt":
                on_interrupt()
            elif on_command is not None:  # @6+
                on_command(line.decode(errors="replace").strip())  # @6+
    on_end()


# --8<-- [end:follow_lease]


# --8<-- [start:watchdog]
def start_watchdog(fd: int, after: float) -> int:
    """Fork a process that SIGKILLs this server ``after`` s past the end of the lease ``fd``.

    The lease thread cannot end a server that does not run (stopped by SIGSTOP, or hung),
    and nothing else would: sshd sends no signal when the coordinator's ssh goes. The
    watchdog is another process, in a process group of its own, so a SIGSTOP of the server
    or of its group leaves it running. It waits for ``fd`` (stdin, read by the server) to
    hang up, without reading from it, then gives the server ``after`` seconds. Killing the
    server is enough: its workers die with it, and so does the watchdog (PDEATHSIG both), so
    a server that ends in time takes its watchdog along. Returns the watchdog's pid.
    """
    server = os.getpid()

    def watch() -> int:
        poller = select.poll()
        poller.register(fd, select.POLLRDHUP)  # a pipe reports POLLHUP, a socket POLLRDHUP
        poller.poll()  # no timeout: if the server ends first, this process ends with it
        time.sleep(after)  # a deadline, not a wait for anything: PDEATHSIG ends us sooner
        if os.getppid() == server:
            os.kill(server, signal.SIGKILL)
        return 0

    return fork_child(watch)


# --8<-- [end:watchdog]


def ranked(work_fn: WorkFn, relay: LogRelay) -> WorkFn:
    """Wrap ``work_fn``: first take the rank message, set the environment, capture output."""

    def run_ranked(handle: Channel) -> object:
        info = RankInfo.from_message(handle.recv(timeout=_RANK_TIMEOUT))
        os.environ.update(info.environment())
        relay.capture(info.rank)
        return work_fn(handle)

    return run_ranked


# @6+ {
def _command(stacks: StackFiles, relay: LogRelay, line: str) -> None:
    """A control line other than ``interrupt``: ``stacks ID SECONDS`` (Cluster.dump_stacks)."""
    words = line.split()
    if len(words) == 3 and words[0] == "stacks" and words[1].isdigit():
        try:
            wait = min(NODE_WAIT, max(0.0, float(words[2])))
        except ValueError:
            return
        answer = threading.Thread(  # not in the lease thread: it must keep reading
            target=stacks.answer, args=(int(words[1]), wait, relay.send_record), daemon=True
        )
        answer.start()


# @}


def read_first_line(fd: int, timeout: float) -> str:
    """The first line of ``fd``, read byte by byte (nothing after it is consumed)."""
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n") and len(line) < 4096:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return ""
        byte = os.read(fd, 1)
        if not byte:
            return ""
        line += byte
    return line.decode(errors="replace").strip()


def bind_address(host: str) -> str:
    """``auto``: the local address of the ssh connection we were started by, or 127.0.0.1."""
    # "hostname" (launchers without ssh: srun, kubectl exec...): what the host's name is
    if host == "hostname":
        return socket.gethostbyname(socket.gethostname())
    if host != "auto":
        return host
    connection = os.environ.get("SSH_CONNECTION", "").split()  # client port server port
    return connection[2] if len(connection) == 4 else "127.0.0.1"


def _stop_this_server() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # serve_forever's handler: stop workers, return


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m miniray.cluster_server",
        description="A WorkerServer for a Cluster: secret and nonce on stdin, exits at its end.",
    )
    parser.add_argument("--work-fn", required=True, help="module.fn or path/to/file.py:fn")
    parser.add_argument("--workers", type=int, required=True, help="workers on this node")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="auto", help="address to bind (default: %(default)s)")
    parser.add_argument("--exit-grace", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("--log-level", default="WARNING", help="server log level on stderr")
    parser.add_argument(
        "--max-frame",
        type=int,
        default=DEFAULT_MAX_FRAME,
        metavar="BYTES",
        help="largest message, in encoded bytes (default: %(default)s): the Cluster's max_frame",
    )
    # @5+ {
    parser.add_argument(
        "--max-buffer-bytes",
        type=int,
        default=DEFAULT_MAX_BUFFER_BYTES,
        metavar="BYTES",
        help="largest total of buffers beside one message (default: %(default)s): the "
        "Cluster's max_buffer_bytes",
    )
    parser.add_argument(
        "--codecs",
        type=parse_codecs,
        default=tuple(CODECS),
        metavar="NAMES",
        help=f"codecs the workers' clients may choose (default: {','.join(CODECS)})",
    )
    # @}
    return parser


if __name__ == "__main__":
    sys.exit(main())
