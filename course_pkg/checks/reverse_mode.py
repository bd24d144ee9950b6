"""Checks of assignment ps5: a scalar reverse-mode engine on a computational graph.

The student writes a ``Node`` (a number, its parents, the local derivative of the node with
respect to each parent, and ``grad``), the operations add, multiply, power, exp, tanh, relu and
the weighted sum in_j = sum_i w_ij a_i of ``book/computational_graphs.md``, the topological
order, the step that sends a node's gradient to its parents (accumulating at forks) and
``backward()``. With it they differentiate seed ``003_00675a7c1b711b2c.txt``'s layered network
and the chapter's network with skip connections.

``grad`` of a node v is dE/dv, the derivative of the output node with respect to v. For the
input in_j of a computing node it is -Delta_j in the chapter's notation.

The grader calls the student's functions with plain data, so every exercise is reached through a
function of the notebook that builds the student's nodes from lists:
``local_gradients(op, values, exponent)``, ``topological_positions(parents_of)``,
``propagate_step(grads, parents, local, grad)``, ``gradients(parents_of, local_of, repeat)``,
``layered_gradients(W, x, t, activation)`` and ``skip_gradients(w, x, t, activation)``.

The reference engine below (:class:`_Node`) is the checks' own, with a switch for each known
mistake, so that a wrong answer can be named. It lives here, outside the grading sandbox.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from course_pkg import activations, graph, helpers
from course_pkg.checks.feedback import MISTAKES, Exercise, Feedback, call
from course_pkg.checks.guard import backward_passes, reference_functions, withheld
from course_pkg.network import Network

CHAPTER = "book/computational_graphs.md"
SEED = "003_00675a7c1b711b2c.txt"
FORBIDDEN = (graph.topological_order, graph.Graph.backward_trace, graph.Graph.error_signals,
             graph.Graph.gradient, graph.Graph.update, activations.tanh_prime,
             activations.relu_prime, helpers.tanh_prime, *backward_passes())
"""What a ps5 answer may not call: the package's topological order, its backward passes, and
the derivatives of tanh and relu (the local gradients of exercise 1)."""
WITHHELD = withheld(*FORBIDDEN, *reference_functions())

MISTAKES.update({
    "overwrote at a fork": "a gradient is overwritten where it must be added. A node that "
                           "feeds several others (a fork) receives one contribution from "
                           "each of them, and its gradient is their sum: use +=, not =.",
    "wrong order": "a node sent its gradient back before it had received everything from the "
                   "nodes it feeds. Visit the nodes in reverse topological order: every node "
                   "after all of its children.",
    "backward twice": "calling backward() a second time adds to the gradients of the first "
                      "call. backward() must first set the gradient of every node of the "
                      "graph to 0, and only then set the output's to 1.",
    "local gradient": "a local derivative has the wrong sign or the wrong factor. Derive "
                      "d(out)/d(in) of the operation again: for u * v it is v with respect "
                      "to u; for u^p it is p u^(p-1); for tanh it is 1 - tanh^2.",
    "chain factor missing": "the upstream gradient is missing. What a node sends to a parent "
                            "is its local derivative times its own gradient (the chain "
                            "rule), not the local derivative alone.",
    "visited twice": "a node appears more than once in the order. A node that feeds several "
                     "others is reached along several paths: mark it as visited the first "
                     "time and skip it afterwards.",
    "node missing": "some nodes of the graph are missing from the order: every node that "
                    "the output depends on must appear once.",
})

OPS = ("add", "multiply", "power", "exp", "tanh", "relu", "weighted_sum")


def section(name: str) -> str:
    return f"{CHAPTER}, section '{name}'"


# -- the reference engine, with a switch per mistake -------------------------------------------
class _Node:
    """The checks' scalar node: value, parents, local derivatives, grad."""

    __slots__ = ("value", "parents", "local", "grad")

    def __init__(self, value: float, parents: Sequence[_Node] = (),
                 local: Sequence[float] = ()) -> None:
        self.value = float(value)
        self.parents = list(parents)
        self.local = [float(d) for d in local]
        self.grad = 0.0


