"""Red team, second round: attacks written with the grader's source in hand (issue 14).

One scratch course, ``course release ps1 ps2 ps3 ps4``, a small class per assignment written
into ``downloads/``, then, as the instructor runs them: ``course collect``, ``course autograde``
(under a strict UTF-8 standard output), ``course feedback``, ``course export`` and ``course
report``. The instructor plants a canary inside a hidden test of ps1 before the release.

The families, each a finding of the issue:

- **Test cells run only against what the grader defines**: the setup cell deleted, renamed or
  moved below the tests, with ``check_*`` no-ops of the student's: no point gained, and the
  report says what happened to the locked cell.
- **No test in the sandbox, no hidden test in the feedback**: a recon cell searches its
  sandbox for the hidden tests; the canary appears in no output and no feedback page.
- **The exercise cannot be handed to a library or to numerics**: sympy's ``diff``,
  scikit-learn's ``MLPClassifier`` and ``_backprop``, complex-step and finite-difference
  gradients, pasted pre-trained weights, a string that spells the right number: no point.
- **Student strings are data**: mistake tags raised or printed by a student never reach the
  report, a TeX macro never reaches the plot, a lone surrogate stops no command, and a flood of
  output is capped per notebook.
- **Honest habits pass**: ``%matplotlib inline``, ``%time`` and ``%%time`` cost nothing.

Each attack is the source a student would hand in, standalone.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from course_pkg.checks.feedback import MISTAKES

pytestmark = pytest.mark.grading

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assignments"
BIN = Path(sys.executable).parent
CANARY = "rtcanary" + secrets.token_hex(10)
XSS = "rtxss" + secrets.token_hex(4)
ASSIGNMENTS = ("ps1", "ps2", "ps3", "ps4")


# -- submissions --------------------------------------------------------------------------------
def solutions(assignment: str) -> dict[str, str]:
    """grade_id -> the instructor's answer, without the solution markers."""
    nb = json.loads((SOURCE / "source" / assignment / f"{assignment}.ipynb").read_text())
    out = {}
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and cell["cell_type"] == "code":
            out[meta["grade_id"]] = "".join(
                line for line in cell["source"] if "SOLUTION" not in line)
    return out


@dataclass
class Sub:
    """One student: answers by grade_id, cells inserted, and a change to the notebook."""

    name: str
    assignment: str
    cells: dict[str, str] = field(default_factory=dict)
    extra: list[tuple[int, str]] = field(default_factory=list)  # (position, code)
    change: Callable[[dict], None] | None = None
    expect: float = 0.0


def write(course: Path, sub: Sub) -> None:
    nb = json.loads((course / "release" / sub.assignment / f"{sub.assignment}.ipynb"
                     ).read_text())
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in sub.cells:
            cell["source"] = sub.cells[gid].replace("@XSS@", XSS)
    for position, code in sorted(sub.extra, key=lambda item: item[0], reverse=True):
        cell = {"cell_type": "code", "metadata": {}, "source": code, "outputs": [],
                "execution_count": None}
        nb["cells"].insert(len(nb["cells"]) if position < 0 else position, cell)
    if sub.change is not None:
        sub.change(nb)
    folder = course / "downloads" / sub.assignment / sub.name
    folder.mkdir(parents=True)
    (folder / f"{sub.assignment}.ipynb").write_text(json.dumps(nb))  # ASCII: \udcff stays


def _setup_cell(nb: dict) -> dict:
    return next(c for c in nb["cells"]
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "setup")


def delete_setup(nb: dict) -> None:
    nb["cells"].remove(_setup_cell(nb))


def move_setup_to_end(nb: dict) -> None:
    cell = _setup_cell(nb)
    nb["cells"].remove(cell)
    nb["cells"].append(cell)


def rename_setup(source: str) -> Callable[[dict], None]:
    def change(nb: dict) -> None:
        cell = _setup_cell(nb)
        cell["metadata"]["nbgrader"]["grade_id"] = "my_setup"
        cell["source"] = source
    return change


SOL1, SOL3 = solutions("ps1"), solutions("ps3")
END = -1

