"""Work functions the tests run in workers.

They live in their own importable file because a TCP WorkerServer (stage 2 on) must
find them by name (``tests/workfns.py:echo``); a local Worker just takes the function.
Each takes the worker's handle, as every work function does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any


def echo(handle: Any) -> None:
    """Send every message straight back."""
    while True:
        handle.send(handle.recv())


def echo_n(handle: Any) -> None:
    """Echo ``n`` messages (the first message is ``n``), then return."""
    for _ in range(handle.recv()):
        handle.send(handle.recv())


def fail(handle: Any) -> None:
    """Send one message, then raise ValueError with the message we were sent."""
    handle.send("about to fail")
    raise ValueError(handle.recv())


def exit_with(handle: Any) -> None:
    """Receive ``{"code": n, "hard": bool}``; exit with n (``os._exit`` if hard)."""
    msg = handle.recv()
    handle.send("bye")
    if msg["hard"]:
        os._exit(msg["code"])
    sys.exit(msg["code"])


def sleep_forever(handle: Any) -> None:
    """Say who we are, then sleep (until killed)."""
    handle.send({"pid": os.getpid()})
    while True:
        time.sleep(60)


def report_env(handle: Any) -> None:
    """Send back the environment variables asked for."""
    names = handle.recv()
    handle.send({name: os.environ.get(name) for name in names})


def report_open_fds(handle: Any) -> None:
    """Send how many file descriptors this process holds, then wait for the end."""
    handle.send(len(os.listdir("/proc/self/fd")))
    handle.recv()


def report_memory_a_collection_copies(handle: Any) -> None:
    """Run a full garbage collection; send how much memory became this process's own
    (private, no longer shared with the parent it was forked from), in bytes."""
    import gc

    before = _private_bytes()
    gc.collect()
    handle.send(_private_bytes() - before)


def _private_bytes() -> int:
    with open("/proc/self/smaps_rollup") as rollup:  # Linux: this process's mappings, summed
        fields = (line.split() for line in rollup)
        return sum(int(f[1]) * 1024 for f in fields if f[0] in ("Private_Dirty:", "Private_Clean:"))


def report_signals(handle: Any) -> None:
    """Describe the signal dispositions this worker started with."""
    handle.send(
        {
            "SIGTERM_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
            "SIGUSR1_default": signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL,
            "SIGINT_python": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
        }
    )


def print_unflushed(handle: Any) -> None:
    """Print without a newline or flush, then return at once."""
    print("printed-but-never-flushed", end="")


def print_flush_reported(handle: Any) -> None:
    """Print without a newline or flush to a stdout whose flush sends what it holds to the
    parent as a message, then return: that message must come before the exit report."""
    import io

    class Reporting(io.StringIO):
        def flush(self) -> None:
            if self.getvalue():
                handle.send({"flushed": self.getvalue()})
                self.seek(0)
                self.truncate()

    sys.stdout = Reporting()
    print("held back", end="")


def send_pair_then_wait(handle: Any) -> None:
    """Send ``{"i": 0}`` and ``{"i": 1}`` in one write, so that they arrive together (the
    second lands in the reader's buffer with the first), then wait for the end."""
    import adapters  # tests/ is on the worker's path; it builds frames by hand

    adapters.raw_socket(handle).sendall(adapters.frames_from(handle, [b'{"i":0}', b'{"i":1}']))
    handle.recv()


def send_burst(handle: Any) -> None:
    """Send ``n`` numbered messages (the first message is ``n``), then return."""
    for i in range(handle.recv()):
        handle.send({"i": i})


def send_long_text(handle: Any) -> None:
    """Send one message of the text of as many characters as asked; then wait."""
    handle.send("x" * handle.recv())
    handle.recv()


def half_a_small_frame(handle: Any) -> None:
    """Say "started", write the first half of the next (small, sealed) frame by hand, and
    wait: the test kills it there, in the middle of a frame."""
    import adapters  # tests/ is on the worker's path; it builds frames by hand

    handle.send("started")
    frame = adapters.frames_from(handle, [b'"a small message, never finished"'])
    adapters.raw_socket(handle).sendall(frame[: len(frame) // 2])
    handle.recv()


def flood(handle: Any) -> None:
    """Send messages of ``size`` bytes, as fast as the socket takes them, for ``seconds``.

    The first message is ``{"size": n, "seconds": t}``. The messages are
    ``{"i": i, "pad": "xx..."}`` with ``i`` counting 0 to 999, over and over. To outpace
    any reader, those 1,000 frames are built by hand (and sealed, over TCP) and written
    straight to the socket, again and again. Afterwards the worker waits for its client
    to hang up; it stops early if the client goes away.
    """
    import adapters  # tests/ is on the worker's path; it builds frames by hand

    request = handle.recv()
    pad = b"x" * request["size"]
    payloads = [b'{"i":%d,"pad":"%s"}' % (i, pad) for i in range(1000)]
    sock = adapters.raw_socket(handle)
    deadline = time.monotonic() + request["seconds"]
    while time.monotonic() < deadline:  # sealed anew each time, where frames carry a MAC
        sock.sendall(adapters.frames_from(handle, payloads))
    handle.recv()


def print_a_lot(handle: Any) -> None:
    """Print ``n`` bytes to stdout (the first message is ``n``), then echo messages."""
    line = "y" * 1023
    for _ in range(handle.recv() // 1024):
        print(line)
    sys.stdout.flush()
    while True:
        handle.send(handle.recv())


def fork_grandchild(handle: Any) -> None:
    """Fork a process that sleeps holding the connection; send both pids; return when told."""
    grandchild = os.fork()
    if grandchild == 0:
        time.sleep(30)
        os._exit(0)
    handle.send({"pid": os.getpid(), "grandchild": grandchild})
    handle.recv()


def start_daemons(handle: Any) -> None:
    """Start two processes outside the worker's process group, as daemons detach: one in a
    session of its own, one double-forked (its parent exits at once); send their pids; then
    return when the channel closes."""
    in_session = subprocess.Popen(["sleep", "60"], start_new_session=True)
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # the classic daemon: fork, setsid, fork again, the middle one exits
        os.setsid()
        if (daemon := os.fork()) == 0:
            time.sleep(60)
            os._exit(0)
        os.write(write_end, str(daemon).encode())
        os._exit(0)
    os.close(write_end)
    double_forked = int(os.read(read_end, 32))
    handle.send([in_session.pid, double_forked])
    handle.recv()  # returns (ChannelClosed) when the parent closes: a normal end
