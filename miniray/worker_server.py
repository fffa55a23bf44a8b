# @2+
"""The WorkerServer command line: load the work function, listen, say ready, serve.

The class it starts is `WorkerServer` in ``tcp_server.py``; this module is only the
command (its name is the one ``python -m`` has always taken).

    python -m miniray.worker_server --port 10000 --workers 4 --work-fn my_module.work_fn
    miniray-worker-server --port 0 --work-fn path/to/file.py:work_fn

It checks the work function before it listens (a typo fails now, not at the first
connection), then prints one line a program can wait for:

    MINIRAY_READY {"host": "127.0.0.1", "port": 10000, "pid": 4242}
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from . import __version__
from .codec import CODECS  # @5+
from .errors import MiniRayError, WorkFnNotFound
from .tcp_server import WorkerServer
from .wire import DEFAULT_MAX_FRAME
from .wire_options import DEFAULT_MAX_BUFFER_BYTES  # @5+
from .worker import WorkFn

READY_PREFIX = "MINIRAY_READY "  # then JSON: {"host": ..., "port": ..., "pid": ...}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m miniray.worker_server``, ``miniray-worker-server``)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="worker_server[%(process)d] %(message)s"
    )
    try:
        work_fn = load_work_fn(args.work_fn)
        server = WorkerServer(
            work_fn,
            host=args.host,
            port=args.port,
            max_workers=args.workers,
            handshake_timeout=args.handshake_timeout,
            exit_grace=args.exit_grace,
            max_frame=args.max_frame,
            # @5+ {
            max_buffer_bytes=args.max_buffer_bytes,
            codecs=args.codecs,
            # @}
        )
    except (MiniRayError, OSError, ValueError) as e:  # ValueError: a setting out of range
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    ready = {"host": server.host, "port": server.port, "pid": os.getpid()}
    print(READY_PREFIX + json.dumps(ready), flush=True)
    server.serve_forever()
    return 0


# --8<-- [start:load_work_fn]
def load_work_fn(spec: str) -> WorkFn:
    """Import the function named by ``module.fn``, ``module:fn`` or ``path/to/file.py:fn``.

    Every failure is a :class:`WorkFnNotFound` whose message starts with
    ``--work-fn 'SPEC': `` and says which case it is:

    * no separator: ``expected module.function or file.py:function``;
    * the import failed: ``cannot import 'MODULE': TYPE: MESSAGE``, and when the error
      arose inside the module's own code (a missing file has none), the traceback's
      last frames (where it was raised), so a module that raises at import is
      reported as such, not as a missing one;
    * no such name in the module: ``'MODULE' has no function 'NAME'``;
    * a name that is not a function: ``'MODULE'.NAME is not callable (its type is TYPE)``.

    Raises:
        WorkFnNotFound: The module cannot be imported, or has no such function.
    """
    module_name, sep, fn_name = spec.rpartition(":") if ":" in spec else spec.rpartition(".")
    if not (sep and module_name and fn_name):
        raise WorkFnNotFound(f"--work-fn {spec!r}: expected module.function or file.py:function")
    try:
        if module_name.endswith(".py"):
            module = _import_file(Path(module_name))
        else:
            if os.getcwd() not in sys.path:  # as `python -m` would; console scripts do not
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except Exception as e:  # an import runs arbitrary code: report whatever it raised
        raise WorkFnNotFound(
            f"--work-fn {spec!r}: cannot import {module_name!r}: "
            f"{type(e).__name__}: {e}{_where_raised(e)}"
        ) from e
    if not hasattr(module, fn_name):
        raise WorkFnNotFound(f"--work-fn {spec!r}: {module_name!r} has no function {fn_name!r}")
    work_fn = getattr(module, fn_name)
    if not callable(work_fn):
        raise WorkFnNotFound(
            f"--work-fn {spec!r}: {module_name!r}.{fn_name} is not callable "
            f"(its type is {type(work_fn).__name__})"
        )
    return work_fn  # type: ignore[no-any-return]


# --8<-- [end:load_work_fn]


# @5+ {
def parse_codecs(text: str) -> tuple[str, ...]:
    """The codecs named by ``--codecs``: a comma-separated list such as ``json,marshal``.

    Raises:
        argparse.ArgumentTypeError: A name that is not a codec, or none at all (argparse
            reports it as ``argument --codecs: ...`` and exits with status 2).
    """
    names = [name.strip() for name in text.split(",")]
    known = ", ".join(CODECS)
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected names separated by commas; known: {known}")
    for name in names:
        if name not in CODECS:
            raise argparse.ArgumentTypeError(f"unknown codec {name!r}; known: {known}")
    return tuple(dict.fromkeys(names))  # in the order given, each once


# @}
def _where_raised(error: BaseException, frames: int = 3) -> str:
    """The last ``frames`` frames of ``error``'s traceback that ran the user's code.

    The import machinery's own frames (and this file's) say nothing about the module.
    """
    stack = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith("<frozen ")
        and frame.filename not in (__file__, importlib.__file__)
    ]
    if not stack:
        return ""
    return "\nTraceback (most recent call last):\n" + "".join(
        traceback.format_list(stack[-frames:])
    ).rstrip("\n")


def _import_file(path: Path) -> Any:
    """Import a Python file as a module named after it; its folder joins ``sys.path``."""
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_program_name(),
        description="Fork one worker running WORK_FN for each authenticated TCP client. "
        "Prints one MINIRAY_READY line on stdout once it listens; logs on stderr; "
        "stops its workers and exits 0 on SIGTERM or SIGINT.",
        epilog="The shared secret comes from $MINIRAY_SECRET, the file named by "
        "$MINIRAY_SECRET_FILE, or ~/.config/miniray/secret (created on first use). "
        "Write a strong one with: python -m miniray.secret PATH",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s (MiniRay {__version__})")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind; the default serves this machine only (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=10000,
        help="TCP port; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="workers at once, counting clients still authenticating; one more client "
        "is told the server is full (default: CPU count, here %(default)s)",
    )
    parser.add_argument(
        "--work-fn",
        required=True,
        help="the function each worker runs: module.fn, module:fn or path/to/file.py:fn; "
        "imported once, at start",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a new client has to authenticate (default: %(default)s)",
    )
    parser.add_argument(
        "--exit-grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long a worker may outlive its client before SIGTERM (default: %(default)s)",
    )
    parser.add_argument(
        "--max-frame",
        type=int,
        default=DEFAULT_MAX_FRAME,
        metavar="BYTES",
        help=f"largest message, encoded, either way (default {DEFAULT_MAX_FRAME // 2**20} MiB: "
        "%(default)s bytes); decoding one can take up to ~50 times its size in memory",
    )
    # @5+ {
    parser.add_argument(
        "--max-buffer-bytes",
        type=int,
        default=DEFAULT_MAX_BUFFER_BYTES,
        metavar="BYTES",
        help="largest total of the buffers (bytes, arrays, tensors) beside one message "
        f"(default {DEFAULT_MAX_BUFFER_BYTES >> 30} GiB: %(default)s bytes)",
    )
    parser.add_argument(
        "--codecs",
        type=parse_codecs,
        default=tuple(CODECS),
        metavar="NAMES",
        help=f"the codecs a client may choose, separated by commas (default: {','.join(CODECS)}); "
        "--codecs json makes a JSON-only server, which refuses a client asking for marshal",
    )
    # @}
    return parser


def _program_name() -> str:
    """How the user started us: ``miniray-worker-server``, or ``python -m ...`` for a module."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if name in ("", "-c", "__main__.py") or name.endswith(".py"):
        return f"python -m {__spec__.name if __spec__ else 'miniray.worker_server'}"
    return name


if __name__ == "__main__":
    sys.exit(main())
