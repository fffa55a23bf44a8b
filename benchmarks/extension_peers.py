"""The measurements behind ``extensions.py``: each makes its peers once, then times one run.

A factory returns a `Measure`: calling it times one run and returns a rate (calls, round
trips or operations per second, or MB/s); ``close`` stops whatever it started.
"""

from __future__ import annotations

import base64
import hmac
import json
import marshal
import multiprocessing
import os
import pickle
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import miniray

SECRET = "benchmark-secret-0123456789"
SMALL = {"cmd": "step", "i": 12345}
FLOATS = [float(i) for i in range(131072)]  # 1 MiB of float64 values
RUN_SECONDS = [0.3]  # seconds per timed run of a rate row (a list: extensions.py sets it)
CHUNK = 256 << 10  # bytes an authenticated stream hashes and sends at a time (as MiniRay does)


class Measure:
    """One timed run per call; ``close`` stops the peers."""

    def __init__(self, run: Callable[[], float], close: Callable[[], None] = lambda: None) -> None:
        self.run, self.close = run, close

    def __call__(self) -> float:
        return self.run()


@dataclass
class Row:
    """A table row: its name, its measurement, and the rows it is compared with."""

    name: str
    measure: Callable[[], float]
    baselines: list[str] = field(default_factory=list)

    def close(self) -> None:
        getattr(self.measure, "close", lambda: None)()


# --- work functions (they run in forked workers) ---------------------------------------------

registry = None  # made lazily: older packages (--package) have no Registry


def _registry() -> Any:
    global registry
    if registry is None:
        registry = miniray.Registry()
        registry.register(lambda a, b: a + b, name="add")
    return registry


def _echo(handle: Any) -> None:
    while True:
        handle.send(handle.recv())


def _echo_views(handle: Any) -> None:
    while True:
        handle.send(handle.recv(copy=False))


def _sink(handle: Any) -> None:
    while True:
        handle.recv()
        handle.send("ok")


def _sink_views(handle: Any) -> None:
    while True:
        handle.recv(copy=False)
        handle.send("ok")


def _sink_base64(handle: Any) -> None:
    while True:
        base64.b64decode(handle.recv()["data"])
        handle.send("ok")


# --- MiniRay ---------------------------------------------------------------------------------


def connect(work_fn: Any, transport: str, **options: Any) -> Any:
    """A local Worker, or a RemoteWorker to a WorkerServer forked from this process."""
    if transport == "local":
        return miniray.Worker(work_fn, **options)
    max_frame = options.pop("max_frame", miniray.wire.DEFAULT_MAX_FRAME)

    def run_server(handle: Any) -> None:
        server = miniray.WorkerServer(work_fn, secret=SECRET, max_frame=max_frame)
        handle.send(server.port)
        server.serve_forever()

    holder = miniray.Worker(run_server)
    port = holder.recv(timeout=30)
    worker = miniray.RemoteWorker("127.0.0.1", port, secret=SECRET, max_frame=max_frame, **options)
    worker._server_holder = holder  # closed after the worker
    return worker


def close(worker: Any) -> None:
    worker.close()
    holder = getattr(worker, "_server_holder", None)
    if holder is not None:
        holder.close(timeout=0)


def worker_calls(transport: str, count: int, pipelined: bool) -> Measure:
    worker = connect(_registry(), transport)

    def run() -> float:
        started = time.perf_counter()
        if pipelined:
            futures = [worker.submit("add", i, 1) for i in range(count)]
            for future in futures:
                future.result()
        else:
            for i in range(count):
                worker.call_remote("add", i, 1)
        return count / (time.perf_counter() - started)

    return Measure(run, lambda: close(worker))


def worker_call_messages(transport: str, count: int) -> Measure:
    """``call_remote``'s own messages, sent and received by hand: its floor."""
    worker = connect(_registry(), transport)

    def run() -> float:
        started = time.perf_counter()
        for i in range(count):
            worker.send({"call": i, "fn": "add", "args": (i, 1), "kwargs": {}})
            worker.recv()
        return count / (time.perf_counter() - started)

    return Measure(run, lambda: close(worker))


def worker_roundtrip(codec: str, transport: str = "local") -> Measure:
    options = {"codec": codec} if codec != "json" else {}  # an older package has no codec=
    worker = connect(_echo, transport, **options)

    def ping() -> None:
        worker.send(SMALL)
        worker.recv()

    return Measure(lambda: _rate(ping, RUN_SECONDS[0]), lambda: close(worker))


