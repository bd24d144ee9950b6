"""What runs inside a student's kernel before the student's code: limits, fences and a restorer.

The instructor pipeline (:mod:`course_pkg.grading.sandbox`) writes an IPython startup file that
calls :func:`install` with a JSON configuration. From then on, in that kernel only:

* the kernel's memory, CPU time and file sizes are capped by ``setrlimit`` (soft = hard, so
  the student's code cannot raise them again);
* an audit hook (:func:`sys.addaudithook`, which cannot be removed once added) refuses to open,
  list, delete or rename any path inside the course directory other than the student's own
  folder, refuses every write outside that folder and the private temporary directories, and
  refuses to start processes or load C libraries through ``ctypes``;
* before every cell, everything the student's code may have patched is put back: the attributes
  of NumPy, ``course_pkg`` and the builtins (module dictionaries, class dictionaries, and the
  code of their Python functions), and the names bound by the instructor's locked cells, such
  as ``from course_pkg.grading.checks import check_delta``;
* the text a cell prints is capped.

Each refusal and each restoration is written, one JSON object a line, to a log file that was
opened before the student's code ran; the pipeline turns them into report lines.
"""

from __future__ import annotations

import ast
import io
import json
import os
import resource
import signal
import sys
import types
from typing import Any

PROTECTED_PREFIXES = ("numpy", "course_pkg", "math", "builtins")
"""Modules whose attributes the tests rely on and the student's code must not change."""

WRITE_MODES = ("w", "a", "x", "+")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
PATH_EVENTS = {
    "os.listdir": (0,), "os.scandir": (0,), "os.chdir": (0,),
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.chmod": (0,), "os.chown": (0,),
    "os.truncate": (0,), "os.utime": (0,), "shutil.rmtree": (0,),
    "os.rename": (0, 1), "os.link": (0, 1), "os.symlink": (0, 1), "shutil.copyfile": (0, 1),
    "shutil.move": (0, 1),
}
MUTATING_EVENTS = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
                   "os.utime", "shutil.rmtree", "os.rename", "os.link", "os.symlink",
                   "shutil.copyfile", "shutil.move"}
REFUSED_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                  "os.fork", "os.forkpty", "pty.spawn", "os.kill", "os.killpg",
                  "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function"}
REFUSED_IMPORTS = {"_posixsubprocess", "_ctypes", "ctypes", "cffi", "_cffi_backend"}
"""Modules that reach C without an audit event of their own: a fresh import is refused, and
the already loaded ``_posixsubprocess.fork_exec`` is replaced (see :func:`install`)."""


