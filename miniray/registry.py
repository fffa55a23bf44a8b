# @5+
"""The function registry: functions registered where they run, called by name.

The worker's module keeps a `Registry`; a worker that runs
``serve(handle, registry)`` (or the registry itself, which is a work function) answers
calls from ``worker.call_remote`` and ``worker.submit`` (see ``calls.py``):

    # my_module.py, imported by the worker
    registry = Registry()

    @registry.register
    def train_step(batch):
        return {"loss": 0.1}

    registry.register_path("math:sqrt", name="sqrt")   # or by import path

    # the client
    worker = RemoteWorker(host, port)                     # server: --work-fn my_module:registry
    worker.call_remote("train_step", batch)               # -> {"loss": 0.1}

Nothing is pickled: a call names a function the worker already has. The wire protocol:

* request: ``{"call": id, "fn": name, "args": [...], "kwargs": {...}}``
* reply: ``{"reply": id, "value": v}``, or ``{"reply": id, "error": {"type", "message",
  "traceback"}}`` when the function raised, or its value cannot be sent (too big for
  ``max_frame``, nested too deeply, or not something the codec carries); the worker goes
  on serving.

Calls run one at a time, in the order they arrive; replies carry the call's id.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from typing import Any, overload

from .channel import Channel
from .errors import ProtocolError, Unsendable
from .wire import safe_str

UNKNOWN_FUNCTION = "UnknownFunction"  # the error type of a call to a name not registered


class Registry:
    """The functions one worker offers, by name.

    A registry is also a work function: ``Worker(registry)`` or ``--work-fn
    my_module:registry`` serves its functions.
    """

    def __init__(self) -> None:
        self._functions: dict[str, Callable[..., Any]] = {}

    @overload
    def register(
        self, fn: Callable[..., Any], *, name: str | None = None
    ) -> Callable[..., Any]: ...

    @overload
    def register(
        self, fn: None = None, *, name: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def register(self, fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
        """Register ``fn`` under ``name`` (default: its ``__name__``); usable as a decorator.

        Raises:
            ValueError: The name is empty, or already taken.
            TypeError: ``fn`` is not callable, or the name is not a str (or ``fn`` has no
                ``__name__`` and no ``name`` was given).
        """
        if fn is None:
            return lambda f: self.register(f, name=name)
        if not callable(fn):
            raise TypeError(f"only a callable can be registered, not {fn!r:.100}")
        key = getattr(fn, "__name__", None) if name is None else name
        if key is None:  # a functools.partial, an object with __call__
            raise TypeError(f"{fn!r:.100} has no __name__: register it with name=")
        if not isinstance(key, str):  # a client could never call it: names are str
            raise TypeError(f"a function's name is a str, not {key!r:.100}")
        if not key:
            raise ValueError("a function's name cannot be empty")
        if key in self._functions:
            raise ValueError(f"a function named {key!r} is already registered")
        self._functions[key] = fn
        return fn

    def register_path(self, path: str, *, name: str | None = None) -> Callable[..., Any]:
        """Import ``module:function`` (or ``module.function``) and register it.

        Raises:
            ValueError: The path names nothing callable.
        """
        module_name, sep, attr = path.rpartition(":") if ":" in path else path.rpartition(".")
        if not (sep and module_name and attr):
            raise ValueError(f"{path!r}: expected module:function or module.function")
        fn = getattr(importlib.import_module(module_name), attr, None)
        if not callable(fn):
            raise ValueError(f"{path!r}: {module_name} has no function {attr!r}")
        return self.register(fn, name=attr if name is None else name)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._functions)

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __call__(self, handle: Channel) -> None:
        """Serve this registry's functions on ``handle`` (the registry as a work function)."""
        serve(handle, self)


# --8<-- [start:serve]
def serve(handle: Channel, registry: Registry) -> None:
    """Answer calls until the client closes the channel.

    A function that raises becomes an error reply and the loop goes on, and so does a
    reply that cannot be sent; only a message that is not a call ends the worker (with
    ProtocolError), as it means the client does not speak this protocol.
    """
    while True:
        request = handle.recv()
        if not (isinstance(request, dict) and isinstance(request.get("call"), int)):
            raise ProtocolError(f"expected a call, got {request!r:.100}")
        reply = _answer(request, registry)
        try:
            handle.send(reply)
        except Unsendable as e:  # too big, too deep, or not for this codec: nothing went out
            error = Unsendable(f"the reply to {request.get('fn')!r:.100} cannot be sent: {e}")
            handle.send({"reply": reply["reply"], "error": _describe(error)})


# --8<-- [end:serve]


def _answer(request: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """The reply to one call: its value, or the error it raised."""
    call_id, name = request["call"], request.get("fn")
    args, kwargs = request.get("args", []), request.get("kwargs", {})
    fn = registry._functions.get(name) if isinstance(name, str) else None
    if fn is None:
        message = f"no function {name!r} is registered; registered: {registry.names()}"
        return {"reply": call_id, "error": _error_info(UNKNOWN_FUNCTION, message, "")}
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        error = ProtocolError(f"call {call_id}: args must be a list and kwargs a dict")
        return {"reply": call_id, "error": _describe(error)}
    try:
        return {"reply": call_id, "value": fn(*args, **kwargs)}
    except Exception as e:  # the function's error is the caller's result, not the worker's end
        return {"reply": call_id, "error": _describe(e)}


def _describe(e: BaseException) -> dict[str, str]:
    # safe_str: an exception whose __str__ fails must still become a reply, not the end
    return _error_info(type(e).__qualname__, safe_str(e), "".join(traceback.format_exception(e)))


def _error_info(kind: str, message: str, trace: str) -> dict[str, str]:
    return {"type": kind, "message": message, "traceback": trace}
