# @6+
"""The first Python a rank of ``miniray run`` executes, before the user's script.

    python -u /path/to/miniray/run_boot.py train.py --lr 3e-4
    python -u /path/to/miniray/run_boot.py -m my_package.train --lr 3e-4

The rank supervisor (``run_supervisor``) starts Python ranks this way, by the file's path
(so the rank imports nothing of MiniRay, and ``sys.modules`` holds what it would hold under
torchrun), with two descriptors in the environment:

* ``MINIRAY_STACKS_FD``: ``faulthandler`` dumps every thread's stack there on SIGUSR1.
  faulthandler's handler is C code that runs at once, even while the rank holds the GIL
  in a C call that never returns: the case where a Python-level handler would never run.
* ``MINIRAY_HEARTBEAT_FD``: a daemon thread writes one byte there every ``BEAT`` seconds.
  It stops when the process is stopped (SIGSTOP) or when some thread holds the GIL and
  never lets go: the supervisor reads the silence as "hung". When the script raises, a
  ``RAISED`` byte goes there first, before the traceback is printed: the supervisor tells
  the launcher at once, which then knows which rank failed first, even if another rank
  (whose collective failed because of it) ends sooner.

Then it runs the script as ``python train.py`` would: ``sys.argv`` as torchrun sets it
(the script as given, then its arguments), ``__file__`` absolute, ``sys.path[0]`` the
script's folder (for ``-m``: the working directory, as ``python -m`` has it). A script
that cannot start (no such file, a syntax error, no such module) is reported as Python
reports it, with Python's exit status, and none of this file's frames.
"""

import builtins
import contextlib
import faulthandler
import importlib.util
import io
import os
import runpy
import signal
import sys
import threading
import time
import types
from importlib.machinery import ModuleSpec
from typing import NoReturn

BEAT = 0.5  # seconds between heartbeats
RAISED = b"!"  # written to the heartbeat pipe when the script raises
_heartbeat: int | None = None  # that pipe, if the supervisor gave one


def _descriptor(name: str) -> int | None:
    """Take an inherited descriptor from the environment (the script does not see it)."""
    value = os.environ.pop(name, "")
    if not value.isdigit():
        return None
    fd = int(value)
    os.set_inheritable(fd, False)  # the script's own subprocesses do not get it
    return fd


def _beat(fd: int) -> None:
    while True:
        try:
            os.write(fd, b".")
        except BlockingIOError:
            pass  # the supervisor is behind: it has beats enough to read
        except OSError:
            return  # the supervisor is gone
        time.sleep(BEAT)


def main() -> None:
    """Set up the stack dump and the heartbeat, then run the script or module in argv."""
    stacks = _descriptor("MINIRAY_STACKS_FD")
    if stacks is not None:
        faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
    global _heartbeat
    _heartbeat = _descriptor("MINIRAY_HEARTBEAT_FD")
    if _heartbeat is not None:
        os.set_blocking(_heartbeat, False)
        threading.Thread(
            target=_beat, args=(_heartbeat,), name="miniray-heartbeat", daemon=True
        ).start()
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: run_boot.py SCRIPT [ARGS...] | -m MODULE [ARGS...]")
    if args[0] == "-m" and len(args) > 1:
        sys.argv = [args[1], *args[2:]]  # runpy puts the module's file in argv[0]
        sys.path[0] = os.getcwd()
        try:
            if _find_module(args[1]) is None:
                _cannot_start(f"No module named {args[1]}", status=1)
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        except Exception as e:
            _report(e, frames_to_skip=4)  # ours and runpy's: the module's frames remain
        return
    run_script(args[0], args)


def run_script(path: str, argv: list[str]) -> None:
    """Run the file at ``path`` as Python runs ``python path``: a fresh ``__main__`` module
    that stays in ``sys.modules`` (pickle and multiprocessing look for it there), its
    ``__file__`` absolute, ``sys.argv`` as given. (``runpy.run_path`` would make
    ``argv[0]`` absolute too, unlike torchrun.)"""
    script = os.path.abspath(path)
    sys.argv = argv
    sys.path[0] = os.path.dirname(script)  # not run_boot.py's folder: the script's
    try:
        with io.open_code(script) as f:
            source = f.read()
    except OSError as e:
        _cannot_start(f"can't open file {script!r}: [Errno {e.errno}] {e.strerror}", status=2)
    try:
        code = compile(source, script, "exec")  # bytes: the coding line is honoured
    except SyntaxError as e:  # Python shows where, and the line: no traceback
        _report(e.with_traceback(None), frames_to_skip=0)
    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    except Exception as e:
        _report(e, frames_to_skip=1)


def _find_module(name: str) -> ModuleSpec | None:
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a package it would be in is missing
        return None


def _cannot_start(message: str, status: int) -> NoReturn:
    """Say why the script cannot start as ``python`` says it, and exit as it does."""
    _tell_raised()  # a failure of the script's own, as a raise is
    sys.stderr.write(f"{sys.executable}: {message}\n")
    sys.exit(status)


def _report(error: Exception, frames_to_skip: int) -> NoReturn:
    """Tell the supervisor the script raised, then print the traceback as Python does
    (without our own frames) and exit 1."""
    _tell_raised()
    trace = error.__traceback__
    for _ in range(frames_to_skip):
        if trace is not None and trace.tb_next is not None:
            trace = trace.tb_next
    error = error.with_traceback(trace)  # (the hook reads it from the error)
    sys.excepthook(type(error), error, trace)
    sys.exit(1)


def _tell_raised() -> None:
    """``RAISED`` to the supervisor, before anything is printed (see the docstring)."""
    if _heartbeat is not None:
        with contextlib.suppress(OSError):  # a full pipe, or none: the exit still tells
            os.write(_heartbeat, RAISED)


if __name__ == "__main__":
    main()