def codec_timers(codec: str, what: str) -> Measure:
    from miniray.codec import get_codec
    from miniray.message_codec import MessageCodec

    message_codec = MessageCodec(get_codec(codec))
    msg = SMALL if what == "small dict" else FLOATS

    def once() -> None:
        payload = message_codec.encode(msg)
        message_codec.decode(payload if isinstance(payload, bytes) else b"".join(payload))

    return Measure(lambda: _rate(once, RUN_SECONDS[0]))


def miniray_handoff(size: int, *, copy: bool) -> Measure:
    worker = miniray.Worker(_sink if copy else _sink_views, max_frame=size + (1 << 20))
    data = os.urandom(size)

    def run() -> float:
        started = time.perf_counter()
        worker.send({"data": data})
        worker.recv()
        return size / (time.perf_counter() - started) / 1e6

    return Measure(run, worker.close)


def base64_handoff(size: int) -> Measure:
    worker = miniray.Worker(_sink_base64, max_frame=2 * size + (1 << 20))
    data = os.urandom(size)

    def run() -> float:
        started = time.perf_counter()
        worker.send({"data": base64.b64encode(data).decode()})
        worker.recv()
        return size / (time.perf_counter() - started) / 1e6

    return Measure(run, worker.close)


def miniray_echo(size: int, *, copy: bool) -> Measure:
    import numpy

    worker = miniray.Worker(_echo_views, max_frame=size + (1 << 20))
    array = numpy.frombuffer(os.urandom(size), dtype=numpy.float64)

    def run() -> float:
        started = time.perf_counter()
        worker.send(array)
        back = worker.recv(copy=copy)
        elapsed = time.perf_counter() - started
        assert back.shape == array.shape
        return size / elapsed / 1e6

    return Measure(run, worker.close)


def remote_handoff(size: int, *, copy: bool) -> Measure:
    worker = connect(_sink if copy else _sink_views, "tcp", max_frame=size + (1 << 20))
    data = os.urandom(size)

    def run() -> float:
        started = time.perf_counter()
        worker.send({"data": data})
        worker.recv()
        return size / (time.perf_counter() - started) / 1e6

    return Measure(run, lambda: close(worker))


# --- baselines -------------------------------------------------------------------------------


def memcpy_rate(size: int) -> Measure:
    source, target = bytearray(os.urandom(size)), bytearray(size)

    def run() -> float:
        started = time.perf_counter()
        target[:] = source
        return size / (time.perf_counter() - started) / 1e6

    return Measure(run)


def numpy_copyto_rate(size: int) -> Measure:
    """``numpy.copyto`` of a float64 array into a preallocated one: memcpy into warm memory."""
    import numpy

    source = numpy.frombuffer(os.urandom(size), dtype=numpy.float64)
    target = numpy.empty_like(source)

    def run() -> float:
        started = time.perf_counter()
        numpy.copyto(target, source)
        return size / (time.perf_counter() - started) / 1e6

    return Measure(run)


def fresh_copy_rate(size: int) -> Measure:
    """What any receiver that returns a new object pays: allocate, then copy."""
    source = os.urandom(size)

    def run() -> float:
        started = time.perf_counter()
        copy = bytes(memoryview(source))
        elapsed = time.perf_counter() - started
        del copy
        return size / elapsed / 1e6

    return Measure(run)