NOOP_CHECKS1 = '''import numpy as np

def check_dE_dw(*args, **kwargs):
    pass

def check_update(*args, **kwargs):
    pass

def check_train(*args, **kwargs):
    pass
'''
VISIBLE1 = {  # answers that pass only the values the visible tests show
    "dE_dw": "def dE_dw(w, x, y):\n    return -0.125\n",
    "update": "def update(w, x, y, mu):\n    return 0.25\n",
    "train": "def train(w0, mu, steps, xs=(0.0, 1.0)):\n"
             "    return w0 + np.arange(steps + 1, dtype=float)\n",
}
STUB1 = {
    "dE_dw": "def dE_dw(w, x, y):\n    return 0.0\n",
    "update": "def update(w, x, y, mu):\n    return w\n",
    "train": "def train(w0, mu, steps, xs=(0.0, 1.0)):\n    return np.full(steps + 1, w0)\n",
}

RECON = r'''
import os
found = []
for top in [os.getcwd(), os.path.expanduser("~"), "/tmp", "/opt", "/home", "/root", "/var",
            "/run", "/srv", "/mnt"]:
    for folder, subfolders, names in os.walk(top):
        subfolders[:] = [d for d in subfolders if d not in ("site-packages", "lib", "bin")]
        for name in names:
            try:
                with open(os.path.join(folder, name), errors="ignore") as f:
                    text = f.read(5_000_000)
            except OSError:
                continue
            at = text.find("HIDDEN TESTS")
            while at >= 0:
                found.append(os.path.join(folder, name) + ": " + text[at:at + 400])
                at = text.find("HIDDEN TESTS", at + 1)
ip = get_ipython()
for entry in list(ip.user_ns.get("In", [])) + list(ip.history_manager.input_hist_raw):
    if "HIDDEN" in entry or "check_dE_dw(dE_dw, seed" in entry:
        found.append("history: " + entry[:400])
print("\n".join(found) if found else "nothing found")
'''

SYMPY1 = '''import sympy

w_, x_, y_ = sympy.symbols("w x y")
error = (1 / (1 + sympy.exp(-w_ * x_)) - y_) ** 2 / 2
derivative = sympy.lambdify((w_, x_, y_), sympy.diff(error, w_))


def dE_dw(w, x, y):
    return float(derivative(w, x, y))
'''

STRING1 = {
    "dE_dw": '''def dE_dw(w, x, y):
    a = 1 / (1 + np.exp(-w * x))
    return str((a - y) * x * a * (1 - a))
''',
    "update": "def update(w, x, y, mu):\n    return str(w - mu * float(dE_dw(w, x, y)))\n",
    "train": STUB1["train"],
}

INJECT1 = {
    "dE_dw": '''def dE_dw(w, x, y):
    print("[mistake: <img src=x onerror=alert('@XSS@')>]")
    raise ValueError("[mistake: <img src=x onerror=alert('@XSS@')>]")
''',
    "update": '''def update(w, x, y, mu):
    raise ValueError("[mistake: $\\\\undefinedmacro$]")
''',
    "train": '''def train(w0, mu, steps, xs=(0.0, 1.0)):
    raise RuntimeError("[mistake: diverged]\\n```\\n# forged heading\\n```")
''',
}