def local_derivatives(op: str, values: Sequence[float], exponent: float = 2.0,
                      mistake: str | None = None) -> tuple[float, list[float]]:
    """(value, [d value / d parent]) of one operation on the numbers ``values``.

    ``weighted_sum`` takes [w_1..w_n, a_1..a_n] and computes sum_i w_i a_i. ``mistake`` is
    ``None``, ``"local gradient"`` (the characteristic wrong formula of each operation),
    ``"sign flipped"`` or ``"S' of a instead of z"`` (tanh only).
    """
    v = [float(x) for x in values]
    wrong = mistake == "local gradient"
    if op == "add":
        value, local = v[0] + v[1], [1.0, 1.0]
        if wrong:
            local = [1.0, -1.0]
    elif op == "multiply":
        value, local = v[0] * v[1], ([v[0], v[1]] if wrong else [v[1], v[0]])
    elif op == "power":
        p = float(exponent)
        value = v[0] ** p
        local = [p * v[0] ** p] if wrong else [p * v[0] ** (p - 1.0)]
    elif op == "exp":
        value = math.exp(v[0])
        local = [v[0]] if wrong else [value]
    elif op == "tanh":
        value = math.tanh(v[0])
        local = [1.0 + value * value] if wrong else [1.0 - value * value]
        if mistake == "S' of a instead of z":
            local = [1.0 - math.tanh(value) ** 2]
    elif op == "relu":
        value = max(v[0], 0.0)
        local = [value] if wrong else [1.0 if v[0] > 0.0 else 0.0]
    elif op == "weighted_sum":
        n = len(v) // 2
        w, a = v[:n], v[n:]
        value = math.fsum(wi * ai for wi, ai in zip(w, a, strict=True))
        local = [*w, *a] if wrong else [*a, *w]
    else:
        raise ValueError(f"unknown operation {op!r}; expected one of {OPS}")
    if mistake == "sign flipped":
        local = [-d for d in local]
    if mistake == "local gradient, second form":
        local = _second_form(op, v, exponent, value)
    return value, local


def _second_form(op: str, v: list[float], exponent: float, value: float) -> list[float]:
    """The other usual wrong local derivative of each operation (a factor left out, or the
    derivative taken at the wrong point)."""
    if op == "add":
        return [1.0, 0.0]
    if op == "multiply":
        return [1.0, 1.0]
    if op == "power":
        return [v[0] ** (float(exponent) - 1.0)]
    if op == "exp":
        return [1.0]
    if op == "tanh":
        return [1.0 - v[0] * v[0]]
    if op == "relu":
        return [1.0 if v[0] < 0.0 else 0.0]
    n = len(v) // 2
    return [1.0] * (2 * n)


def _apply(op: str, parents: Sequence[_Node], exponent: float = 2.0,
           mistake: str | None = None) -> _Node:
    value, local = local_derivatives(op, [p.value for p in parents], exponent, mistake)
    return _Node(value, parents, local)


def order(output: _Node) -> list[_Node]:
    """Every node the output depends on, each after all its parents (depth first)."""
    seen: set[int] = set()
    found: list[_Node] = []
    stack: list[tuple[_Node, bool]] = [(output, False)]
    while stack:
        node, done = stack.pop()
        if done:
            found.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack += [(p, False) for p in reversed(node.parents) if id(p) not in seen]
    return found


def _breadth_first(output: _Node) -> list[_Node]:
    """The nodes in the order a breadth-first search from the output meets them: a fork can
    come before one of its children (the "wrong order" mistake)."""
    seen, queue, found = {id(output)}, [output], []
    while queue:
        node = queue.pop(0)
        found.append(node)
        for p in node.parents:
            if id(p) not in seen:
                seen.add(id(p))
                queue.append(p)
    return found


def propagate(node: _Node, mistake: str | None = None) -> None:
    """parent.grad += d(node)/d(parent) * node.grad for every parent (a parent listed twice
    receives twice)."""
    for parent, d in zip(node.parents, node.local, strict=True):
        if mistake == "overwrote at a fork":
            parent.grad = d * node.grad
        elif mistake == "chain factor missing":
            parent.grad += d
        else:
            parent.grad += d * node.grad


