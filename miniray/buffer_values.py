# @5+
"""Buffer values: how each kind becomes a placeholder and bytes, and comes back.

See ``message_codec.py`` for the message around them. Kinds: ``bytes``,
``bytearray``, ``memoryview`` (also anything else with the buffer protocol), numpy
``ndarray`` and CPU torch ``Tensor``. numpy and torch are never imported, to send or to
receive: a value can only be an array if its module is already loaded, and a peer's array
is refused (`ProtocolError`) where the receiving program has not imported that module
itself, so a few bytes cannot make us load hundreds of MiB. A peer's placeholder is checked
before anything is built from it: a known kind, a buffer that exists, a dtype from a fixed
list (torch) or of a fixed form holding no Python objects (numpy), a shape of non-negative
ints. And the quick checks of whether a message holds any buffer at all (`holds_buffer`,
`json_probe`), which send a message without one exactly as before.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from .errors import ProtocolError, Unsendable
from .wire import compact_json_encoder

PLACEHOLDER = "__buffer__"


def describe(value: Any) -> tuple[dict[str, Any], memoryview]:
    """The placeholder (without its index) and the bytes of one buffer-like value.

    Raises:
        Unsendable: A value that cannot travel as raw bytes (an object array, a GPU tensor).
    """
    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    if numpy is not None and isinstance(value, numpy.ndarray):
        if value.dtype.hasobject:
            raise Unsendable("numpy arrays of Python objects cannot be sent (dtype=object)")
        array = numpy.ascontiguousarray(value)
        return {"type": "ndarray", "dtype": array.dtype.str, "shape": list(array.shape)}, (
            memoryview(array.reshape(-1).view(numpy.uint8))
        )
    if torch is not None and isinstance(value, torch.Tensor):
        if value.device.type != "cpu":
            raise Unsendable(f"only CPU tensors can be sent, not {value.device} (call .cpu())")
        dtype = str(value.dtype).removeprefix("torch.")
        if dtype not in TORCH_DTYPES:
            raise Unsendable(f"tensors of dtype {dtype} cannot be sent")
        flat = value.detach().contiguous().reshape(-1).view(torch.uint8)
        return {"type": "tensor", "dtype": dtype, "shape": list(value.shape)}, memoryview(
            flat.numpy()
        )
    kinds: dict[type, str] = {bytes: "bytes", bytearray: "bytearray"}
    kind = kinds.get(type(value), "memoryview")
    try:
        view = memoryview(value)
    except TypeError:
        raise Unsendable(f"cannot send a {type(value).__qualname__}: not plain data") from None
    if not view.c_contiguous:
        raise Unsendable("cannot send a non-contiguous buffer; copy it first")
    return {"type": kind}, view.cast("B") if view.ndim != 1 or view.format != "B" else view


def rebuild(placeholder: dict[str, Any], views: list[memoryview], mode: str) -> Any:
    """One value from its placeholder and its bytes.

    ``mode``: "copy" (the value gets bytes of its own), "view" (read-only, zero-copy), or
    "owned" (the bytes are a private buffer already: arrays keep them, bytes still copy).
    """
    index, kind = placeholder.get(PLACEHOLDER), placeholder.get("type")
    if not isinstance(index, int) or not 0 <= index < len(views) or kind not in _REBUILDERS:
        raise ProtocolError(f"malformed buffer placeholder {placeholder!r:.100}")
    try:
        return _REBUILDERS[kind](views[index], placeholder, mode)
    except (ValueError, TypeError, RuntimeError, KeyError) as e:  # bad dtype, shape mismatch
        raise ProtocolError(f"cannot rebuild a {kind} from the buffer: {e}") from None


def _as_bytes(view: memoryview, _info: dict[str, Any], mode: str) -> Any:
    return view if mode == "view" else bytes(view)


def _as_bytearray(view: memoryview, _info: dict[str, Any], mode: str) -> Any:
    return view if mode == "view" else bytearray(view)


def _as_memoryview(view: memoryview, _info: dict[str, Any], mode: str) -> Any:
    return memoryview(bytearray(view)) if mode == "copy" else view


def _as_ndarray(view: memoryview, info: dict[str, Any], mode: str) -> Any:
    numpy = _loaded("numpy")
    if not (isinstance(info["dtype"], str) and _NUMPY_DTYPE.fullmatch(info["dtype"])):
        raise TypeError(f"{info['dtype']!r:.40} is not the dtype of an array of numbers")
    dtype = numpy.dtype(info["dtype"])
    if dtype.hasobject:
        raise TypeError("a peer may not send arrays of Python objects")
    array = numpy.frombuffer(view, dtype=dtype).reshape(_shape(info["shape"]))
    # numpy's copy, not bytearray's: numpy asks the kernel for huge pages for a big array
    # (madvise), so touching the fresh memory for the first time costs a third as much.
    return array.copy() if mode == "copy" else array


def _as_tensor(view: memoryview, info: dict[str, Any], mode: str) -> Any:
    torch = _loaded("torch")
    name = info["dtype"]
    if not (isinstance(name, str) and name in TORCH_DTYPES):  # before getattr, which imports
        raise TypeError(f"{name!r:.40} is not a tensor dtype MiniRay carries")
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):  # an older torch
        raise TypeError(f"this torch has no dtype {name}")
    source = view if mode == "owned" else _writable_copy(view)  # torch has no read-only tensors
    return torch.frombuffer(source, dtype=torch.uint8).view(dtype).reshape(_shape(info["shape"]))


def _writable_copy(view: memoryview) -> Any:
    """A writable copy of ``view``'s bytes: numpy's if it is loaded (see `_as_ndarray`)."""
    numpy = sys.modules.get("numpy")
    if numpy is None:  # torch runs without numpy
        return bytearray(view)
    return numpy.frombuffer(view, dtype=numpy.uint8).copy()


def _shape(shape: Any) -> list[int]:
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise TypeError(f"bad shape {shape!r:.100}")
    return shape


_REBUILDERS: dict[str, Callable[[memoryview, dict[str, Any], str], Any]] = {
    "bytes": _as_bytes,
    "bytearray": _as_bytearray,
    "memoryview": _as_memoryview,
    "ndarray": _as_ndarray,
    "tensor": _as_tensor,
}


def _loaded(name: str) -> Any:
    """The module ``name`` if this program has imported it; never imported here, for a peer."""
    module = sys.modules.get(name)
    if module is None:
        raise ProtocolError(
            f"the peer sent a {name} value, but this process has not imported {name}: "
            f"import {name} before receiving its arrays"
        )
    return module


# What a placeholder's dtype may be. torch: the names of its dtypes of plain numbers,
# checked before getattr (a name such as "_dynamo" would import a submodule). numpy: a
# dtype's .str (byte order, kind, size, a datetime unit), no structured or object types.
TORCH_DTYPES = frozenset(
    {"bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"}
    | {"float16", "bfloat16", "float32", "float64", "complex32", "complex64", "complex128"}
    | {"float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"}
)
_NUMPY_DTYPE = re.compile(r"[<>|=][biufcmMSUV][0-9]{1,9}(\[[0-9]*[a-zA-Z]+\])?")


def is_buffer_like(value: Any) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    module = type(value).__module__.partition(".")[0]
    if module in ("numpy", "torch"):
        return True
    try:
        memoryview(value).release()
    except TypeError:
        return False
    return True


class HasBuffer(Exception):
    """Raised by the JSON encoder's hook: this message needs the buffer path."""


def holds_buffer(value: Any) -> bool:
    """Whether a message holds anything that must travel out of band (marshal's check).

    Exact types, as marshal sees them; a container's item types are collected in C
    (``set(map(type, ...))``), so a list of a million floats costs one pass, not a loop.
    """
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return kind not in _PLAIN
    if set(map(type, items)) <= _PLAIN:
        return False
    return any(holds_buffer(item) for item in items if type(item) not in _PLAIN)


_PLAIN = frozenset({str, int, float, bool, type(None), set, frozenset})  # sets keep their bytes


def _no_buffer_here(value: Any) -> Any:
    """The JSON encoder's hook for a value it cannot encode: a buffer, or a TypeError."""
    if is_buffer_like(value):
        raise HasBuffer
    raise TypeError(f"Object of type {type(value).__qualname__} is not JSON serializable")


# JSON's encoder, whose hook says "this message holds a buffer" instead of failing.
json_probe = compact_json_encoder(_no_buffer_here)