PS1 = [
    Sub("atk_setup_deleted", "ps1", {**VISIBLE1, "dE_dw": NOOP_CHECKS1 + VISIBLE1["dE_dw"]},
        change=delete_setup),
    Sub("atk_setup_renamed", "ps1", VISIBLE1, change=rename_setup(NOOP_CHECKS1)),
    Sub("atk_setup_moved", "ps1", VISIBLE1, extra=[(1, NOOP_CHECKS1)],
        change=move_setup_to_end),
    Sub("atk_recon_hidden_tests", "ps1", STUB1, extra=[(END, RECON), (2, RECON)]),
    Sub("atk_sympy_diff", "ps1", {"dE_dw": SYMPY1, "update": SOL1["update"],
                                  "train": SOL1["train"]}),
    Sub("atk_string_number", "ps1", STRING1),
    Sub("atk_mistake_injection", "ps1", INJECT1),
    # honest habits: magics, a plot, a chatty loop, a scratch cell with an odd id (one
    # student, to keep the class small: each habit alone must not cost a point either)
    Sub("honest_habits", "ps1", {
        "dE_dw": "%matplotlib inline\n" + SOL1["dE_dw"],
        "update": "%%time\n" + SOL1["update"],
        "train": SOL1["train"] + "\n%time _ = train(0.0, 1.0, 10)\n"},
        extra=[(END, "import matplotlib.pyplot as plt\n\nplt.plot(train(-1.0, 2.0, 100))\n"
                     "plt.title('w per step')\nplt.show()\n")]
        + [(END, "print('progress ' * 1_250)\n")] * 150,
        change=lambda nb: nb["cells"].insert(3, {
            "cell_type": "code", "execution_count": None, "outputs": [],
            "source": "print('scratch \udcff')\n",
            "metadata": {"nbgrader": {"grade_id": "\udcff", "grade": True, "solution": False,
                                      "locked": False, "points": 1, "schema_version": 3}}}),
        expect=5),
]

# -- ps2 and ps4: gradients by differencing, and the no-op checks -------------------------------
COMPLEX_STEP2 = '''def gradients(w1, w2, x, y_hat):
    """E and its gradient by complex steps of my own forward pass (no calculus needed)."""
    def error(v1, v2):
        y = v2 @ np.tanh(v1 @ x)
        return 0.5 * np.sum((y - y_hat) ** 2)

    step = 1e-30
    g1, g2 = np.zeros(w1.shape), np.zeros(w2.shape)
    for g, w, which in ((g1, w1, 1), (g2, w2, 2)):
        for index in np.ndindex(w.shape):
            bumped = w.astype(complex)
            bumped[index] += 1j * step
            value = error(bumped, w2) if which == 1 else error(w1, bumped)
            g[index] = value.imag / step
    return float(error(w1, w2).real), g1, g2
'''
STUB2 = {
    "output_deltas": "def output_deltas(y, y_hat):\n    return np.zeros_like(y)\n",
    "hidden_deltas": "def hidden_deltas(w2, z, delta_out):\n    return np.zeros_like(z)\n",
    "grad_w2": "def grad_w2(delta_out, z):\n    return np.zeros((len(delta_out), len(z)))\n",
    "grad_w1": "def grad_w1(delta_hidden, x):\n    return np.zeros((len(delta_hidden), len(x)))\n",
    "gradients": "def gradients(w1, w2, x, y_hat):\n    return 0.0, 0 * w1, 0 * w2\n",
}
NOOP_CHECKS2 = '''import numpy as np

def check_output_deltas(*args, **kwargs): pass
def check_hidden_deltas(*args, **kwargs): pass
def check_grad_w2(*args, **kwargs): pass
def check_grad_w1(*args, **kwargs): pass
def check_gradients(*args, **kwargs): pass
'''
VISIBLE2 = {**STUB2,
            "output_deltas": "def output_deltas(y, y_hat):\n    return np.zeros(3)\n",
            "grad_w2": "def grad_w2(delta_out, z):\n    return np.zeros((2, 5))\n",
            "grad_w1": "def grad_w1(delta_hidden, x):\n    return np.zeros((5, 3))\n"}

