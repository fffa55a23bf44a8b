"""Worker: run a function in a forked child and talk to it over a socketpair.

    worker = Worker(work_fn)          # forks; the child runs work_fn(handle)
    worker.send({"cmd": "square", "x": 3})
    worker.recv(timeout=5)            # -> whatever the child sent back
    worker.close()                    # EOF to the child, then wait (or kill) and reap

The parent watches the child through two descriptors: its end of the socketpair (for
messages) and a pidfd (for death). So ``recv`` ends promptly with `WorkerDied`
however the child ends, even when a grandchild still holds the socket open. Each child
leads a process group of its own, which ends with it (see ``process.ChildProcess``).
"""

from __future__ import annotations

import os
import signal
import socket
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from .calls import Calls  # @5+
from .channel import Channel
from .codec import get_codec  # @5+
from .errors import ChannelClosed, RemoteError, WorkerDied, describe_returncode
from .handle import ChannelHandle, Waitable
from .message_codec import MessageCodec  # @5+
from .process import (
    ChildProcess,
    check_env,
    check_work_fn,
    drop_in_children,
    fork_child,
    run_work_fn,
)
from .region import Region  # @5+
from .settings import check_count
from .timeouts import check_timeout, deadline_after, seconds_left, wait_readable
from .wire import DEFAULT_MAX_FRAME
from .wire_options import (
    DEFAULT_MAX_BUFFER_BYTES,  # @5+
    WireOptions,
)

WorkFn = Callable[[Channel], object]
_EXIT_GRACE = 1.0  # seconds to wait for a child whose channel closed to finish exiting
AnyWorker = TypeVar("AnyWorker", bound=Waitable)