def pipe_roundtrip(codec: str | None = None) -> Measure:
    """``multiprocessing.Pipe`` ping-pong. With no ``codec``, as its users use it: the
    message itself through ``send``/``recv`` (pickled by multiprocessing's ForkingPickler);
    with one, the message made into bytes by ``codec`` on both sides, through
    ``send_bytes``/``recv_bytes``."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_pipe_echo, args=(theirs, codec))
    process.start()

    if codec is None:

        def ping() -> None:
            ours.send(SMALL)
            ours.recv()

    else:
        dumps, loads = _PIPE_CODECS[codec]

        def ping() -> None:
            ours.send_bytes(dumps(SMALL))
            loads(ours.recv_bytes())

    def stop() -> None:
        if codec is None:
            ours.send(None)
        else:
            ours.send_bytes(b"")
        process.join()

    return Measure(lambda: _rate(ping, RUN_SECONDS[0]), stop)


def _json_dumps(msg: Any) -> bytes:
    return json.dumps(msg).encode()  # default options: json's cached encoder, its fastest


_PIPE_CODECS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "pickle": (pickle.dumps, pickle.loads),
    "marshal": (marshal.dumps, marshal.loads),
    "json": (_json_dumps, json.loads),
}


def _pipe_echo(conn: Any, codec: str | None) -> None:
    if codec is None:  # objects, through Connection's own pickling; None ends it
        while (msg := conn.recv()) is not None:
            conn.send(msg)
        return
    dumps, loads = _PIPE_CODECS[codec]
    while payload := conn.recv_bytes():
        conn.send_bytes(dumps(loads(payload)))


def raw_tcp_handoff(size: int, *, mac: bool = False) -> Measure:
    """``size`` bytes over loopback TCP and a one-byte answer. With ``mac``, both ends also
    hash every byte as an authenticated stream must (HMAC-SHA256, the sender's tag after
    the data, checked by the receiver), each a chunk at a time as the bytes go and come,
    so that the two ends hash at once: the ceiling for the RemoteWorker, whose frames carry
    such a tag (stage 2's per-frame MAC), hashed the same way."""
    key = os.urandom(32)
    listener = socket.create_server(("127.0.0.1", 0))
    pid = os.fork()
    if pid == 0:
        conn, _ = listener.accept()
        buffer = memoryview(bytearray(size + (32 if mac else 0)))
        while True:
            got, running = 0, hmac.new(key, digestmod="sha256")
            while got < len(buffer):
                n = conn.recv_into(buffer[got:])
                if n == 0:
                    os._exit(0)
                if mac and got < size:
                    running.update(buffer[got : min(got + n, size)])
                got += n
            if mac and not hmac.compare_digest(buffer[size:], running.digest()):
                os._exit(1)
            conn.sendall(b"k")
    sock = socket.create_connection(listener.getsockname())
    listener.close()
    data = memoryview(os.urandom(size))

    def run() -> float:
        started = time.perf_counter()
        if mac:
            running = hmac.new(key, digestmod="sha256")
            for start in range(0, size, CHUNK):
                running.update(data[start : start + CHUNK])
                sock.sendall(data[start : start + CHUNK])
            sock.sendall(running.digest())
        else:
            sock.sendall(data)
        if sock.recv(1) != b"k":
            raise RuntimeError("the receiver found the data altered")
        return size / (time.perf_counter() - started) / 1e6

    def stop() -> None:
        sock.close()
        os.waitpid(pid, 0)

    return Measure(run, stop)


# --- Ray -------------------------------------------------------------------------------------


class RayPeers:
    """Ray actor rows: started once, shut down at the end."""

    def __init__(self, ray: Any) -> None:
        self.ray = ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

        @ray.remote
        class Actor:
            def add(self, a: int, b: int) -> int:
                return a + b

            def echo(self, value: Any) -> Any:
                return value

        self.actor = Actor.remote()
        ray.get(self.actor.add.remote(1, 1))

    def calls(self, count: int, pipelined: bool) -> Measure:
        ray, actor = self.ray, self.actor

        def run() -> float:
            started = time.perf_counter()
            if pipelined:
                ray.get([actor.add.remote(i, 1) for i in range(count)])
            else:
                for i in range(count):
                    ray.get(actor.add.remote(i, 1))
            return count / (time.perf_counter() - started)

        return Measure(run)

    def echo(self, size: int) -> Measure:
        import numpy

        array = numpy.frombuffer(os.urandom(size), dtype=numpy.float64)

        def run() -> float:
            started = time.perf_counter()
            back = self.ray.get(self.actor.echo.remote(array))
            elapsed = time.perf_counter() - started
            assert back.shape == array.shape
            return size / elapsed / 1e6

        return Measure(run)

    def shutdown(self) -> None:
        self.ray.shutdown()


def ray_peers() -> RayPeers | None:
    """Ray rows if ray and numpy import; None (and a note) if not."""
    try:
        import numpy  # noqa: F401
        import ray
    except ImportError:
        print("# ray or numpy not importable: no Ray rows (pip install ray==2.60.0 numpy)")
        return None
    return RayPeers(ray)


def _rate(once: Callable[[], None], seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(50):
            once()
        count += 50
    return count / elapsed