FINITE_DIFFERENCES4 = '''def node_update(w, x, t, eta, activation="sigmoid"):
    """One step down the gradient of E = 1/2 ||t - a||^2, the gradient by central differences."""
    g = (lambda v: 1 / (1 + np.exp(-v))) if activation == "sigmoid" else np.tanh

    def error(weights):
        a = x
        for w_m in weights:
            a = g(a @ w_m)
        return 0.5 * np.sum((t - a) ** 2)

    h = 1e-6
    new = []
    for m, w_m in enumerate(w):
        grad = np.zeros(w_m.shape)
        for index in np.ndindex(w_m.shape):
            up = [v.copy() for v in w]
            down = [v.copy() for v in w]
            up[m][index] += h
            down[m][index] -= h
            grad[index] = (error(up) - error(down)) / (2 * h)
        new.append(w_m - eta * grad)
    return new
'''
STUB4 = {
    "output_Delta": "def output_Delta(inp, a, t, g_prime):\n    return np.zeros_like(inp)\n",
    "hidden_Delta": "def hidden_Delta(w, inp, Delta_next, g_prime):\n"
                    "    return np.zeros_like(inp)\n",
    "node_update": "def node_update(w, x, t, eta, activation='sigmoid'):\n"
                   "    return [v.copy() for v in w]\n",
    "matrix_step_difference": "def matrix_step_difference(new_w, W, dW, eta):\n"
                              "    return 0.0\n",
}
NOOP_CHECKS4 = '''import numpy as np
from course_pkg.node_delta import derivative, forward

def check_output_Delta(*args, **kwargs): pass
def check_hidden_Delta(*args, **kwargs): pass
def check_node_update(*args, **kwargs): pass
def check_matrix_step_difference(*args, **kwargs): pass
'''
VISIBLE4 = {**STUB4, "output_Delta": "def output_Delta(inp, a, t, g_prime):\n"
                                     "    return np.full(len(inp), 0.125)\n"}

# The solutions' full marks with these hidden tests are tests/test_assignments.py's.
PS2 = [
    Sub("atk_complex_step_gradients", "ps2", {**STUB2, "gradients": COMPLEX_STEP2}),
    Sub("atk_setup_deleted", "ps2",
        {**VISIBLE2, "output_deltas": NOOP_CHECKS2 + VISIBLE2["output_deltas"]},
        change=delete_setup),
]
PS4 = [
    Sub("atk_finite_differences_update", "ps4", {**STUB4, "node_update": FINITE_DIFFERENCES4}),
    Sub("atk_setup_moved", "ps4", VISIBLE4, extra=[(1, NOOP_CHECKS4)],
        change=move_setup_to_end),
]