def backward(output: _Node, mistake: str | None = None, repeat: int = 1) -> None:
    """Reverse mode from ``output``, ``repeat`` times; ``mistake`` builds a wrong variant
    (``"wrong order"`` visits breadth first, ``"forward order"`` in topological order)."""
    for _ in range(repeat):
        visit = (_breadth_first(output) if mistake == "wrong order" else
                 order(output) if mistake == "forward order" else order(output)[::-1])
        if mistake != "backward twice":
            for node in visit:
                node.grad = 0.0
        output.grad = -1.0 if mistake == "sign flipped" else 1.0
        for node in visit:
            propagate(node, mistake if mistake in ("overwrote at a fork",
                                                   "chain factor missing") else None)


# -- random graphs --------------------------------------------------------------------------------
def _random_parents(rng: np.random.Generator, size: int) -> list[list[int]]:
    """parents_of for a random graph of ``size`` nodes with forks; the last node is the output
    and every node is reached from it."""
    leaves = int(rng.integers(2, 4))
    parents_of: list[list[int]] = [[] for _ in range(leaves)]
    unused = set(range(leaves))
    while len(parents_of) < size - 1:
        k = len(parents_of)
        count = int(rng.integers(1, 4))
        pool = sorted(unused) if unused and rng.random() < 0.6 else list(range(k))
        first = int(rng.choice(pool))
        others = [int(rng.integers(0, k)) for _ in range(count - 1)]  # may repeat: x * x
        parents_of.append([first, *others])
        unused -= {first, *others}
        unused.add(k)
    parents_of.append(sorted(unused) if unused else [len(parents_of) - 1])
    return parents_of


def _fork_graph() -> list[list[int]]:
    """A graph in which a breadth-first order sends a fork's gradient too early: node 0 feeds
    1 and 3, 1 feeds 2, 2 feeds 3, and the output 4 is 3 used twice (3 * 3)."""
    return [[], [0], [1], [2, 0], [3, 3]]


# -- exercise 1: local derivatives -----------------------------------------------------------------
def _local_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    def values(op: str) -> list[float]:
        if op == "weighted_sum":
            n = int(rng.integers(2, 5)) if hidden else 3
            return [float(v) for v in rng.normal(0, 1.2, size=2 * n)]
        if op in ("add", "multiply"):
            return [float(v) for v in rng.normal(0, 1.5, size=2)]
        return [float(rng.normal(0, 1.2))]

    cases = []
    for op in OPS:
        if op == "power":
            for p in ((2.0, 3.0, -1.0, 0.5) if not hidden else
                      (2.0, float(rng.integers(3, 6)), -float(rng.integers(1, 3)), 1.5)):
                base = float(rng.uniform(0.3, 2.0)) * (1.0 if p % 1 else -1.0)
                cases.append((op, [base], p))
        elif op == "relu":
            cases += [(op, [float(rng.uniform(0.1, 2.0))], 2.0),
                      (op, [-float(rng.uniform(0.1, 2.0))], 2.0)]
        else:
            for _ in range(2 if hidden else 1):
                cases.append((op, values(op), 2.0))
    return cases


def _local_correct(op: str, values: Sequence[float], exponent: float = 2.0) -> tuple:
    value, local = local_derivatives(op, values, exponent)
    return value, np.array(local)


def _local_variant(tag: str) -> Callable[..., tuple]:
    def wrong(op: str, values: Sequence[float], exponent: float = 2.0) -> tuple:
        value, local = local_derivatives(op, values, exponent, mistake=tag)
        return value, np.array(local)
    return wrong


LOCAL = Exercise(
    title="the value and local derivatives of each operation",
    chapter=section("The backward pass: a sum over the children"),
    correct=_local_correct,
    mistakes={tag: _local_variant(tag) for tag in (
        "local gradient", "sign flipped", "S' of a instead of z")},
    cases=_local_cases,
    hint="each operation stores, for each parent in the order of its parents, the derivative "
         "of its output with respect to that parent, evaluated at the parents' values.",
    forbidden=FORBIDDEN,
    returns=("value", "local"),
)


