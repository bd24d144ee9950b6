"""Plain data on a pipe: the only language between the sandboxed kernel and the grader.

A message is one frame: an 8-byte big-endian length, then that many bytes of UTF-8 JSON. When
the length's top bit (:data:`RAW`) is set, the rest of it is the JSON's length, and a second
8-byte length follows it, of raw array data that comes after the JSON. Values are JSON numbers,
strings, booleans, null and lists, plus four tagged objects:

* ``{"__array__": [dtype, shape, data, scalar]}`` a NumPy array of a plain numeric dtype, its
  ``data`` either base64 text or, in a frame, ``[offset, nbytes]`` of the frame's raw data (what
  :func:`encode` makes with ``raw=True``: a large array crosses the pipe as its bytes, with no
  base64 and no JSON text to scan on either side);
* ``{"__tuple__": [...]}`` a tuple; ``{"__dict__": [[key, value], ...]}`` a dict whose keys are
  ints or strings;
* ``{"__callable__": "module:qualname"}`` a function the other side imports by name.

Both sides use this module, but only the grader's copy is trusted. :func:`decode` accepts
nothing else (no pickle, no object hooks that run code), bounds nesting and sizes, and raises
:class:`WireError` on anything malformed.
"""

from __future__ import annotations

import base64
import json
import math
import os
import select
import struct
import time
from typing import Any

import numpy as np

HEADER = struct.Struct(">Q")
RAW = 1 << 63
"""The bit of a frame's first length that says a length of raw array data follows it."""
DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                    "uint64", "float32", "float64"})
MAX_DEPTH = 32
MAX_ITEMS = 100_000


class WireError(ValueError):
    """A frame or a value that is not what the protocol allows."""


class RawArray:
    """An array that :func:`send` writes as raw bytes after the frame's JSON (from
    :func:`encode` with ``raw=True``; not JSON itself: only :func:`send` can write it)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def encode(value: Any, depth: int = 0, raw: bool = False) -> Any:
    """``value`` as JSON-ready plain data; raises :class:`WireError` for anything else.

    With ``raw``, an array's data is a :class:`RawArray` that :func:`send` writes as raw bytes
    (the result is then for :func:`send` only); without, it is base64 text.
    """
    if depth > MAX_DEPTH:
        raise WireError("the value is nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int) or math.isfinite(value):
            return value
        value = np.float64(value)  # JSON has no NaN or infinity: an array of one (a float64
        # is a float too: it must not come back here)
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.ascontiguousarray(value)
        if array.dtype.name not in DTYPES:
            raise WireError(f"an array of dtype {array.dtype} (expected numbers)")
        data = (RawArray(array) if raw and array.size
                else base64.b64encode(array.tobytes()).decode("ascii"))
        return {"__array__": [array.dtype.name, list(array.shape), data,
                              isinstance(value, np.generic)]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, depth + 1, raw) for v in value]}
    if isinstance(value, list):
        return [encode(v, depth + 1, raw) for v in value]
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if isinstance(key, np.integer):
                key = int(key)
            elif isinstance(key, np.str_):
                key = str(key)
            if not isinstance(key, (int, str)) or isinstance(key, bool):
                raise WireError(f"a dict key of type {type(key).__name__} (expected int or str)")
            items.append([key, encode(item, depth + 1, raw)])
        return {"__dict__": items}
    if callable(value):
        return {"__callable__": callable_name(value)}
    raise WireError(f"a value of type {type(value).__name__} (expected numbers, arrays, "
                    "tuples, lists, dicts or strings)")


def callable_name(function: Any) -> str:
    """``module:qualname`` of a function importable by name; raises :class:`WireError`."""
    if isinstance(function, np.ufunc):
        return f"numpy:{function.__name__}"
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", "")
    if not module or not qualname or "<" in qualname:
        raise WireError(f"the function {qualname or function!r} cannot be named across the "
                        "sandbox (expected a module-level function)")
    return f"{module}:{qualname}"


def decode(data: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """The value that :func:`encode` made, from parsed JSON; raises :class:`WireError`."""
    budget = [MAX_ITEMS] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise WireError("the value has too many items")
    if depth > MAX_DEPTH:
        raise WireError("the value is nested too deeply")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v, depth + 1, budget) for v in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise WireError("an object that is not a tagged value")
    (tag, body), = data.items()
    if tag == "__array__":
        return body.array() if isinstance(body, _FrameArray) else _decode_array(body)
    if tag == "__tuple__" and isinstance(body, list):
        return tuple(decode(v, depth + 1, budget) for v in body)
    if tag == "__dict__" and isinstance(body, list):
        out = {}
        for pair in body:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (int, str))
                    and not isinstance(pair[0], bool)):
                raise WireError("a malformed dict item")
            out[pair[0]] = decode(pair[1], depth + 1, budget)
        return out
    if tag == "__callable__" and isinstance(body, str):
        return CallableName(body)
    raise WireError(f"an unknown tag {str(tag)[:40]!r}")


def _decode_array(body: Any) -> Any:
    if not (isinstance(body, list) and len(body) == 4 and body[0] in DTYPES
            and isinstance(body[1], list) and isinstance(body[2], str)):
        raise WireError("a malformed array")
    dtype, shape, data, scalar = body
    if len(shape) > MAX_DEPTH or not all(isinstance(s, int) and 0 <= s for s in shape):
        raise WireError("a malformed array shape")
    size = math.prod(shape)
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise WireError("an array whose data is not base64") from None
    if len(raw) != size * np.dtype(dtype).itemsize:
        raise WireError("an array whose data does not match its shape")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return array[()] if scalar is True and array.ndim == 0 else array


class _FrameArray(list):
    """The body of an ``__array__`` whose data is ``[offset, nbytes]`` of a received frame's raw
    data; :meth:`array` checks it as :func:`_decode_array` checks base64 data.

    It is the body's own list, so that a reply that is never decoded (a forged array in a
    cell's outputs) stays plain data: JSON, copies and pickles see the list alone."""

    __slots__ = ("raw",)

    def __init__(self, body: list[Any], raw: bytearray) -> None:
        super().__init__(body)
        self.raw = raw

    def __reduce__(self) -> tuple:
        return list, (list(self),)

    def array(self) -> Any:
        dtype, shape, (offset, nbytes), scalar = self
        if len(shape) > MAX_DEPTH or not all(isinstance(s, int) and 0 <= s for s in shape):
            raise WireError("a malformed array shape")
        if not (isinstance(offset, int) and isinstance(nbytes, int) and 0 <= offset
                and 0 <= nbytes <= len(self.raw) - offset):
            raise WireError("an array whose data lies outside its frame")
        if nbytes != math.prod(shape) * np.dtype(dtype).itemsize:
            raise WireError("an array whose data does not match its shape")
        array = np.frombuffer(memoryview(self.raw)[offset:offset + nbytes],
                              dtype=dtype).reshape(shape)
        array = array.copy()  # its own memory, writable, not the frame's
        return array[()] if scalar is True and array.ndim == 0 else array