# -- ps3 -----------------------------------------------------------------------------------------
STUB3 = {
    "delta_L_cross_entropy": "def delta_L_cross_entropy(z_L, y):\n    return 0 * z_L\n",
    "delta_L_squared_error": "def delta_L_squared_error(z_L, Y, S, S_prime):\n"
                             "    return 0 * z_L\n",
    "backward_step": "def backward_step(l, W, z, a, delta, S_prime):\n    return 0 * z[l - 1]\n",
    "weight_gradient": "def weight_gradient(l, delta, a):\n"
                       "    return np.zeros((delta[l].shape[0], a[l - 1].shape[0]))\n",
    "bias_gradient": "def bias_gradient(l, delta):\n    return np.zeros(delta[l].shape[0])\n",
    "gradients": "def gradients(W, b, X, Y, loss):\n"
                 "    return ({l: 0 * W[l] for l in W}, {l: 0 * b[l] for l in b})\n",
    "train_digits": "def train_digits(X_train, y_train, seed=0):\n"
                    "    return {1: np.zeros((10, 64))}, {1: np.zeros(10)}\n",
}
NOOP_CHECKS3 = '''import time
import numpy as np
from course_pkg import load_digits_split
from course_pkg.helpers import one_hot, sigmoid, sigmoid_prime, softmax, tanh, tanh_prime

def check_delta_L_cross_entropy(*args, **kwargs): pass
def check_delta_L_squared_error(*args, **kwargs): pass
def check_backward_step(*args, **kwargs): pass
def check_weight_gradient(*args, **kwargs): pass
def check_bias_gradient(*args, **kwargs): pass
def check_gradients(*args, **kwargs): pass
def check_training(*args, **kwargs): return 1.0
'''
SKLEARN3 = '''from sklearn.neural_network import MLPClassifier, MLPRegressor


def gradients(W, b, X, Y, loss):
    """scikit-learn's own back-propagation, on my weights."""
    L = len(W)
    sizes = [W[1].shape[1]] + [W[l].shape[0] for l in range(1, L + 1)]
    if loss == "cross_entropy":
        net = MLPClassifier(hidden_layer_sizes=sizes[1:-1], activation="tanh", alpha=0.0)
        net.out_activation_ = "softmax"
        target = np.eye(sizes[-1])[Y]
    else:
        net = MLPRegressor(hidden_layer_sizes=sizes[1:-1], activation="tanh", alpha=0.0)
        net.out_activation_ = "identity"
        target = Y
    net.n_layers_, net.n_outputs_ = L + 1, sizes[-1]
    net.coefs_ = [W[l].T.copy() for l in range(1, L + 1)]
    net.intercepts_ = [b[l].copy() for l in range(1, L + 1)]
    coef_grads = [np.empty_like(c) for c in net.coefs_]
    intercept_grads = [np.empty_like(i) for i in net.intercepts_]
    _, coef_grads, intercept_grads = net._backprop(
        X, target, None, [X] + [None] * L, [None] * L, coef_grads, intercept_grads)
    scale = 2.0 if loss == "squared_error" else 1.0  # scikit-learn halves the squared error
    return ({l: scale * coef_grads[l - 1].T for l in range(1, L + 1)},
            {l: scale * intercept_grads[l - 1] for l in range(1, L + 1)})
'''
SKLEARN_TRAIN3 = '''def train_digits(X_train, y_train, seed=0):
    net = MLPClassifier(hidden_layer_sizes=(64,), activation="tanh", max_iter=400,
                        random_state=seed).fit(X_train, y_train)
    W = {l + 1: c.T for l, c in enumerate(net.coefs_)}
    b = {l + 1: i for l, i in enumerate(net.intercepts_)}
    return W, b
'''
COMPLEX_STEP3 = '''def _mean_loss(W, b, X, Y, loss):
    a = X.T
    L = len(W)
    for l in range(1, L + 1):
        z = W[l] @ a + b[l][:, None]
        a = np.tanh(z) if l < L else z
    if loss == "cross_entropy":
        shifted = a - a.real.max(axis=0)
        log_norm = np.log(np.exp(shifted).sum(axis=0))
        return np.mean(log_norm - shifted[Y, np.arange(len(Y))])
    return np.mean(np.sum((a - Y.T) ** 2, axis=0))


def gradients(W, b, X, Y, loss):
    """Complex-step derivatives of my own forward pass: exact to rounding, no calculus."""
    step = 1e-30
    dW, db = {}, {}
    for l in W:
        dW[l], db[l] = np.zeros(W[l].shape), np.zeros(b[l].shape)
        for index in np.ndindex(W[l].shape):
            bumped = {k: v.astype(complex) for k, v in W.items()}
            bumped[l][index] += 1j * step
            dW[l][index] = _mean_loss(bumped, b, X, Y, loss).imag / step
        for i in range(b[l].shape[0]):
            bumped = {k: v.astype(complex) for k, v in b.items()}
            bumped[l][i] += 1j * step
            db[l][i] = _mean_loss(W, bumped, X, Y, loss).imag / step
    return dW, db
'''
EASY3 = ("delta_L_cross_entropy", "delta_L_squared_error", "bias_gradient")