# -- exercise 2: the topological order ---------------------------------------------------------
def _order_cases(rng: np.random.Generator, hidden: bool) -> list[list[list[int]]]:
    if not hidden:
        return [_fork_graph(), [[], [], [0, 1], [2, 0], [3, 2, 1]]]
    return [_random_parents(rng, int(rng.integers(6, 14))) for _ in range(3)]


ORDER_EXERCISE = Exercise(
    title="the topological order of the nodes",
    chapter=section("Topological order"),
    correct=lambda parents_of: None,
    mistakes={},
    cases=lambda rng, hidden: [(p,) for p in _order_cases(rng, hidden)],
    hint="visit a node's parents before the node itself, and each node only once.",
    forbidden=FORBIDDEN,
)


def _check_order(positions: Any, parents_of: Sequence[Sequence[int]]) -> None:
    """Raise :class:`Feedback` unless ``positions`` lists every node once, parents first."""
    __tracebackhide__ = True
    try:
        found = [int(p) for p in positions]
    except (TypeError, ValueError):
        raise Feedback("shape", ORDER_EXERCISE, "The order must be a list of nodes.") from None
    if len(set(found)) != len(found):
        raise Feedback("visited twice", ORDER_EXERCISE)
    if sorted(found) != list(range(len(parents_of))):
        raise Feedback("node missing", ORDER_EXERCISE)
    place = {node: k for k, node in enumerate(found)}
    for node, parents in enumerate(parents_of):
        if any(place[p] > place[node] for p in parents):
            raise Feedback("wrong order", ORDER_EXERCISE, "A node comes before one of its "
                           "parents: the forward pass could not compute it.")


# -- exercise 3: one node sends its gradient back (accumulating at forks) -------------------------
def propagate_step(grads: Sequence[float], parents: Sequence[int], local: Sequence[float],
                   grad: float, mistake: str | None = None) -> np.ndarray:
    """The parents' grads after a node with ``grad`` and these ``parents`` (indices into a pool
    whose grads start at ``grads``, repeats allowed) and ``local`` derivatives propagates."""
    pool = [_Node(0.0) for _ in grads]
    for node, g in zip(pool, grads, strict=True):
        node.grad = float(g)
    child = _Node(0.0, [pool[i] for i in parents], local)
    child.grad = float(grad)
    propagate(child, mistake)
    return np.array([node.grad for node in pool])


def _propagate_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    if not hidden:
        return [([0.5, -1.0, 2.0], [0, 1, 0], [1.5, -2.0, 0.5], 3.0), ([0.0], [0, 0], [2.0, 3.0],
                                                                          -1.5)]
    cases = []
    for _ in range(3):
        pool = int(rng.integers(2, 5))
        parents = [int(i) for i in rng.integers(0, pool, size=int(rng.integers(pool, 2 * pool)))]
        parents[0] = parents[-1]  # a fork inside one node: the same parent twice
        cases.append(([float(g) for g in rng.normal(size=pool)], parents,
                      [float(d) for d in rng.normal(0, 2, size=len(parents))],
                      float(rng.normal(0, 2))))
    return cases


PROPAGATE = Exercise(
    title="the chain-rule step of one node (accumulation at a fork)",
    chapter=section("The backward pass: a sum over the children"),
    correct=propagate_step,
    mistakes={tag: (lambda t: lambda g, p, d, up: propagate_step(g, p, d, up, t))(tag)
              for tag in ("overwrote at a fork", "chain factor missing")}
    | {"sign flipped": lambda g, p, d, up: propagate_step(g, p, [-x for x in d], up)},
    cases=_propagate_cases,
    hint="for each parent, in the order of the parents, add the local derivative times this "
         "node's own gradient to the parent's gradient; keep what the parent already had.",
    forbidden=FORBIDDEN,
)


