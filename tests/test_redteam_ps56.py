"""Problem sets 5 and 6 graded as the instructor grades them: ``course release`` and ``course
autograde`` in the sandbox, on one small class per set.

The class: the solution, the untouched stub, mistakes written as a student would write them,
and attacks: handing an exercise to a withheld route of course_pkg (``Network``'s
back-propagation, ``Graph.gradient``, ``graph.topological_order``, ``gradcheck``), central
differences standing in for reverse mode, importing the checks' own reference (only empty shells
exist in the sandbox), and redefining the checks in the kernel (the tests run in the grader).
Every student's score in the gradebook must equal the score the same code earns when its
notebook runs here with the hidden tests (:func:`mutation.score`), except where the attack works
only inside a kernel it controls, whose expected score is written out. The mistake each failed
test names is the tag of the student's mistake.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import mutation
import pytest

pytestmark = pytest.mark.grading
ON_PS5 = pytest.mark.xdist_group("redteam_ps5")  # each class is graded once, on one worker
ON_PS6 = pytest.mark.xdist_group("redteam_ps6")

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "assignments"
BIN = Path(sys.executable).parent
CELL_TIMEOUT = 20


@dataclass
class Sub:
    """A submission: the solution with some answer cells changed (grade id -> (old, new)),
    or the release itself (``stub``), plus extra cells appended."""

    name: str
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    stub: bool = False
    expected: float | None = None   # None: what the same code scores when run here
    tags: dict[str, str] = field(default_factory=dict)   # test cell -> mistake it must name


def source_cells(assignment: str) -> list[dict]:
    return json.loads((COURSE / "source" / assignment / f"{assignment}.ipynb").read_text())[
        "cells"]


def changed_sources(assignment: str, sub: Sub) -> dict[int, str]:
    """Cell index -> the student's source, for each answer cell the submission changes."""
    out = {}
    for index, cell in enumerate(source_cells(assignment)):
        gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if gid in sub.changes:
            old, new = sub.changes[gid]
            text = "".join(cell["source"])
            assert old in text, f"{sub.name}: {old!r} not in {gid}"
            out[index] = text.replace(old, new, 1)
    return out


def write(course: Path, assignment: str, sub: Sub) -> None:
    """The submission as a student hands it in: the release, answer cells filled in."""
    folder = course / "submitted" / sub.name / assignment
    folder.mkdir(parents=True)
    release = json.loads((course / "release" / assignment / f"{assignment}.ipynb").read_text())
    if not sub.stub:
        solved = source_cells(assignment)
        sources = changed_sources(assignment, sub)
        for index, cell in enumerate(release["cells"]):
            if cell["metadata"].get("nbgrader", {}).get("solution"):
                text = sources.get(index, "".join(solved[index]["source"]))
                cell["source"] = "\n".join(line for line in text.split("\n")
                                           if "### BEGIN SOLUTION" not in line
                                           and "### END SOLUTION" not in line)
    for source in sub.extra:
        release["cells"].append({"cell_type": "code", "metadata": {}, "source": source,
                                 "outputs": [], "execution_count": None})
    (folder / f"{assignment}.ipynb").write_text(json.dumps(release))


def expected_score(assignment: str, sub: Sub) -> float:
    if sub.expected is not None:
        return sub.expected
    earned, _ = mutation.score(source_cells(assignment), changed_sources(assignment, sub))
    return earned


def course_cli(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(BIN / "course"), "--course-dir", str(course), *args], env=env,
                          capture_output=True, text=True, timeout=900)


def grade(tmp: Path, assignment: str, subs: list[Sub]) -> dict:
    course = tmp / "course"
    course.mkdir()
    shutil.copy(COURSE / "nbgrader_config.py", course)
    (course / "source").mkdir()
    shutil.copytree(COURSE / "source" / assignment, course / "source" / assignment)
    release = course_cli(course, "release", assignment)
    assert release.returncode == 0, release.stdout + release.stderr
    for sub in subs:
        write(course, assignment, sub)
    grade_all = ("autograde", assignment, "--workers", "2", "--cell-timeout", str(CELL_TIMEOUT))
    run = course_cli(course, *grade_all)
    report = run.stdout
    for _ in range(2):
        # A grader fault (here: a course_pkg edited in the working tree during the run, which
        # the workers detect) is not the students': a plain rerun grades exactly those.
        if run.returncode == 0 or "grader fault" not in run.stdout:
            break
        run = course_cli(course, *grade_all)
        report += run.stdout
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s.student.id: (float(s.code_score), float(s.max_code_score))
                  for s in gb.find_assignment(assignment).submissions}
    return {"course": course, "report": report, "scores": scores}