def _frame_arrays(raw: bytearray) -> Any:
    """A ``json.loads`` hook: an ``__array__`` object whose data is ``[offset, nbytes]`` becomes
    a :class:`_FrameArray` of ``raw`` (for :func:`decode`); every other object is a dict, as
    ``json.loads`` makes it."""

    def hook(pairs: list[tuple[str, Any]]) -> Any:
        if len(pairs) == 1 and pairs[0][0] == "__array__":
            body = pairs[0][1]
            if (isinstance(body, list) and len(body) == 4 and body[0] in DTYPES
                    and isinstance(body[1], list) and isinstance(body[2], list)
                    and len(body[2]) == 2):
                return {"__array__": _FrameArray(body, raw)}
        return dict(pairs)

    return hook


class CallableName(str):
    """A decoded ``__callable__``: the name of a function for the receiving side to import."""


# -- frames --------------------------------------------------------------------------------------
def send(fd: int, message: dict[str, Any]) -> None:
    """Write one frame holding ``message`` (plain data, with the :class:`RawArray` of
    ``encode(..., raw=True)``) to ``fd``."""
    arrays: list[memoryview] = []
    offset = 0

    def place(value: Any) -> Any:
        nonlocal offset
        if not isinstance(value, RawArray):
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
        data = memoryview(value.array.reshape(-1)).cast("B")
        arrays.append(data)
        offset += data.nbytes
        return [offset - data.nbytes, data.nbytes]

    body = json.dumps(message, allow_nan=True, default=place).encode()
    header = HEADER.pack(len(body) | RAW) + HEADER.pack(offset) if arrays else HEADER.pack(
        len(body))
    _write_all(fd, memoryview(header + body))
    for data in arrays:
        _write_all(fd, data)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]


def receive(fd: int, max_bytes: int, deadline: float | None = None) -> dict[str, Any]:
    """Read one frame from ``fd``: at most ``max_bytes``, before ``deadline`` (monotonic).

    Raises :class:`WireError` for a frame that is too large or not a JSON object,
    :class:`TimeoutError` past the deadline and :class:`EOFError` when the pipe closes.
    """
    (length,) = HEADER.unpack(_read_exactly(fd, HEADER.size, deadline))
    raw_length = 0
    if length & RAW:
        length &= ~RAW
        (raw_length,) = HEADER.unpack(_read_exactly(fd, HEADER.size, deadline))
    if length + raw_length > max_bytes:
        raise WireError(f"a reply of {length + raw_length} bytes, over the limit of "
                        f"{max_bytes}")
    text = _read_exactly(fd, length, deadline)
    raw = _read_exactly(fd, raw_length, deadline)
    if raw_length and text.count(b"{") > 2 * MAX_ITEMS:  # the hook below runs per object
        raise WireError("a frame with raw data and too many objects")
    try:
        message = json.loads(text, object_pairs_hook=_frame_arrays(raw) if raw_length else None)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise WireError("a reply that is not JSON") from None
    if not isinstance(message, dict):
        raise WireError("a reply that is not a JSON object")
    return message


def _read_exactly(fd: int, count: int, deadline: float | None) -> bytearray:
    buffer = bytearray(count)
    view, done = memoryview(buffer), 0
    while done < count:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError("no reply in time")
        read = os.readv(fd, [view[done:done + (1 << 20)]])
        if not read:
            raise EOFError("the other side closed the pipe")
        done += read
    return buffer