# -- exercise 4: backward() --------------------------------------------------------------------
def graph_gradients(parents_of: Sequence[Sequence[int]], local_of: Sequence[Sequence[float]],
                    repeat: int = 1, mistake: str | None = None) -> np.ndarray:
    """The grad of every node after ``repeat`` calls of backward() on the last node."""
    nodes: list[_Node] = []
    for parents, local in zip(parents_of, local_of, strict=True):
        nodes.append(_Node(0.0, [nodes[i] for i in parents], local))
    backward(nodes[-1], mistake, repeat)
    return np.array([node.grad for node in nodes])


def _backward_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    shapes = ([_fork_graph(), [[], [], [0, 1], [2, 0], [3, 2, 1]]] if not hidden else
              [_fork_graph(), *(_random_parents(rng, int(rng.integers(6, 14))) for _ in range(3))])
    cases = []
    for k, parents_of in enumerate(shapes):
        local_of = [[float(d) for d in rng.uniform(0.5, 2.0, size=len(p)) * rng.choice(
            [-1.0, 1.0], size=len(p))] for p in parents_of]
        cases.append((parents_of, local_of, 2 if k % 2 else 1))
    return cases


BACKWARD = Exercise(
    title="backward(): the gradient of every node",
    chapter=section("The backward pass: a sum over the children"),
    correct=graph_gradients,
    mistakes={tag: (lambda t: lambda p, d, r: graph_gradients(p, d, r, t))(tag) for tag in (
        "overwrote at a fork", "wrong order", "backward twice", "chain factor missing",
        "sign flipped")},
    cases=_backward_cases,
    hint="set every gradient of the graph to 0, the output's to 1, then let each node, in "
         "reverse topological order, send its gradient to its parents.",
    forbidden=FORBIDDEN,
)


# -- exercise 5: seed 003's layered network ------------------------------------------------------
def engine_layered(W: Sequence[np.ndarray], x: np.ndarray, t: np.ndarray, activation: str,
                   mistake: str | None = None) -> tuple[np.ndarray, ...]:
    """dE/dW_l of E = 1/2 sum_k (t_k - a_k)^2 through the reference engine, no biases."""
    local_mistake = mistake if mistake in ("local gradient", "S' of a instead of z") else None
    weights = [[[_Node(w) for w in row] for row in np.asarray(W_l)] for W_l in W]
    a = [_Node(v) for v in x]
    for rows in weights:
        a = [_apply(activation, [_apply("weighted_sum", [*row, *a])], mistake=local_mistake)
             for row in rows]
    terms = [_apply("power", [_apply("add", [_Node(t_k), _apply("multiply", [_Node(-1.0), a_k])])],
                    2.0) for t_k, a_k in zip(t, a, strict=True)]
    total = terms[0]
    for term in terms[1:]:
        total = _apply("add", [total, term])
    error = _apply("multiply", [_Node(0.5), total])
    backward(error, None if local_mistake else mistake)
    return tuple(np.array([[w.grad for w in row] for row in rows]) for rows in weights)


def package_layered(W: Sequence[np.ndarray], x: np.ndarray, t: np.ndarray,
                    activation: str = "tanh") -> tuple[np.ndarray, ...]:
    """The same gradients from :class:`course_pkg.Network` (zero biases, one example)."""
    sizes = [np.shape(W[0])[1], *(np.shape(W_l)[0] for W_l in W)]
    net = Network(sizes, activation, "half_squared_error", weights=list(W),
                  biases=[np.zeros(p) for p in sizes[1:]])
    _, dW, _ = net.loss_and_gradients(np.asarray(x)[None, :], np.asarray(t)[None, :])
    return tuple(np.asarray(d) for d in dW)


def _layered_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    layouts = ([[3, 3, 3], [2, 4, 3, 2]] if not hidden else
               [[int(rng.integers(2, 5))] * 3,
                [int(v) for v in rng.choice(np.arange(1, 7), size=4, replace=False)]])
    cases = []
    for k, sizes in enumerate(layouts):
        for activation in ("tanh", "relu"):
            W = [rng.normal(0, 1.2 / np.sqrt(n), size=(m, n))
                 for n, m in zip(sizes[:-1], sizes[1:], strict=True)]
            x = rng.normal(size=sizes[0])
            if activation == "relu":
                W[0][0] = 0.0  # in = 0 exactly: a kink, where relu' is 0 by convention
                x = np.abs(x) + 0.1
            t = rng.uniform(-1, 1, size=sizes[-1]) * (1 + 9 * k)
            cases.append(([W_l for W_l in W], x, t, activation))
    return cases