def report_lines(report: str, student: str) -> list[str]:
    lines = report.splitlines()  # the student's last block: a rerun regrades a grader fault
    start = max(i for i, line in enumerate(lines) if line.startswith(f"{student}:"))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("    - "):
            break
        block.append(line)
    return block


def assert_scored(graded: dict, assignment: str, sub: Sub, max_points: float) -> None:
    """``sub`` scored in the gradebook what its code scores here; full marks for the solution
    only."""
    code, max_code = graded["scores"][sub.name]
    assert max_code == max_points
    assert code == expected_score(assignment, sub), report_lines(graded["report"], sub.name)
    assert code == max_code if sub.name == "solution" else code < max_code


def assert_named(graded: dict, sub: Sub) -> None:
    """The report names, for each test cell of ``sub.tags``, the mistake written there."""
    block = "\n".join(report_lines(graded["report"], sub.name))
    for test, tag in sub.tags.items():
        assert f"{test} failed: [mistake: {tag}]" in block, block


# -- ps5 ------------------------------------------------------------------------------------------
PS5 = [
    Sub("solution"),
    Sub("stub", stub=True, expected=0.0),
    Sub("overwrites_at_forks", {"propagate": ("parent.grad += d * node.grad",
                                              "parent.grad = d * node.grad")},
        tags={"test_propagate": "overwrote at a fork"}),
    Sub("forward_order", {"backward": ("for node in reversed(order):", "for node in order:")},
        tags={"test_backward": "wrong order"}),
    Sub("never_zeroes", {"backward": ("    for node in order:\n        node.grad = 0.0\n", "")},
        tags={"test_backward": "backward twice"}),
    Sub("tanh_plus", {"operations": ("[1.0 - value ** 2]", "[1.0 + value ** 2]")},
        tags={"test_operations": "local gradient"}),
    Sub("layered_by_network", {"layered_gradients": (
        "    g = tanh if", "    sizes = [np.shape(W[0])[1]] + [np.shape(V)[0] for V in W]\n"
        "    net = cp.Network(sizes, activation, 'half_squared_error', weights=W,\n"
        "                     biases=[np.zeros(p) for p in sizes[1:]])\n"
        "    return net.loss_and_gradients(x[None, :], t[None, :])[1]\n    g = tanh if")},
        expected=12.0, tags={"test_layered_gradients": "used course_pkg"}),
    Sub("skip_by_graph", {"skip_gradients": (
        "    g = tanh if", "    from course_pkg.graph import Graph\n"
        "    nodes = {'h1': activation, 'h2': activation, 'u': activation, 'y1': 'identity',\n"
        "             'y2': 'identity'}\n"
        "    G = Graph(['x1', 'x2'], nodes, {tuple(e.split('->')): w[e] for e in EDGES},\n"
        "              ['y1', 'y2'])\n"
        "    return {f'{i}->{j}': v for (i, j), v in G.gradient(x, t).items()}\n"
        "    g = tanh if")},
        expected=12.0, tags={"test_skip_gradients": "used course_pkg"}),
    Sub("order_by_graph", {"topological_order": (
        "    order, seen = [], set()",
        "    from course_pkg.graph import topological_order as kahn\n"
        "    nodes, todo = [], [output]\n"
        "    while todo:\n        node = todo.pop()\n"
        "        if any(node is n for n in nodes):\n            continue\n"
        "        nodes.append(node)\n        todo += node.parents\n"
        "    index = {id(n): k for k, n in enumerate(nodes)}\n"
        "    edges = [(index[id(p)], index[id(n)]) for n in nodes for p in n.parents]\n"
        "    return [nodes[k] for k in kahn(list(range(len(nodes))), edges)]\n"
        "    order, seen = [], set()")},
        tags={"test_topological_order": "used course_pkg"}),
    Sub("layered_by_central_differences", {"layered_gradients": (
        "    g = tanh if",
        "    def error(V):\n"
        "        a = np.asarray(x, dtype=float)\n"
        "        for V_l in V:\n"
        "            a = np.tanh(V_l @ a) if activation == 'tanh' else np.maximum(V_l @ a, 0)\n"
        "        return 0.5 * float(np.sum((t - a) ** 2))\n"
        "    grads = []\n"
        "    for l, W_l in enumerate(W):\n"
        "        grad = np.zeros(np.shape(W_l))\n"
        "        for i in np.ndindex(grad.shape):\n"
        "            up = [np.array(V, dtype=float) for V in W]\n"
        "            down = [np.array(V, dtype=float) for V in W]\n"
        "            up[l][i] += 1e-6\n"
        "            down[l][i] -= 1e-6\n"
        "            grad[i] = (error(up) - error(down)) / 2e-6\n"
        "        grads.append(grad)\n"
        "    return grads\n"
        "    g = tanh if")}, expected=12.0),
    Sub("layered_by_complex_steps", {"layered_gradients": (
        "    g = tanh if",
        "    def error(V):\n"
        "        a = np.asarray(x, dtype=complex)\n"
        "        for V_l in V:\n"
        "            z = V_l @ a\n"
        "            a = np.tanh(z) if activation == 'tanh' else np.where(z.real > 0, z, 0)\n"
        "        return 0.5 * np.sum((t - a) ** 2)\n"
        "    V = [np.array(W_l, dtype=complex) for W_l in W]\n"
        "    grads = []\n"
        "    for W_l in V:\n"
        "        grad = np.zeros(W_l.shape)\n"
        "        for i in np.ndindex(grad.shape):\n"
        "            W_l[i] += 1e-30j\n"
        "            grad[i] = error(V).imag / 1e-30\n"
        "            W_l[i] -= 1e-30j\n"
        "        grads.append(grad)\n"
        "    return grads\n"
        "    g = tanh if")},
        expected=12.0, tags={"test_layered_gradients": "too slow"}),
    Sub("imports_the_reference", {"skip_gradients": (
        "    g = tanh if", "    from course_pkg.checks import reverse_mode\n"
        "    return reverse_mode.engine_skip(w, x, t, activation)\n    g = tanh if")},
        expected=12.0),
    Sub("redefines_the_checks", {"layered_gradients": (
        "    g = tanh if", "    return [np.zeros(np.shape(V)) for V in W]\n    g = tanh if")},
        extra=["def check_layered_gradients(*args, **kwargs):\n    return None\n\n"
               "import course_pkg.checks.reverse_mode as rm\n"
               "rm.check_layered_gradients = check_layered_gradients\n"],
        expected=12.0),
]