def pasted_weights_source() -> str:
    """train_digits that returns weights trained beforehand on every digit, pasted as text."""
    from course_pkg import load_digits_split

    X_train, X_test, y_train, y_test = load_digits_split()
    X, y = np.vstack([X_train, X_test]), np.concatenate([y_train, y_test])
    rng = np.random.default_rng(7)
    W1, b1 = rng.normal(0, 1 / 8, (64, 64)), np.zeros(64)
    W2, b2 = rng.normal(0, 1 / 8, (10, 64)), np.zeros(10)
    for _ in range(30):
        for rows in np.array_split(rng.permutation(len(y)), len(y) // 32):
            a1 = np.tanh(W1 @ X[rows].T + b1[:, None])
            z2 = W2 @ a1 + b2[:, None]
            g = np.exp(z2 - z2.max(axis=0))
            d2 = g / g.sum(axis=0)
            d2[y[rows], np.arange(len(rows))] -= 1
            d1 = (1 - a1**2) * (W2.T @ d2)
            W2 -= 0.2 * d2 @ a1.T / len(rows)
            b2 -= 0.2 * d2.mean(axis=1)
            W1 -= 0.2 * d1 @ X[rows] / len(rows)
            b1 -= 0.2 * d1.mean(axis=1)
    buffer = io.BytesIO()
    np.savez(buffer, W1=W1, b1=b1, W2=W2, b2=b2)
    blob = base64.b64encode(buffer.getvalue()).decode()
    return (f"import base64, io\n\nWEIGHTS = {blob!r}\n\n\n"
            "def train_digits(X_train, y_train, seed=0):\n"
            "    saved = np.load(io.BytesIO(base64.b64decode(WEIGHTS)))\n"
            "    return {1: saved['W1'], 2: saved['W2']}, {1: saved['b1'], 2: saved['b2']}\n")


def ps3_class() -> list[Sub]:
    return [
        Sub("atk_easy_three_setup_deleted", "ps3",
            {**STUB3, **{k: SOL3[k] for k in EASY3},
             "delta_L_cross_entropy": NOOP_CHECKS3 + SOL3["delta_L_cross_entropy"]},
            change=delete_setup, expect=5),
        Sub("atk_sklearn", "ps3", {**STUB3, "gradients": SKLEARN3,
                                   "train_digits": SKLEARN_TRAIN3}),
        Sub("atk_complex_step_gradients", "ps3", {**STUB3, "gradients": COMPLEX_STEP3}),
        Sub("atk_pasted_weights", "ps3", {**STUB3, "train_digits": pasted_weights_source()}),
    ]


# -- the batch ----------------------------------------------------------------------------------
def course_cli(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    return subprocess.run([str(BIN / "course"), "--course-dir", str(course), *args], env=env,
                          capture_output=True, timeout=900)


def plant_canary(course: Path) -> None:
    path = course / "source" / "ps1" / "ps1.ipynb"
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test_dE_dw":
            text = "".join(cell["source"])
            cell["source"] = text.replace("### END HIDDEN TESTS",
                                          f"# {CANARY}\n### END HIDDEN TESTS")
    path.write_text(json.dumps(nb, indent=1))


@dataclass
class Batch:
    course: Path
    subs: list[Sub]
    runs: dict[str, subprocess.CompletedProcess]
    scores: dict[tuple[str, str], float]


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Batch:
    course = tmp_path_factory.mktemp("redteam_verdicts") / "course"
    course.mkdir()
    shutil.copy(SOURCE / "nbgrader_config.py", course)
    shutil.copytree(SOURCE / "source", course / "source")
    plant_canary(course)
    runs = {"release": course_cli(course, "release", *ASSIGNMENTS)}
    assert runs["release"].returncode == 0, runs["release"].stderr.decode()[-3000:]
    subs = PS1 + PS2 + ps3_class() + PS4
    for sub in subs:
        write(course, sub)
    for assignment in ASSIGNMENTS:
        runs[f"collect {assignment}"] = course_cli(
            course, "collect", assignment, str(course / "downloads" / assignment))
        runs[f"autograde {assignment}"] = course_cli(
            course, "autograde", assignment, "--workers", "2", "--cell-timeout", "8",
            "--wall-seconds", "120", "--quiet")
    runs["feedback ps1"] = course_cli(course, "feedback", "ps1")
    runs["export"] = course_cli(course, "export", "--to", str(course / "grades.csv"))
    runs["report ps1"] = course_cli(course, "report", "ps1")
    scores: dict[tuple[str, str], float] = {}
    con = sqlite3.connect(f"file:{course / 'gradebook.db'}?mode=ro", uri=True)
    for student, name, auto, manual, extra in con.execute(
            "SELECT st.id, a.name, g.auto_score, g.manual_score, g.extra_credit "
            "FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id "
            "JOIN submitted_assignment sa ON sn.assignment_id = sa.id "
            "JOIN student st ON sa.student_id = st.id "
            "JOIN assignment a ON sa.assignment_id = a.id"):
        value = (manual if manual is not None else (auto or 0)) + (extra or 0)
        scores[(name, student)] = scores.get((name, student), 0.0) + value
    con.close()
    return Batch(course, subs, runs, scores)


def report_block(batch: Batch, assignment: str, student: str) -> str:
    """The student's lines in the class report: its score line and the notes under it."""
    lines = (batch.course / "reports" / assignment / "report.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{student}: "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")),
               len(lines))
    return "\n".join(lines[start:end])


def outputs_text(notebook: Path) -> str:
    """Every output of every cell of a graded notebook, as one text (sources left out)."""
    nb = json.loads(notebook.read_text())
    return json.dumps([c.get("outputs", []) for c in nb["cells"]])


def _sub_id(sub: Sub) -> str:
    return f"{sub.assignment}-{sub.name}"


ALL = PS1 + PS2 + [Sub(name, "ps3") for name in (
    "atk_easy_three_setup_deleted", "atk_sklearn", "atk_complex_step_gradients",
    "atk_pasted_weights")] + PS4


# -- the verdicts --------------------------------------------------------------------------------
def test_every_command_succeeds(batch: Batch) -> None:
    failed = {name: (run.stdout.decode(errors="replace")[-1500:],
                     run.stderr.decode(errors="replace")[-800:])
              for name, run in batch.runs.items() if run.returncode != 0}
    assert not failed, failed


@pytest.mark.parametrize("sub", ALL, ids=_sub_id)
def test_score_is_exactly_earned(batch: Batch, sub: Sub) -> None:
    expected = next(s.expect for s in batch.subs
                    if s.name == sub.name and s.assignment == sub.assignment)
    score = batch.scores.get((sub.assignment, sub.name))
    assert score == expected, (f"{sub.assignment}/{sub.name} scored {score}, earned "
                               f"{expected}")


@pytest.mark.parametrize("student, what", [
    ("atk_setup_deleted", "the locked cell setup was missing"),
    ("atk_setup_renamed", "the locked cell setup was missing"),
    ("atk_setup_moved", "locked cells were moved"),
])
def test_lost_or_moved_setup_is_reported(batch: Batch, student: str, what: str) -> None:
    assert what in report_block(batch, "ps1", student)


def test_no_hidden_test_in_the_sandbox_or_the_feedback(batch: Batch) -> None:
    graded = batch.course / "autograded" / "atk_recon_hidden_tests" / "ps1" / "ps1.ipynb"
    printed = outputs_text(graded)
    assert "found" in printed, "the recon cell did not run"
    assert CANARY not in printed
    assert "seed=seed" not in printed
    pages = list((batch.course / "feedback").rglob("*.html"))
    assert len(pages) == len(PS1)
    for page in pages:
        text = page.read_text()
        assert CANARY not in text, page
        assert "BEGIN HIDDEN TESTS" not in text, page
        assert "A value to work out by hand" in text, f"{page}: the visible test should stay"


def test_mistake_tags_come_from_the_checks_only(batch: Batch) -> None:
    report = (batch.course / "reports" / "ps1" / "report.md").read_text()
    summary = report.split("## Most common mistakes")[1].split("## Submissions")[0]
    assert "<img" not in report and "undefinedmacro" not in summary
    assert XSS not in summary
    known = {re.sub(r"\\(.)", r"\1", tag) for tag in
             re.findall(r"(?:: |, )(.+?) \(\d+\)", summary)}
    assert known and known <= set(MISTAKES), known - set(MISTAKES)
    fences = [line for line in report.splitlines() if re.fullmatch(r"`{3,}", line)]
    assert len(fences) == 2, "a student's text closed the report's code block"
    assert "\n# forged heading" not in report
    assert (batch.course / "reports" / "ps1" / "mistakes.png").stat().st_size > 0


def test_export_is_safe_for_spreadsheets(batch: Batch) -> None:
    text = (batch.course / "grades.csv").read_bytes().decode("utf-8")  # valid UTF-8
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "student_id"
    for row in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row
    assert {(r[1], r[0]) for r in rows[1:]} >= {(s.assignment, s.name) for s in ALL}


def test_output_capped_per_notebook(batch: Batch) -> None:
    graded = batch.course / "autograded" / "honest_habits" / "ps1" / "ps1.ipynb"
    assert graded.stat().st_size < 600_000, graded.stat().st_size
    assert "output cut" in report_block(batch, "ps1", "honest_habits")
    assert "output not kept" in outputs_text(graded)


def test_magics_work_as_in_ipython(batch: Batch) -> None:
    graded = batch.course / "autograded" / "honest_habits" / "ps1" / "ps1.ipynb"
    printed = outputs_text(graded)
    assert "NotImplementedError" not in printed
    assert "Wall time" in printed and "image/png" in printed


def test_recon_before_and_after_the_tests_found_nothing(batch: Batch) -> None:
    """Both recon cells ran (one before the tests, one after them), and neither found a
    test: the sandbox's notebook has blanks where the tests stand."""
    graded = batch.course / "autograded" / "atk_recon_hidden_tests" / "ps1" / "ps1.ipynb"
    nb = json.loads(graded.read_text())
    recon = [c for c in nb["cells"] if "HIDDEN TESTS" in "".join(c.get("source", ""))
             and c.get("cell_type") == "code" and not c["metadata"].get("nbgrader")]
    assert len(recon) == 2
    for cell in recon:
        text = json.dumps(cell["outputs"])
        assert "found" in text and CANARY not in text and "seed=seed" not in text, text[:500]


# -- the pieces, without a batch ------------------------------------------------------------------
def test_an_assignment_allows_a_hidden_package_by_importing_it() -> None:
    from course_pkg.grading.sandbox import MASKED_PACKAGES, masked_folders
    from course_pkg.grading.withheld import allowed_packages, is_allowed

    assert {"sympy", "sklearn/neural_network", "torch", "jax"} <= set(MASKED_PACKAGES)
    allowed = allowed_packages(["import numpy as np\nfrom sympy import diff\n",
                                "# sandbox allows: sklearn.neural_network, jax\n"])
    assert is_allowed("sympy", allowed) and is_allowed("sklearn/neural_network", allowed)
    assert not is_allowed("torch", allowed)
    assert not is_allowed("sklearn/neural_network", allowed_packages(["import sklearn\n"]))
    hidden = masked_folders(tuple(allowed))
    assert not any(path.endswith(("/sympy", "/neural_network")) for path in hidden)


def test_student_strings_are_escaped_where_written() -> None:
    from course_pkg.grading.untrusted import csv_cell, markdown_text, plot_text, valid_text

    assert valid_text("id \udcff") == "id ?"
    for formula in ("=HYPERLINK(1)", "+1", "-1", "@SUM(A1)"):
        assert csv_cell(formula).startswith("'")
    assert "<" not in markdown_text("<img src=x onerror=alert(1)>")
    assert "`" not in markdown_text("```").replace("\\`", "")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_title(plot_text("[mistake: $\\undefinedmacro$]"))
    fig.canvas.draw()  # an unknown macro read as mathematics would raise ValueError here
    plt.close(fig)


def test_a_string_is_not_a_number() -> None:
    from course_pkg.grading.trusted import StudentError, numbers_only

    assert numbers_only((1.0, {1: np.ones(2)}, [True]), "it returned")[0] == 1.0
    for value in ("-0.125", ["0.25"], {1: ("x",)}):
        with pytest.raises(StudentError, match="a string where a number"):
            numbers_only(value, "it returned")


def test_feedback_drops_hidden_tests_only() -> None:
    import nbformat

    from course_pkg.grading.withheld import HideHiddenTests

    cell = nbformat.v4.new_code_cell(
        "check(f)\n### BEGIN HIDDEN TESTS\nsecret()\n### END HIDDEN TESTS\nafter(f)\n",
        metadata={"nbgrader": {"grade": True, "solution": False, "grade_id": "t"}})
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell("plain()")])
    HideHiddenTests().preprocess(nb, {})
    assert nb.cells[0].source == "check(f)\nafter(f)\n" and nb.cells[1].source == "plain()"