def _layered_variant(tag: str) -> Callable[..., tuple]:
    if tag == "transposed":
        return lambda W, x, t, g: tuple(d.T for d in engine_layered(W, x, t, g))
    return lambda W, x, t, g: engine_layered(W, x, t, g, mistake=tag)


LAYERED = Exercise(
    title=f"the gradients of {SEED}'s layered network with your engine",
    chapter=section("Layered networks and Bishop's network"),
    correct=package_layered,
    mistakes={tag: _layered_variant(tag) for tag in (
        "transposed", "sign flipped", "local gradient", "S' of a instead of z",
        "overwrote at a fork", "wrong order", "chain factor missing")},
    cases=_layered_cases,
    hint="one node per weight, one weighted sum and one activation per unit, the error "
         "1/2 sum_k (t_k - a_k)^2 built from add, multiply and power, one backward(); "
         "entry [k, i] of layer l's gradient is the grad of the weight from unit i to unit k.",
    forbidden=FORBIDDEN,
)


# -- exercise 6: the chapter's network with skip connections ------------------------------------
SKIP_INPUTS = ("x1", "x2")
SKIP_HIDDEN = ("h1", "h2", "u")
SKIP_OUTPUTS = ("y1", "y2")
SKIP_EDGES = ("x1->h1", "x2->h1", "x1->h2", "x2->h2", "h1->u", "h2->u", "u->y1", "h1->y1",
              "u->y2", "h2->y2")
"""The graph of the chapter's section 'A network with skip connections': tanh (or relu) nodes
h1, h2, u and linear outputs y1, y2; h1 -> y1 and h2 -> y2 skip u. Edges are named "i->j"."""


def skip_graph(w: Mapping[str, float], activation: str = "tanh") -> graph.Graph:
    """The skip network as a :class:`course_pkg.graph.Graph`."""
    nodes = {**{j: activation for j in SKIP_HIDDEN}, **{k: "identity" for k in SKIP_OUTPUTS}}
    edges = {tuple(e.split("->")): float(w[e]) for e in SKIP_EDGES}
    return graph.Graph(SKIP_INPUTS, nodes, edges, SKIP_OUTPUTS)


def package_skip(w: Mapping[str, float], x: Mapping[str, float], t: Mapping[str, float],
                 activation: str = "tanh") -> dict[str, float]:
    """dE/dw_ij of the skip network from :meth:`course_pkg.graph.Graph.gradient`."""
    grad = skip_graph(w, activation).gradient(x, t)
    return {f"{i}->{j}": float(v) for (i, j), v in grad.items()}


def engine_skip(w: Mapping[str, float], x: Mapping[str, float], t: Mapping[str, float],
                activation: str = "tanh", mistake: str | None = None) -> dict[str, float]:
    """The same gradients through the reference engine."""
    local_mistake = mistake if mistake in ("local gradient", "S' of a instead of z") else None
    weight = {e: _Node(w[e]) for e in SKIP_EDGES}
    a = {i: _Node(x[i]) for i in SKIP_INPUTS}
    for j in (*SKIP_HIDDEN, *SKIP_OUTPUTS):
        incoming = [e for e in SKIP_EDGES if e.endswith(f"->{j}")]
        total = _apply("weighted_sum", [*(weight[e] for e in incoming),
                                        *(a[e.split("->")[0]] for e in incoming)])
        a[j] = total if j in SKIP_OUTPUTS else _apply(activation, [total], mistake=local_mistake)
    terms = [_apply("power", [_apply("add", [_Node(t[k]), _apply("multiply",
                                                                   [_Node(-1.0), a[k]])])])
             for k in SKIP_OUTPUTS]
    error = _apply("multiply", [_Node(0.5), _apply("add", terms)])
    backward(error, None if local_mistake else mistake)
    return {e: weight[e].grad for e in SKIP_EDGES}