class _Guard:
    def __init__(self, config: dict[str, Any]) -> None:
        self.own = [os.path.realpath(p) for p in config["own"]]
        self.forbidden = [os.path.realpath(p) for p in config["forbidden"]]
        self.read_only = [os.path.realpath(p) for p in config.get("read_only", [])]
        self.instructor_cells = {_normalise(s) for s in config.get("instructor_cells", [])}
        self.grade_cells = {_normalise(s): g for s, g in config.get("grade_cells", {}).items()}
        self.max_output_chars = int(config.get("max_output_chars", 20_000))
        self.log = open(config["log"], "a", buffering=1)  # noqa: SIM115 - kept open on purpose
        self.modules: dict[str, tuple[types.ModuleType, dict[str, Any]]] = {}
        self.codes: dict[int, tuple[types.FunctionType, Any, Any, Any]] = {}
        self.classes: dict[int, tuple[type, dict[str, Any]]] = {}
        self.names: dict[str, Any] = {}
        self.cell = 0
        self.active = False

    # -- logging -----------------------------------------------------------------------------
    def record(self, kind: str, what: str) -> None:
        self.log.write(json.dumps({"event": kind, "what": what, "cell": self.cell}) + "\n")

    # -- file fences -------------------------------------------------------------------------
    def _inside(self, path: str, roots: list[str]) -> bool:
        return any(path == r or path.startswith(r + os.sep) for r in roots)

    def check_path(self, event: str, raw: Any, write: bool) -> None:
        if isinstance(raw, int) or raw is None:
            return
        path = os.path.realpath(os.fsdecode(raw))
        if self._inside(path, self.own):
            return
        if not write and self._inside(path, self.read_only):
            return
        if write and path != os.devnull and not path.startswith("/proc/self"):
            self.record("blocked", f"{event} {path} (writes are allowed only in its own folder)")
            raise PermissionError(f"grading sandbox: writing {path} is not allowed")
        if self._inside(path, self.forbidden):
            self.record("blocked", f"{event} {path} (outside its own folder)")
            raise PermissionError(f"grading sandbox: {path} is outside the submission's folder")

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            write = (isinstance(mode, str) and any(m in mode for m in WRITE_MODES)) or (
                isinstance(flags, int) and bool(flags & WRITE_FLAGS))
            self.check_path(event, path, write)
        elif event in PATH_EVENTS:
            for i in PATH_EVENTS[event]:
                if i < len(args):
                    self.check_path(event, args[i], event in MUTATING_EVENTS)
        elif event == "import" and args and str(args[0]).split(".")[0] in REFUSED_IMPORTS:
            self.record("blocked", f"import {args[0]} (a way around the sandbox)")
            raise PermissionError(f"grading sandbox: importing {args[0]} is not allowed")
        elif event in REFUSED_EVENTS or event.startswith("os.exec"):
            self.record("blocked", f"{event} (starting processes or loading C libraries)")
            raise PermissionError(f"grading sandbox: {event} is not allowed")

    # -- snapshots and restoration -----------------------------------------------------------
    def snapshot_modules(self) -> None:
        for name, module in list(sys.modules.items()):
            if module is None or name in self.modules or not (
                    name.startswith(PROTECTED_PREFIXES) or name in PROTECTED_EXTRA):
                continue
            if name.startswith("course_pkg.grading.pipeline"):
                continue
            contents = {k: v for k, v in vars(module).items() if _protected(k, v)}
            self.modules[name] = (module, contents)
            for value in contents.values():
                self._snapshot_value(value, name)

    def _snapshot_value(self, value: Any, module_name: str) -> None:
        if isinstance(value, types.FunctionType) and id(value) not in self.codes:
            self.codes[id(value)] = (value, value.__code__, value.__defaults__,
                                     value.__kwdefaults__)
        elif (isinstance(value, type) and getattr(value, "__module__", "") == module_name
              and id(value) not in self.classes):
            members = {k: v for k, v in vars(value).items() if _protected(k, v, dunder=True)}
            self.classes[id(value)] = (value, members)
            for member in vars(value).values():
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, types.FunctionType):
                    self._snapshot_value(member, module_name)

    def restore(self, during: str | None = None) -> None:
        """Put back every protected object; ``during`` names the test cell that just ran."""
        kind = "patched during test" if during else "restored"
        suffix = f" [{during}]" if during else ""
        for name, (module, contents) in self.modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                self.record(kind, f"sys.modules[{name!r}]{suffix}")
            current = vars(module)
            for key, value in contents.items():
                if current.get(key, _MISSING) is not value:
                    current[key] = value
                    self.record(kind, f"{name}.{key}{suffix}")
        for cls, contents in self.classes.values():
            for key, value in contents.items():
                if vars(cls).get(key, _MISSING) is not value:
                    try:
                        setattr(cls, key, value)
                    except (AttributeError, TypeError):
                        continue
                    self.record(kind, f"{cls.__module__}.{cls.__qualname__}.{key}{suffix}")
        for function, code, defaults, kwdefaults in self.codes.values():
            if function.__code__ is not code or function.__defaults__ is not defaults:
                function.__code__, function.__defaults__ = code, defaults
                function.__kwdefaults__ = kwdefaults
                self.record(kind, f"{function.__module__}.{function.__qualname__}"
                            f" (its code was replaced){suffix}")

    def restore_names(self, user_ns: dict[str, Any]) -> None:
        for key, value in self.names.items():
            if user_ns.get(key, _MISSING) is not value:
                user_ns[key] = value
                self.record("restored", f"{key} (defined by the instructor's cell)")

    # -- IPython events ----------------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        self.cell += 1
        self.active = False
        try:
            self.snapshot_modules()
            self.restore()
            shell = _shell()
            if shell is not None:
                self.restore_names(shell.user_ns)
            _cap_streams(self.max_output_chars, lambda: self.record(
                "capped", f"a cell printed more than {self.max_output_chars} characters"))
        finally:
            self.active = True

    def post_run_cell(self, result: Any) -> None:
        self.active = False
        try:
            source = getattr(getattr(result, "info", None), "raw_cell", "") or ""
            grade_id = self.grade_cells.get(_normalise(source))
            if grade_id is not None:
                self.restore(during=grade_id)
            shell = _shell()
            if shell is not None and _normalise(source) in self.instructor_cells:
                for key in _bound_names(source):
                    if key in shell.user_ns:
                        self.names[key] = shell.user_ns[key]
                        self._snapshot_value(shell.user_ns[key], getattr(
                            shell.user_ns[key], "__module__", "") or "")
            self.snapshot_modules()
        finally:
            self.active = True