@pytest.fixture(scope="module")
def ps5_class(tmp_path_factory) -> dict:
    return grade(tmp_path_factory.mktemp("ps5_class"), "ps5", PS5)


@ON_PS5
@pytest.mark.parametrize("sub", PS5, ids=[s.name for s in PS5])
def test_ps5_scores_as_the_same_code_scores_here(ps5_class, sub):
    assert_scored(ps5_class, "ps5", sub, 14.0)


@ON_PS5
@pytest.mark.parametrize("sub", [s for s in PS5 if s.tags], ids=[s.name for s in PS5 if s.tags])
def test_ps5_names_the_mistake(ps5_class, sub):
    assert_named(ps5_class, sub)


# -- ps6 ------------------------------------------------------------------------------------------
PS6 = [
    Sub("solution"),
    Sub("stub", stub=True, expected=0.0),
    Sub("one_sided", {"central_difference": ("(f(up) - f(down)) / (2 * h)",
                                             "(f(up) - f(x)) / h")},
        tags={"test_central_difference": "not central"}),
    Sub("float64_step_everywhere", {"step_for": (
        "return float(np.finfo(dtype).eps) ** (1 / 3)", "return 1e-6")},
        expected=10.0, tags={"test_step_for": "step too small"}),
    Sub("kink_included", {"layer_errors": ("            keep = ~crosses_kink(X, h)\n",
                                           "            pass\n")},
        tags={"test_layer_errors": "kink not excluded", "test_diagnosis": "false alarm"}),
    Sub("copies_library_0", {"diagnosis": (
        "    found = {}", "    return {'linear': {'W': 1.0}, 'tanh': {'X': 1.0},"
        " 'scale': {'beta': 1.0}}\n    found = {}")}, expected=10.0),
    Sub("relative_error_by_gradcheck", {"relative_error": (
        "    a, b = np.asarray(a", "    from course_pkg.gradcheck import relative_error as r\n"
        "    return r(a, b, floor)\n    a, b = np.asarray(a")},
        tags={"test_relative_error": "used course_pkg"}),
    # the diagnosis read instead of measured: the places of the bugs without a gradient check
    Sub("diagnosis_by_plan", {"diagnosis": (
        "    found = {}", "    from course_pkg.layers import plan\n"
        "    return {layer: {parameter: 1.0} for layer, parameter in plan(variant).values()}\n"
        "    found = {}")},
        expected=10.0, tags={"test_diagnosis": "used course_pkg"}),
    Sub("diagnosis_by_plan_rewritten", {"diagnosis": (
        "    found = {}",
        "    kinds = {'missing transpose': [('linear', 'W'), ('linear', 'X')],\n"
        "             'sign': [('tanh', 'X'), ('scale', 'gamma'), ('scale', 'X'),"
        " ('relu', 'X')],\n"
        "             'wrong bias sum': [('linear', 'b'), ('scale', 'beta')]}\n"
        "    places = [('linear', 'W'), ('tanh', 'X'), ('scale', 'beta')]\n"
        "    if variant != 0:\n"
        "        rng = np.random.default_rng([int(variant), 6])\n"
        "        places = [p[int(rng.integers(len(p)))] for p in kinds.values()]\n"
        "    found = {}\n"
        "    for layer, parameter in places:\n"
        "        found.setdefault(layer, {})[parameter] = "
        "layer_errors(layer, variant, seed)[parameter]\n"
        "    return found\n    found = {}")}, expected=10.0),
    Sub("diagnosis_by_source", {"diagnosis": (
        "    found = {}",
        "    import inspect\n"
        "    import course_pkg.layers as L\n"
        "    scope = {'np': np, 'BUG_KINDS': L.BUG_KINDS}\n"
        "    exec(inspect.getsource(L._places), scope)\n"
        "    found = {}\n"
        "    for layer, parameter in scope['_places'](int(variant), None).values():\n"
        "        found.setdefault(layer, {})[parameter] = "
        "layer_errors(layer, variant, seed)[parameter]\n"
        "    return found\n    found = {}")}, expected=10.0),
    Sub("central_by_gradcheck", {"central_difference": (
        "    x = np.array(x, dtype=float)",
        "    from course_pkg.gradcheck import central_differences\n"
        "    return central_differences(f, x, h)\n    x = np.array(x, dtype=float)")},
        tags={"test_central_difference": "used course_pkg"}),
]


@pytest.fixture(scope="module")
def ps6_class(tmp_path_factory) -> dict:
    return grade(tmp_path_factory.mktemp("ps6_class"), "ps6", PS6)


@ON_PS6
@pytest.mark.parametrize("sub", PS6, ids=[s.name for s in PS6])
def test_ps6_scores_as_the_same_code_scores_here(ps6_class, sub):
    assert_scored(ps6_class, "ps6", sub, 12.0)   # the written answer's 2 points: by hand


@ON_PS6
@pytest.mark.parametrize("sub", [s for s in PS6 if s.tags], ids=[s.name for s in PS6 if s.tags])
def test_ps6_names_the_mistake(ps6_class, sub):
    assert_named(ps6_class, sub)


@ON_PS6
def test_ps6_leaves_the_written_answer_to_the_formgrader(ps6_class):
    block = "\n".join(report_lines(ps6_class["report"], "solution"))
    assert "to grade by hand in the formgrader: kink_answer" in block, block