def _skip_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    cases = []
    for activation in ("tanh", "relu", "tanh") if hidden else ("tanh", "relu"):
        w = {e: float(v) for e, v in zip(SKIP_EDGES, rng.normal(0, 1, size=len(SKIP_EDGES)),
                                          strict=True)}
        x = {i: float(v) for i, v in zip(SKIP_INPUTS, rng.uniform(0.2, 1.5, size=2),
                                          strict=True)}
        if activation == "relu":
            w["x1->h2"], w["x2->h2"] = 0.0, 0.0  # in_h2 = 0 exactly: the kink
            w["h1->u"] = abs(w["h1->u"]) + 0.2
            w["x1->h1"] = abs(w["x1->h1"]) + 0.2
            w["x2->h1"] = abs(w["x2->h1"])
        t = {k: float(v) for k, v in zip(SKIP_OUTPUTS, rng.uniform(-2, 2, size=2), strict=True)}
        cases.append((w, x, t, activation))
    return cases


SKIP = Exercise(
    title="the gradients of the network with skip connections, with your engine",
    chapter=section("A network with skip connections"),
    correct=package_skip,
    mistakes={tag: (lambda m: lambda w, x, t, g: engine_skip(w, x, t, g, m))(tag) for tag in (
        "sign flipped", "local gradient", "S' of a instead of z", "overwrote at a fork",
        "wrong order", "chain factor missing")},
    cases=_skip_cases,
    hint="h1 feeds both u and y1, and h2 both u and y2: their gradients collect from two "
         "children. Build every node once and call backward() once on E.",
    forbidden=FORBIDDEN,
)


# -- the check functions that the notebook calls ------------------------------------------------
SECOND_VARIANTS: dict[str, dict[str, Callable[..., Any]]] = {
    "local": {"local gradient": _local_variant("local gradient, second form")},
    "backward": {"wrong order": lambda p, d, r: graph_gradients(p, d, r, "forward order")},
    "layered": {"wrong order": lambda W, x, t, g: engine_layered(W, x, t, g, "forward order")},
    "skip": {"wrong order": lambda w, x, t, g: engine_skip(w, x, t, g, "forward order")},
}
"""A second wrong variant of a tag, tried when the first does not match: the nodes visited in
forward instead of reverse topological order is the other common "wrong order", and each
operation has two usual wrong local derivatives."""


def check_local_gradients(student: Callable, seed: int | None = None) -> None:
    """Check ``local_gradients(op, values, exponent) -> (value, local)`` for every operation."""
    __tracebackhide__ = True
    LOCAL.check(student, seed, second=SECOND_VARIANTS["local"])


def check_topological_order(student: Callable, seed: int | None = None) -> None:
    """Check ``topological_positions(parents_of)``: every node once, each after its parents."""
    __tracebackhide__ = True
    rng = np.random.default_rng(0 if seed is None else seed)
    for (parents_of,) in ORDER_EXERCISE.cases(rng, seed is not None):
        _check_order(call(student, (parents_of,), ORDER_EXERCISE), parents_of)


def check_propagate(student: Callable, seed: int | None = None) -> None:
    """Check ``propagate_step(grads, parents, local, grad)``."""
    __tracebackhide__ = True
    PROPAGATE.check(student, seed)


def check_backward(student: Callable, seed: int | None = None) -> None:
    """Check ``gradients(parents_of, local_of, repeat)`` (backward() called ``repeat`` times)."""
    __tracebackhide__ = True
    BACKWARD.check(student, seed, second=SECOND_VARIANTS["backward"])


def check_layered_gradients(student: Callable, seed: int | None = None) -> None:
    """Check ``layered_gradients(W, x, t, activation)`` against :class:`course_pkg.Network`."""
    __tracebackhide__ = True
    LAYERED.check(student, seed, second=SECOND_VARIANTS["layered"])


def check_skip_gradients(student: Callable, seed: int | None = None) -> None:
    """Check ``skip_gradients(w, x, t, activation)`` against :mod:`course_pkg.graph`."""
    __tracebackhide__ = True
    SKIP.check(student, seed, second=SECOND_VARIANTS["skip"])
