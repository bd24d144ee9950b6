"""The student's kernel inside the sandbox: run cells, call functions, answer in plain data.

Started by the grader as ``python -I -c "...; kernel.main()" IN OUT`` inside bubblewrap, it reads
requests from the pipe ``IN`` and writes one reply per request to the pipe ``OUT``
(:mod:`course_pkg.sandbox.wire` frames):

* ``{"op": "exec", "code": str, "timeout": s}``: run a cell as IPython would; reply with its
  outputs in nbformat's shape (streams, displays, the value of the last line, the error);
* ``{"op": "lookup", "name": str}``: is ``name`` a function, a value (sent back), or missing?
* ``{"op": "call", "name": str, "args": [...], "kwargs": {...}, "timeout": s}``: call the
  student's function ``name`` on the decoded arguments; reply with its value and what it
  printed.

A cell or a call that runs past its ``timeout`` is interrupted with ``KeyboardInterrupt``, as
Jupyter does. The magics that students use work as in IPython's kernel: ``%time``, ``%%time``,
``%timeit``, and ``%matplotlib inline`` (figures come back as PNG displays at the end of the
cell; a GUI backend has no event loop here, so a GUI's request is a no-op).

Nothing here is trusted: the grader kills the whole sandbox when a reply is late,
too large or malformed.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
from contextlib import contextmanager
from typing import Any

from course_pkg.sandbox import wire

MAX_PRINTED = 20_000
MAX_REQUEST = 1 << 30


def _resolve(name: str) -> Any:
    module, _, qualname = name.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _arguments(value: Any) -> Any:
    if isinstance(value, wire.CallableName):
        return _resolve(value)
    if isinstance(value, list):
        return [_arguments(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_arguments(v) for v in value)
    if isinstance(value, dict):
        return {k: _arguments(v) for k, v in value.items()}
    return value


@contextmanager
def _heap_frozen():
    """The kernel's objects out of the collector's sight during a call, as
    :func:`course_pkg.checks.feedback.heap_frozen` does where a check times a call: the grader
    times calls, and a full collection of the notebook's objects is not the call's cost."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def _time_limit(seconds: float | None):
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"stopped at the time limit of {seconds:g} s")

    if not seconds:
        yield
        return
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Kernel:
    """An IPython shell whose outputs are collected per cell instead of printed."""

    def __init__(self) -> None:
        from IPython.core.displayhook import DisplayHook
        from IPython.core.interactiveshell import InteractiveShell

        kernel = self

        class Shell(InteractiveShell):
            def enable_gui(self, gui: str | None = None) -> None:
                """No event loop to start: ``%matplotlib inline`` needs none (the bare
                InteractiveShell raises NotImplementedError here)."""

        class CollectingDisplayHook(DisplayHook):
            def write_output_prompt(self) -> None:
                pass

            def write_format_data(self, format_dict: dict, md_dict: Any = None) -> None:
                kernel.outputs.append({"output_type": "execute_result", "data": format_dict,
                                       "metadata": {}, "execution_count": None})

        self.outputs: list[dict[str, Any]] = []
        self.shell = Shell.instance(displayhook_class=CollectingDisplayHook)
        self.shell._showtraceback = self._record_error

    def _record_error(self, etype: Any, evalue: Any, stb: list[str]) -> None:
        self.outputs.append({"output_type": "error", "ename": getattr(etype, "__name__", "Error"),
                             "evalue": str(evalue), "traceback": list(stb)})

    def execute(self, code: str, timeout: float | None) -> dict[str, Any]:
        from IPython.utils.capture import capture_output

        self.outputs = []
        with capture_output() as captured, _time_limit(timeout):
            result = self.shell.run_cell(code, store_history=True)
        streams = [{"output_type": "stream", "name": name, "text": text}
                   for name, text in (("stdout", captured.stdout), ("stderr", captured.stderr))
                   if text]
        displays = [{"output_type": "display_data", "data": o.data, "metadata": {}}
                    for o in captured.outputs]
        return {"ok": bool(result.success), "outputs": streams + displays + self.outputs}

    def lookup(self, name: str) -> dict[str, Any]:
        if name not in self.shell.user_ns:
            return {"kind": "missing"}
        value = self.shell.user_ns[name]
        if callable(value):
            return {"kind": "callable"}
        try:
            return {"kind": "value", "value": wire.encode(value, raw=True)}
        except wire.WireError as err:
            return {"kind": "unsendable", "why": str(err)}

    def call(self, name: str, args: list, kwargs: dict, timeout: float | None
             ) -> dict[str, Any]:
        from IPython.utils.capture import capture_output

        function = self.shell.user_ns.get(name)
        if not callable(function):
            return {"ok": False, "ename": "NameError", "evalue": f"name {name!r} is not defined"}
        with capture_output() as captured:
            try:
                with _time_limit(timeout), _heap_frozen():
                    value = function(*_arguments(args), **_arguments(kwargs))
                reply = {"ok": True, "value": wire.encode(value, raw=True)}
            except wire.WireError as err:
                reply = {"ok": False, "ename": "TypeError", "evalue": f"it returned {err}"}
            except BaseException as err:  # noqa: BLE001 - everything goes back as data
                reply = {"ok": False, "ename": type(err).__name__, "evalue": str(err)[:2000]}
        reply["printed"] = (captured.stdout + captured.stderr)[:MAX_PRINTED]
        return reply

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "exec":
            return self.execute(str(request["code"]), request.get("timeout"))
        if op == "lookup":
            return self.lookup(str(request["name"]))
        if op == "call":
            return self.call(str(request["name"]), wire.decode(request.get("args", [])),
                             wire.decode(request.get("kwargs", {"__dict__": []})),
                             request.get("timeout"))
        if op == "ping":
            return {"ok": True}
        return {"ok": False, "ename": "ValueError", "evalue": f"unknown op {op!r}"}


def main(argv: list[str] | None = None) -> None:
    """Serve requests on the pipes named by ``argv`` (default ``sys.argv[1:]``) until EOF."""
    fd_in, fd_out = (int(v) for v in (argv or sys.argv[1:])[:2])
    kernel = Kernel()
    wire.send(fd_out, {"ok": True, "ready": True})
    while True:
        try:
            request = wire.receive(fd_in, MAX_REQUEST)
        except EOFError:
            break
        try:
            reply = kernel.handle(request)
        except BaseException as err:  # noqa: BLE001 - a broken request is answered, not fatal
            reply = {"ok": False, "ename": type(err).__name__, "evalue": str(err)[:2000]}
        try:
            wire.send(fd_out, reply)
        except (TypeError, ValueError) as err:  # e.g. an output that is not JSON
            wire.send(fd_out, {"ok": False, "ename": type(err).__name__, "evalue": str(err)})
    os._exit(0)
