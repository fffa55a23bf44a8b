"""The WorkerServer command line: load the work function, listen, say ready, serve.

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
from pathlib import Path
from typing import Any

from .errors import MiniRayError, WorkFnNotFound
from .server import WorkerServer
from .wire import DEFAULT_MAX_FRAME
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
        )
    except (MiniRayError, OSError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    ready = {"host": server.host, "port": server.port, "pid": os.getpid()}
    print(READY_PREFIX + json.dumps(ready), flush=True)
    server.serve_forever()
    return 0


# --8<-- [start:load_work_fn]
def load_work_fn(spec: str) -> WorkFn:
    """Import the function named by ``module.fn``, ``module:fn`` or ``path/to/file.py:fn``.

    Raises:
        WorkFnNotFound: The module cannot be imported or has no such function.
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
        raise WorkFnNotFound(f"--work-fn {spec!r}: cannot import {module_name!r}: {e}") from e
    work_fn = getattr(module, fn_name, None)
    if not callable(work_fn):
        raise WorkFnNotFound(f"--work-fn {spec!r}: {module_name!r} has no function {fn_name!r}")
    return work_fn  # type: ignore[no-any-return]


# --8<-- [end:load_work_fn]


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
        prog="python -m miniray.worker_server",
        description="Fork one worker running WORK_FN for each authenticated TCP client.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=10000, help="0 picks a free port (default: %(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="workers at once (default: CPU count)",
    )
    parser.add_argument(
        "--work-fn", required=True, help="module.fn, module:fn or path/to/file.py:fn"
    )
    parser.add_argument("--handshake-timeout", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument(
        "--exit-grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long a worker may outlive its client before SIGTERM",
    )
    parser.add_argument("--max-frame", type=int, default=DEFAULT_MAX_FRAME, metavar="BYTES")
    return parser


if __name__ == "__main__":
    sys.exit(main())