class _CappedStream(io.TextIOBase):
    """A text stream that forwards at most ``limit`` characters per cell, then one notice."""

    def __init__(self, inner: Any, limit: int, on_cap: Any) -> None:
        self.inner, self.limit, self.written, self.noticed = inner, limit, 0, False
        self.on_cap = on_cap

    def write(self, text: str) -> int:
        room = self.limit - self.written
        if room > 0:
            self.inner.write(text[:room])
        elif not self.noticed:
            self.noticed = True
            self.on_cap()
            self.inner.write(f"\n... output capped at {self.limit} characters by the grader ...\n")
        self.written += len(text)
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _cap_streams(limit: int, on_cap: Any) -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        inner = stream.inner if isinstance(stream, _CappedStream) else stream
        setattr(sys, name, _CappedStream(inner, limit, on_cap))


_MISSING = object()
_IPYTHON_BUILTINS = {"exit", "quit", "display", "get_ipython", "help", "copyright", "credits",
                     "license", "input"}


def _protected(key: str, value: Any, dunder: bool = False) -> bool:
    """Whether the tests may rely on ``key = value`` of a module (or a class) staying put."""
    if key in _IPYTHON_BUILTINS:
        return False
    if key.startswith("_") and not (dunder and key.startswith("__") and callable(value)):
        return False
    return callable(value) or isinstance(value, (types.ModuleType, int, float, complex, str))


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - the kernel always has IPython
        return None
    return get_ipython()


def _normalise(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _bound_names(source: str) -> list[str]:
    """The names a cell binds at its top level by an import or a definition.

    These are what the tests call (the checks, the reference functions). Plain assignments
    are left out: a student may reuse a variable name of a test cell for their own data.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
    return names


def _refused(*args: Any, **kwargs: Any) -> Any:
    raise PermissionError("grading sandbox: starting processes is not allowed")


def _disable_fork_exec() -> None:
    """``_posixsubprocess.fork_exec`` starts a process with no audit event: replace it.

    The module is protected like NumPy, so the replacement is put back before every cell.
    """
    import subprocess  # noqa: F401 - loads _posixsubprocess now, while imports are allowed

    module = sys.modules.get("_posixsubprocess")
    if module is not None:
        module.fork_exec = _refused
    PROTECTED_EXTRA.add("_posixsubprocess")


PROTECTED_EXTRA: set[str] = set()


def set_limits(memory_bytes: int, cpu_seconds: int, file_bytes: int) -> None:
    """Cap this process (soft = hard, so they cannot be raised again)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails instead of killing
    for limit, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_CPU, cpu_seconds),
                         (resource.RLIMIT_FSIZE, file_bytes)):
        if value > 0:
            resource.setrlimit(limit, (value, value))


def install(config_path: str | None = None) -> None:
    """Install the limits, the audit hook and the restorer in the running IPython kernel."""
    config_path = config_path or os.environ["COURSE_GUARD_CONFIG"]
    with open(config_path) as f:
        config = json.load(f)
    for name in config.get("preload", []):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing optional module is not an error here
            continue
    guard = _Guard(config)
    _disable_fork_exec()
    guard.snapshot_modules()
    shell = _shell()
    if shell is not None:
        shell.events.register("pre_run_cell", guard.pre_run_cell)
        shell.events.register("post_run_cell", guard.post_run_cell)
    set_limits(int(config.get("memory_bytes", 0)), int(config.get("cpu_seconds", 0)),
               int(config.get("file_bytes", 0)))
    sys.addaudithook(guard.audit)
    guard.active = True