# --8<-- [start:worker_init]
# @1-4: class Worker(ChannelHandle):
class Worker(ChannelHandle, Calls):  # @5+
    """A forked child process running ``work_fn(handle)``, with a message channel to it.

    Args:
        work_fn: Called in the child with its end of the channel, a handle with the
            same ``send``/``recv`` as this object.
        env: Environment variables to set in the child before ``work_fn`` runs
            (e.g. ``{"CUDA_VISIBLE_DEVICES": "1"}``).
        max_frame: Largest message, in encoded bytes, either side may send (default
            4 MiB). Decoding one can take up to ~50 times its size in memory (see
            ``wire.py``).
        # @5+ {
        max_buffer_bytes: Largest total of the buffers (bytes, arrays, tensors) beside
            one message (default 1 GiB; see ``wire_options.py``).
        codec: ``"json"`` (the default) or ``"marshal"`` (keeps tuples, sets, int keys).
        # @}

    Messages are JSON values: dicts, lists, strings, numbers, booleans, None
    (tuples arrive as lists). A child never outlives its parent process, nor the parent
    *thread* that created it (see ``process.die_with_parent``).

    Raises:
        TypeError: ``work_fn`` is not callable, or ``env`` holds what is not a str
            (before anything is forked).
        ValueError: ``env`` holds a name or value the environment cannot take (before
            anything is forked).
    """

    def __init__(
        self,
        work_fn: WorkFn,
        *,
        env: Mapping[str, str] | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        # @5+ {
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        codec: str = "json",
        # @}
    ) -> None:
        check_work_fn(work_fn)
        check_env(env or {})
        # @1-4: options = WireOptions(max_frame)
        options = WireOptions(max_frame, max_buffer_bytes, codec)  # @5+
        # @5+ {
        message_codec = get_codec(codec)
        # Inherited by the fork; each holds one message's buffers, up to max_buffer_bytes
        to_child = Region.create("miniray-to-child", max_buffer_bytes)
        to_parent = Region.create("miniray-to-parent", max_buffer_bytes)
        # @}
        parent_end, child_end = socket.socketpair()
        # @1-4 {
        # handle = Channel(child_end, options=options, peer_pid=os.getpid(), from_worker=False)
        # @}
        # @5+ {
        handle = Channel(
            child_end,
            options=options,
            peer_pid=os.getpid(),
            from_worker=False,
            codec=MessageCodec(
                message_codec, options=options, outgoing=to_parent, incoming=to_child
            ),
        )
        # @}

        def child_body() -> int:
            os.environ.update(env or {})
            return run_work_fn(work_fn, handle)

        drop_in_children(parent_end)  # so closing our end gives the child EOF at once
        try:
            self._process = ChildProcess(fork_child(child_body))
        except BaseException:  # e.g. fork() failed: out of processes or memory
            parent_end.close()
            # @5+ {
            to_child.close()
            to_parent.close()
            # @}
            raise
        finally:
            child_end.close()
        self.pid = self._process.pid
        self.returncode: int | None = None  # also None after the end if it is not known
        self._channel = Channel(
            # @1-4: parent_end, options=options, watch_fd=self._process.pidfd, peer_pid=self.pid
            # @5+ {
            parent_end,
            options=options,
            watch_fd=self._process.pidfd,
            peer_pid=self.pid,
            codec=MessageCodec(
                message_codec, options=options, outgoing=to_child, incoming=to_parent
            ),
            # @}
        )
        # A Worker dropped without close() must not leave its child running, nor leak the
        # descriptors; the finalizer holds the process and channel, never the Worker.
        self._finalizer = weakref.finalize(self, _release, self._process, self._channel)
        drop_in_children(self)  # no later fork (a sibling's, anyone's) keeps our descriptors

    # --8<-- [end:worker_init]

    # --8<-- [start:worker_io]
    def send(self, msg: Any, timeout: float | None = None) -> None:
        """Send a message to the child. Raises `WorkerDied` if it has ended."""
        super().send(msg, timeout)

    # @1-4: def recv(self, timeout: float | None = None) -> Any:
    def recv(self, timeout: float | None = None, *, copy: bool = True) -> Any:  # @5+
        """Return the child's next message, waiting at most ``timeout`` seconds.

        # @5+ {
        With ``copy=False``, buffers arrive as read-only views of the shared region
        (numpy arrays as read-only arrays). MiniRay never writes their bytes while they
        are held, not even after `close`; the child's own code could (it has the memfd),
        so take copies (the default) from a child you do not trust.

        # @}
        Raises:
            TimeoutError: Nothing arrived in time; nothing is lost.
            RemoteError: ``work_fn`` raised (after every message sent before it).
            WorkerDied: The child ended (after every message it sent).
            CallsActive: ``submit`` was used: replies belong to it.  # @5+
        """
        self._refuse_if_calling()  # @5+
        # @1-4: return super().recv(timeout)
        return super().recv(timeout, copy=copy)  # @5+

    def _explain_closed(self, error: ChannelClosed, *, sending: bool) -> Exception:
        if isinstance(error, WorkerDied) and not sending:
            return error  # the channel saw the child's end itself
        return self._closed_error()

    # --8<-- [end:worker_io]

    # --8<-- [start:is_alive]
    def is_alive(self) -> bool:
        """True while the child runs. Does not reap it: ``wait()`` still gets the code."""
        if self._process.reaped:
            return False
        try:  # through the pidfd: this pid number may be reused once the child is reaped
            exited = os.waitid(
                os.P_PIDFD, self._process.pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT
            )
        except ChildProcessError:  # SIGCHLD is ignored: the kernel has reaped it already
            return False
        return exited is None

    # --8<-- [end:is_alive]

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to end and return its exit code (negative: killed by signal).

        If this process set SIGCHLD to SIG_IGN, the kernel discards exit statuses: then
        the code is the one the worker reported in its EXIT frame, if it sent one.

        Raises:
            TimeoutError: Still running after ``timeout`` seconds.
            RemoteError: ``work_fn`` raised; the error is raised on every call.
            WorkerDied: The exit code is unknown (SIGCHLD ignored, and no EXIT frame).
        """
        self._reap(check_timeout(timeout))
        if not self._channel.closed:
            self._channel.drain()
            error = self._channel.final_error()
            if isinstance(error, RemoteError):
                raise error
        if self.returncode is None:
            raise self._died()
        return self.returncode

    def close(self, timeout: float | None = 5.0) -> None:
        """Close the channel, give the child ``timeout`` seconds to exit, then kill it.

        The child sees end-of-file on its ``recv``; one that does not exit in time gets
        SIGTERM, then SIGKILL a second later (with the processes it started: its group).
        Either way it is reaped: no zombie, and nothing it started is left running.
        # @5+ {

        The shared regions are freed too. A view from ``recv(copy=False)`` stays valid and
        unchanged: it keeps only its own message's mapping, which goes with the last view.
        # @}
        """
        timeout = check_timeout(timeout)
        self._stop_calls(timeout)  # @5+
        self._channel.close()
        try:
            self._reap(timeout)
        except TimeoutError:
            self._kill_and_wait(signal.SIGTERM, 1.0)
        if not self._process.reaped:
            self._kill_and_wait(signal.SIGKILL, None)
        self._finalizer()  # closes the pidfd; the child is reaped, so it signals nothing

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = describe_returncode(self.returncode) if self._process.reaped else "running"
        return f"<Worker pid={self.pid} {state}>"

    def _reap(self, timeout: float | None) -> None:
        """Wait for the child to exit (or raise TimeoutError) and collect its status."""
        if self._process.reaped:
            return
        self._process.reap(timeout)
        self.returncode = self._process.returncode
        if self.returncode is None and not self._channel.closed:  # SIGCHLD ignored:
            self._channel.drain()  # the worker's own EXIT frame is all we can go by
            report = self._channel.final_error()
            if isinstance(report, WorkerDied):
                self.returncode = report.returncode

    def _kill_and_wait(self, sig: signal.Signals, timeout: float | None) -> None:
        try:
            self._process.signal_group(sig)
            self._reap(timeout)
        except TimeoutError:
            pass

    def close_in_child(self) -> None:
        """In a forked child: drop these descriptors without touching the worker process."""
        self._finalizer()  # in a forked copy of the owner this only closes descriptors

    def _closed_error(self) -> ChannelClosed:
        """The error for a channel that ended: WorkerDied with the exit code, if it died."""
        if self._channel.closed:
            return ChannelClosed(f"worker pid {self.pid} was closed by this process")
        try:
            self._reap(_EXIT_GRACE)
        except TimeoutError:
            return ChannelClosed(f"worker pid {self.pid} closed its channel but still runs")
        return self._died()

    def _died(self) -> WorkerDied:
        how = describe_returncode(self.returncode)
        if self.returncode is None:
            how += ": it was reaped outside this Worker (is SIGCHLD set to SIG_IGN?)"
        return WorkerDied(f"worker pid {self.pid} {how}", pid=self.pid, returncode=self.returncode)


# --8<-- [start:helpers]
def spawn_workers(
    work_fn: WorkFn,
    count: int,
    *,
    env_for_rank: Callable[[int], Mapping[str, str]] | None = None,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> list[Worker]:
    """Start ``count`` workers; worker ``rank`` gets the environment ``env_for_rank(rank)``.

    If one fails to start, those already started are closed before the error propagates.

    Raises:
        TypeError: ``count`` is not an int.
        ValueError: ``count`` is negative.
    """
    check_count("count", count, least=0)
    workers: list[Worker] = []
    try:
        for rank in range(count):
            env = env_for_rank(rank) if env_for_rank else None
            workers.append(Worker(work_fn, env=env, max_frame=max_frame))
    except BaseException:
        for worker in workers:
            worker.close(timeout=1.0)
        raise
    return workers


def wait_any(workers: Iterable[AnyWorker], timeout: float | None = None) -> list[AnyWorker]:
    """Wait until at least one worker has a message (or has ended); return those that do.

    Any object with the public ``wait_fds()`` and ``poll()`` (``handle.Waitable``) can
    be waited on: local and remote workers alike, mixed in one call.

    A worker whose message is already buffered counts at once. ``recv(timeout=0)`` on a
    returned worker does not wait.

    Raises:
        TimeoutError: None became ready within ``timeout`` seconds.
        ValueError: ``workers`` is empty: none could ever be ready.
    """
    workers = list(workers)
    if not workers:
        raise ValueError("wait_any needs at least one worker: with none, none can be ready")
    deadline = deadline_after(check_timeout(timeout))
    while True:
        ready = [w for w in workers if w.poll()]
        if ready:
            return ready
        fds = [fd for w in workers for fd in w.wait_fds()]
        if not wait_readable(fds, seconds_left(deadline)):
            raise TimeoutError(f"no worker had a message within {timeout} s")


# --8<-- [end:helpers]


def _release(process: ChildProcess, channel: Channel) -> None:
    """Finalizer: close the channel; kill and reap the child unless it was reaped already."""
    channel.close()
    process.release()
