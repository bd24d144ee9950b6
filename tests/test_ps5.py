"""Problem set 5 (reverse mode on a graph): its checks, its solution and its mistakes.

The solution is the source notebook's own code, run here; each mistake is the solution with one
line changed as a student would change it, and must be named by its tag. Grading through the
sandboxed ``course`` command is in ``tests/test_redteam_ps56.py`` (and, solution and stub, in
``tests/test_grading_pipeline.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import problem_set_helpers as helpers
import pytest

from course_pkg.checks import reverse_mode as rm
from course_pkg.checks.feedback import Feedback

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "assignments" / "source" / "ps5" / "ps5.ipynb"
CHECKS = {
    "operations": ("check_local_gradients", "local_gradients"),
    "topological_order": ("check_topological_order", "topological_positions"),
    "propagate": ("check_propagate", "propagate_step"),
    "backward": ("check_backward", "gradients"),
    "layered_gradients": ("check_layered_gradients", "layered_gradients"),
    "skip_gradients": ("check_skip_gradients", "skip_gradients"),
}
NUMBER = re.compile(r"\d\.\d{3,}|array\(|\[\s*-?\d+\.\d")


def cells() -> list[dict]:
    return helpers.cells(NOTEBOOK)


def student(changes: dict[str, tuple[str, str]] | None = None) -> dict:
    """The notebook's namespace after its answer cells, with the student's ``changes``."""
    return helpers.student(NOTEBOOK, changes, last="skip_gradients")


def tag_of(check: str, function, seed: int | None = None) -> str | None:
    return helpers.tag_of(rm, check, function, seed)


@pytest.fixture(scope="module")
def solution() -> dict:
    return student()


@pytest.mark.parametrize("cell", sorted(CHECKS))
@pytest.mark.parametrize("seed", [None, 0, 1, 2, 3, 4])
def test_the_solution_passes_visible_and_hidden_cases(solution, cell, seed):
    check, name = CHECKS[cell]
    assert tag_of(check, solution[name], seed) is None


# -- mistakes a student makes, written as the student would ---------------------------------------
WRITTEN = [
    ("propagate", "parent.grad += d * node.grad", "parent.grad = d * node.grad",
     "overwrote at a fork"),
    ("propagate", "parent.grad += d * node.grad", "parent.grad += d", "chain factor missing"),
    ("backward", "for node in reversed(order):", "for node in order:", "wrong order"),
    ("backward", "    for node in order:\n        node.grad = 0.0\n", "", "backward twice"),
    ("backward", "output.grad = 1.0", "output.grad = -1.0", "sign flipped"),
    ("operations", "[1.0 - value ** 2]", "[1.0 + value ** 2]", "local gradient"),
    ("operations", "[1.0 - value ** 2]", "[1.0 - u.value ** 2]", "local gradient"),
    ("operations", "[v.value, u.value]", "[u.value, v.value]", "local gradient"),
    ("operations", "[p * u.value ** (p - 1)]", "[u.value ** (p - 1)]", "local gradient"),
    ("operations", "[p * u.value ** (p - 1)]", "[p * u.value ** p]", "local gradient"),
    ("operations", "[1.0 - value ** 2]", "[1.0 - math.tanh(value) ** 2]",
     "S' of a instead of z"),
    ("operations", "[value])\n", "[-value])\n", "sign flipped"),
    ("topological_order", "        if node in seen:\n            return\n", "",
     "visited twice"),
    ("topological_order", "        for parent in node.parents:\n            visit(parent)\n"
     "        order.append(node)", "        order.append(node)\n"
     "        for parent in node.parents:\n            visit(parent)", "wrong order"),
]


@pytest.mark.parametrize("cell, old, new, tag", WRITTEN,
                         ids=[f"{c}:{t}:{i}" for i, (c, _, _, t) in enumerate(WRITTEN)])
def test_a_written_mistake_is_named(cell, old, new, tag):
    namespace = student({cell: (old, new)})
    check, name = CHECKS[cell]
    assert tag_of(check, namespace[name]) == tag
    assert tag_of(check, namespace[name], seed=3) == tag


@pytest.mark.parametrize("cell", ["layered_gradients", "skip_gradients"])
def test_mistakes_in_the_engine_carry_to_the_networks(cell):
    """A network built on an engine that overwrites at forks gets that mistake named."""
    namespace = student({"propagate": ("parent.grad += d * node.grad",
                                       "parent.grad = d * node.grad")})
    check, name = CHECKS[cell]
    assert tag_of(check, namespace[name], seed=1) == "overwrote at a fork"


VARIANTS = [(check, exercise, tag) for check, exercise in (
    ("check_local_gradients", rm.LOCAL), ("check_propagate", rm.PROPAGATE),
    ("check_backward", rm.BACKWARD), ("check_layered_gradients", rm.LAYERED),
    ("check_skip_gradients", rm.SKIP)) for tag in exercise.mistakes]


@pytest.mark.parametrize("check, exercise, tag", VARIANTS,
                         ids=[f"{c}:{t}" for c, _, t in VARIANTS])
def test_every_variant_of_the_tables_is_named_without_a_number(check, exercise, tag,
                                                               monkeypatch):
    # The variants are built from the checks' own functions, which the checks switch off
    # while a student's function runs; a student's code that computes the same is not.
    from course_pkg.checks import feedback

    if hasattr(feedback, "answer_functions"):
        monkeypatch.setattr(feedback, "answer_functions", lambda: ())
    variant = exercise.mistakes[tag]

    def answer(*args):
        return variant(*args)

    try:
        getattr(rm, check)(answer, seed=2)
    except Feedback as err:
        assert err.tag == tag
        assert not NUMBER.search(str(err)), str(err)
    else:
        pytest.fail(f"the variant {tag!r} passed")


@pytest.mark.parametrize("mistake", ["visited twice", "node missing", "wrong order"])
def test_the_order_check_names_what_is_wrong_with_an_order(mistake):
    parents_of = [[], [0], [1], [2, 0], [3, 3]]
    answers = {"visited twice": [0, 1, 0, 2, 3, 4], "node missing": [0, 1, 2, 4],
               "wrong order": [1, 0, 2, 3, 4]}
    with pytest.raises(Feedback) as err:
        rm._check_order(answers[mistake], parents_of)
    assert err.value.tag == mistake
    rm._check_order([0, 1, 2, 3, 4], parents_of)


# -- delegation and finite differences in place of reverse mode -----------------------------------
DELEGATIONS = [
    ("layered_gradients", "    ### BEGIN SOLUTION\n",
     "    ### BEGIN SOLUTION\n    sizes = [np.shape(W[0])[1]] + [np.shape(V)[0] for V in W]\n"
     "    net = cp.Network(sizes, activation, 'half_squared_error', weights=W,\n"
     "                     biases=[np.zeros(p) for p in sizes[1:]])\n"
     "    return net.loss_and_gradients(x[None, :], t[None, :])[1]\n"),
    ("skip_gradients", "    ### BEGIN SOLUTION\n",
     "    ### BEGIN SOLUTION\n    from course_pkg.graph import Graph\n"
     "    nodes = {'h1': activation, 'h2': activation, 'u': activation, 'y1': 'identity',\n"
     "             'y2': 'identity'}\n"
     "    G = Graph(['x1', 'x2'], nodes, {tuple(e.split('->')): w[e] for e in EDGES},\n"
     "              ['y1', 'y2'])\n"
     "    return {f'{i}->{j}': v for (i, j), v in G.gradient(x, t).items()}\n"),
    ("topological_order", "    ### BEGIN SOLUTION\n",
     "    ### BEGIN SOLUTION\n    from course_pkg.graph import topological_order as order\n"
     "    nodes, edges, todo = [], [], [output]\n"
     "    while todo:\n        node = todo.pop()\n"
     "        if any(node is n for n in nodes):\n            continue\n"
     "        nodes.append(node)\n        todo += node.parents\n"
     "    index = {id(n): k for k, n in enumerate(nodes)}\n"
     "    edges = [(index[id(p)], index[id(n)]) for n in nodes for p in n.parents]\n"
     "    return [nodes[k] for k in order(list(range(len(nodes))), edges)]\n"),
]


DELEGATIONS.append(("operations", "    value = math.tanh(u.value)\n    return Node(",
                    "    from course_pkg.activations import get\n"
                    "    value = math.tanh(u.value)\n"
                    "    return Node(value, [u], [float(get('tanh')[1](u.value, np))])\n"
                    "    return Node("))


@pytest.mark.parametrize("cell, old, new", DELEGATIONS, ids=[d[0] for d in DELEGATIONS])
def test_delegating_to_the_package_is_refused(cell, old, new):
    source = student()
    namespace = _with_cell(cell, old, new, source)
    check, name = CHECKS[cell]
    assert tag_of(check, namespace[name]) == "used course_pkg"


def _with_cell(grade_id: str, old: str, new: str, namespace: dict) -> dict:
    """``namespace`` with the answer cell ``grade_id`` rewritten (its solution markers kept
    where ``old`` names one)."""
    [cell] = [c for c in cells() if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id]
    source = "".join(cell["source"]).replace(old, new, 1)
    exec(compile(source, f"<{grade_id}>", "exec"), namespace)
    return namespace


FINITE_DIFFERENCES = '''
def _forward_error(W, x, t, activation):
    g = np.tanh if activation == "tanh" else (lambda z: np.maximum(z, 0.0))
    a = np.asarray(x, dtype=float)
    for W_l in W:
        a = g(W_l @ a)
    return 0.5 * float(np.sum((t - a) ** 2))


def layered_gradients(W, x, t, activation="tanh", h=1e-6):
    grads = []
    for l, W_l in enumerate(W):
        grad = np.zeros_like(W_l, dtype=float)
        for index in np.ndindex(W_l.shape):
            up = [np.array(V, dtype=float) for V in W]
            down = [np.array(V, dtype=float) for V in W]
            up[l][index] += h
            down[l][index] -= h
            grad[index] = (_forward_error(up, x, t, activation)
                           - _forward_error(down, x, t, activation)) / (2 * h)
        grads.append(grad)
    return grads
'''


def test_central_differences_in_place_of_reverse_mode_lose_the_points(solution):
    """Finite differences agree with back-propagation to about 1e-9, but not at a relu node
    whose input is exactly 0, which the hidden and visible cases contain."""
    namespace = dict(solution)
    exec(FINITE_DIFFERENCES, namespace)
    assert tag_of("check_layered_gradients", namespace["layered_gradients"]) is not None
    for seed in range(5):
        assert tag_of("check_layered_gradients", namespace["layered_gradients"], seed) \
            is not None


COMPLEX_STEPS = '''
def _error(W, x, t, activation):
    a = np.asarray(x, dtype=complex)
    for W_l in W:
        z = W_l @ a
        a = np.tanh(z) if activation == "tanh" else np.where(z.real > 0, z, 0)
    return 0.5 * np.sum((t - a) ** 2)


def layered_gradients(W, x, t, activation="tanh", h=1e-30):
    V = [np.array(W_l, dtype=complex) for W_l in W]
    grads = []
    for W_l in V:
        grad = np.zeros(W_l.shape)
        for index in np.ndindex(W_l.shape):
            W_l[index] += 1j * h
            grad[index] = _error(V, x, t, activation).imag / h
            W_l[index] -= 1j * h
        grads.append(grad)
    return grads
'''


def test_the_solution_costs_what_reverse_mode_costs(solution):
    from course_pkg.checks import cost

    cost.check_layered_gradients_cost(solution["layered_gradients"])
    cost.check_backward_cost(solution["gradients"])
    W, _, _ = cost.cost_network(0)
    parents_of, _ = cost.cost_graph(0)
    assert sum(W_l.size for W_l in W) > 20_000 and len(parents_of) > 10_000


def test_complex_steps_in_place_of_reverse_mode_pass_every_check_but_the_cost(solution):
    """Complex-step derivatives of the student's own forward pass (with a relu whose slope is
    0 at the kink) are exact to rounding: only what they cost, one forward pass per weight,
    gives them away. That they are too slow is graded through the sandbox in
    ``tests/test_redteam_ps56.py`` (submission ``layered_by_complex_steps``: about 3 s of CPU,
    spent once)."""
    namespace = dict(solution)
    exec(COMPLEX_STEPS, namespace)
    for seed in (None, 0, 1):
        assert tag_of("check_layered_gradients", namespace["layered_gradients"], seed) is None


def test_a_backward_that_searches_a_list_of_visited_nodes_is_too_slow():
    """Right on every small graph, quadratic in the size of the graph."""
    from course_pkg.checks import cost

    namespace = student({"topological_order": (
        "order, seen = [], set()\n\n    def visit(node):\n        if node in seen:\n"
        "            return\n        seen.add(node)",
        "order, seen = [], []\n\n    def visit(node):\n        if node in seen:\n"
        "            return\n        seen.append(node)")})
    assert tag_of("check_backward", namespace["gradients"], seed=0) is None
    with pytest.raises(Feedback) as err:
        cost.check_backward_cost(namespace["gradients"])
    assert err.value.tag == "too slow"


# -- the references agree with each other and with central differences ----------------------------
@pytest.mark.parametrize("seed", range(4))
def test_the_engine_agrees_with_network_and_graph(seed):
    for args in rm._layered_cases(np.random.default_rng(seed), True):
        for mine, theirs in zip(rm.engine_layered(*args), rm.package_layered(*args),
                                strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-14)
    for args in rm._skip_cases(np.random.default_rng(seed), True):
        mine, theirs = rm.engine_skip(*args), rm.package_skip(*args)
        for edge in rm.SKIP_EDGES:
            assert mine[edge] == pytest.approx(theirs[edge], rel=1e-12, abs=1e-14)


def test_the_engine_agrees_with_central_differences_away_from_the_kink():
    from course_pkg.gradcheck import central_differences

    rng = np.random.default_rng(8)
    W = [rng.normal(size=(3, 2)), rng.normal(size=(2, 3))]
    x, t = rng.normal(size=2), rng.uniform(-1, 1, size=2)
    grads = rm.engine_layered(W, x, t, "tanh")
    for l in range(2):
        def error(W_l, l=l):
            V = [w.copy() for w in W]
            V[l] = W_l
            a = x
            for w in V:
                a = np.tanh(w @ a)
            return 0.5 * float(np.sum((t - a) ** 2))
        np.testing.assert_allclose(grads[l], central_differences(error, W[l]), rtol=1e-6,
                                   atol=1e-9)


def test_each_local_derivative_is_the_derivative_of_its_value():
    rng = np.random.default_rng(3)
    for op, values, p in rm._local_cases(rng, True):
        value, local = rm.local_derivatives(op, values, p)
        for k in range(len(values)):
            h = 1e-6
            up, down = list(values), list(values)
            up[k] += h
            down[k] -= h
            slope = (rm.local_derivatives(op, up, p)[0] - rm.local_derivatives(op, down, p)[0])
            assert local[k] == pytest.approx(slope / (2 * h), rel=1e-6, abs=1e-8), (op, k)


def test_the_sandbox_withholds_every_route_to_the_answers():
    for name in ("course_pkg.graph:topological_order", "course_pkg.graph:Graph.gradient",
                 "course_pkg.network:Network.loss_and_gradients",
                 "course_pkg.gradcheck:central_differences"):
        assert name in rm.WITHHELD


def test_single_token_mutations_of_the_solution_lose_points():
    import mutation

    killed, total, survivors = mutation.mutation_score(NOTEBOOK)
    assert total >= 100
    assert killed / total >= 0.9, [str(s) for s in survivors]
