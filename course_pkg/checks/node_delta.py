"""Checks of assignment ps4: back-propagation node by node (``003_00675a7c1b711b2c.txt``).

Seed notation: node k receives in_k = sum_i w_ik a_i and outputs a_k = g(in_k). The error
signal is Delta_k = g'(in_k)(t_k - a_k) at an output node and g'(in_j) times the sum over k of
w_jk Delta_k at a hidden node j, and every weight moves by eta Delta_k a_i. As in
:mod:`course_pkg.node_delta`, ``w[m][i, k]`` is the weight from node i of layer m to node k
of layer m + 1 (the transpose of the matrix form's W_{m+1}); there are no biases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from course_pkg import node_delta as ref
from course_pkg.checks.feedback import Exercise, first_wrong_helper
from course_pkg.checks.guard import backward_passes, reference_functions, withheld
from course_pkg.network import Network

CHAPTER = "book/node_delta.md"
SEED = "003_00675a7c1b711b2c.txt"
FORBIDDEN = (ref.error_signals, ref.update, *backward_passes())
WITHHELD = withheld(*FORBIDDEN, *reference_functions())
ACTIVATIONS = ("sigmoid", "tanh")


def section(name: str) -> str:
    return f"{CHAPTER}, section '{name}'"


def _g(g_prime: Callable) -> Callable:
    """The activation g whose derivative is ``g_prime`` (one of :data:`ACTIVATIONS`)."""
    return _PAIRS[g_prime]


_FUNCTIONS = {name: ref.derivative(name) for name in ACTIVATIONS}
_PAIRS = {g_prime: g for g, g_prime in _FUNCTIONS.values()}


def _layouts(rng: np.random.Generator, hidden: bool) -> list[list[int]]:
    """Node counts per layer: all equal first (so that w and w^T both fit), then distinct."""
    if not hidden:
        return [[3, 3, 3], [4, 3, 2]]
    q = int(rng.integers(2, 6))
    depth = int(rng.integers(3, 5))
    return [[q] * depth, [int(v) for v in rng.choice(np.arange(1, 8), size=depth, replace=False)]]


def _weights(rng: np.random.Generator, layout: Sequence[int]) -> list[np.ndarray]:
    return [rng.normal(0.0, 1.5 / np.sqrt(n_in), size=(n_in, n_out))
            for n_in, n_out in zip(layout[:-1], layout[1:], strict=True)]


# -- Delta at an output node -------------------------------------------------------------------
def output_Delta(inp: np.ndarray, a: np.ndarray, t: np.ndarray, g_prime: Callable) -> np.ndarray:
    """Delta_k = g'(in_k)(t_k - a_k) for every output node k."""
    return g_prime(inp) * (t - a)


def _output_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    sizes = [int(rng.integers(1, 8)) for _ in range(3)] if hidden else [3, 2]
    cases = []
    for i, K in enumerate(sizes):
        g, g_prime = _FUNCTIONS[ACTIVATIONS[i % 2]]
        inp = rng.normal(0, 1.5, size=K)
        cases.append((inp, g(inp), rng.uniform(0, 1, size=K), g_prime))
    return cases


OUTPUT_DELTA = Exercise(
    title="Delta_k at an output node",
    notebook_equation=2,
    equation="nd-output-delta",
    chapter=section("Nodes, edges and the error signal"),
    correct=output_Delta,
    mistakes={
        "sign flipped": lambda inp, a, t, gp: gp(inp) * (a - t),
        "S' missing": lambda inp, a, t, gp: t - a,
        "S' of a instead of z": lambda inp, a, t, gp: gp(a) * (t - a),
    },
    cases=_output_cases,
    hint="two factors per node: the slope g'(in_k) of the activation at the node's input, "
         "and the target minus the output, t_k - a_k.",
    forbidden=FORBIDDEN,
)


# -- Delta at a hidden node --------------------------------------------------------------------
def hidden_Delta(w: np.ndarray, inp: np.ndarray, Delta_next: np.ndarray, g_prime: Callable
                 ) -> np.ndarray:
    """Delta_j = g'(in_j) * (sum over k of w_jk Delta_k), eq. (1), for each hidden node j."""
    return g_prime(inp) * (w @ Delta_next)


def _hidden_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    cases = []
    for i, layout in enumerate(_layouts(rng, hidden)):
        J, K = layout[-2], layout[-1]
        g_prime = _FUNCTIONS[ACTIVATIONS[i % 2]][1]
        cases.append((_weights(rng, [J, K])[0], rng.normal(0, 1.5, size=J),
                      rng.normal(size=K), g_prime))
    return cases


HIDDEN_DELTA = Exercise(
    title="Delta_j at a hidden node",
    notebook_equation=2,
    equation="nd-hidden-delta",
    chapter=section("Nodes, edges and the error signal"),
    correct=hidden_Delta,
    mistakes={
        "S' missing": lambda w, inp, D, gp: w @ D,
        "S' of a instead of z": lambda w, inp, D, gp: gp(_g(gp)(inp)) * (w @ D),
        "W instead of W^T": lambda w, inp, D, gp: gp(inp) * (w.T @ D),
        "sign flipped": lambda w, inp, D, gp: -hidden_Delta(w, inp, D, gp),
        "no sum over k": lambda w, inp, D, gp: gp(inp) * w[:, 0] * D[0],
    },
    cases=_hidden_cases,
    hint="node j sends its output along the edges w[j, k] to every node k of the next layer; "
         "collect w[j, k] * Delta_k over all k, then multiply by g'(in_j).",
    forbidden=FORBIDDEN,
)


# -- one back-propagation step -----------------------------------------------------------------
def node_step(w: Sequence[np.ndarray], x: np.ndarray, t: np.ndarray, eta: float,
              activation: str, mistake: str | None = None) -> tuple[np.ndarray, ...]:
    """One step w_ik += eta Delta_k a_i on every edge, vectorised by layer;
    ``mistake`` builds a known wrong variant."""
    g, g_prime = _FUNCTIONS[activation]
    inp, a = ref.forward(w, x, g)
    top = len(w)
    slope = {"S' missing": lambda m: 1.0, "S' of a instead of z": lambda m: g_prime(a[m])}
    slope_at = slope.get(mistake, lambda m: g_prime(inp[m]))
    Delta = {top: slope_at(top) * (t - a[top])}
    for m in range(top - 1, 0, -1):
        back = w[m].T @ Delta[m + 1] if mistake == "W instead of W^T" else w[m] @ Delta[m + 1]
        Delta[m] = slope_at(m) * back
    sign = -1.0 if mistake == "sign flipped" else 1.0
    sender = (lambda m: a[m + 1]) if mistake == "wrong layer" else (lambda m: a[m])
    return tuple(w_m + sign * eta * np.outer(sender(m), Delta[m + 1]) for m, w_m in enumerate(w))


def reference_step(w: list, x: np.ndarray, t: np.ndarray, eta: float, activation: str
                   ) -> tuple[np.ndarray, ...]:
    """:func:`course_pkg.node_delta.update`, node by node, as a tuple."""
    return tuple(ref.update(w, x, t, eta, activation))


def _step_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    cases = []
    for i, layout in enumerate(_layouts(rng, hidden)):
        eta = float(rng.uniform(0.1, 2.0)) if hidden else 0.5
        cases.append((_weights(rng, layout), rng.uniform(-1, 1, size=layout[0]),
                      rng.uniform(0, 1, size=layout[-1]), eta, ACTIVATIONS[i % 2]))
    return cases


def _step_variant(tag: str) -> Callable[..., tuple]:
    return lambda w, x, t, eta, activation: node_step(w, x, t, eta, activation, mistake=tag)


NODE_UPDATE = Exercise(
    title="one back-propagation step w_ik += eta Delta_k a_i",
    equation="nd-update",
    chapter=section("Nodes, edges and the error signal"),
    correct=reference_step,
    mistakes={tag: _step_variant(tag) for tag in (
        "S' missing", "S' of a instead of z", "W instead of W^T", "sign flipped", "wrong layer")},
    cases=_step_cases,
    hint="compute every in and a forward, every Delta backward (output layer first), and "
         "only then change the weights: each Delta uses the old weights.",
    forbidden=FORBIDDEN,
    earlier=lambda student, case: first_wrong_helper(student, NODE_UPDATE, delta_steps(*case)),
)


def delta_steps(w: Sequence[np.ndarray], x: np.ndarray, t: np.ndarray, eta: float,
                activation: str) -> list[tuple[Exercise, str, tuple]]:
    """What one step asks of the student's output_Delta and hidden_Delta, output layer first,
    on the right Deltas of the layer above: (exercise, the helper's name, its arguments)."""
    g, g_prime = _FUNCTIONS[activation]
    inp, a = ref.forward(w, x, g)
    top = len(w)
    asked = [(OUTPUT_DELTA, "output_Delta", (inp[top], a[top], t, g_prime))]
    Delta = {top: output_Delta(inp[top], a[top], t, g_prime)}
    for m in range(top - 1, 0, -1):
        asked.append((HIDDEN_DELTA, "hidden_Delta", (w[m], inp[m], Delta[m + 1], g_prime)))
        Delta[m] = hidden_Delta(w[m], inp[m], Delta[m + 1], g_prime)
    return asked


# -- the numerical check against the matrix form -----------------------------------------------
def matrix_step_difference(new_w: Sequence[np.ndarray], W: Sequence[np.ndarray],
                           dW: Sequence[np.ndarray], eta: float, transpose: bool = True,
                           sign: float = 1.0) -> float:
    """max over all weights of |node-level new weights - (W_l - eta dW_l)^T|."""
    def step(W_l: np.ndarray, dW_l: np.ndarray) -> np.ndarray:
        new = W_l - sign * eta * dW_l
        return new.T if transpose else new

    return max(float(np.max(np.abs(step(W_l, dW_l) - w_m)))
               for w_m, W_l, dW_l in zip(new_w, W, dW, strict=True))


def matrix_gradients(w: Sequence[np.ndarray], x: np.ndarray, t: np.ndarray
                     ) -> list[np.ndarray]:
    """dE/dW_l of E = 1/2 ||t - a||^2 in the matrix form, from :class:`Network` (no biases)."""
    layout = [w[0].shape[0]] + [w_m.shape[1] for w_m in w]
    net = Network(layout, "sigmoid", "half_squared_error", weights=[w_m.T for w_m in w],
                  biases=[np.zeros(p) for p in layout[1:]])
    _, dW, _ = net.loss_and_gradients(x[None, :], t[None, :])
    return [np.asarray(d) for d in dW]


def _difference_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    cases = []
    for layout in _layouts(rng, hidden):
        w = _weights(rng, layout)
        x, t = rng.uniform(-1, 1, size=layout[0]), rng.uniform(0, 1, size=layout[-1])
        eta = float(rng.uniform(0.1, 2.0))
        W, dW = [w_m.T.copy() for w_m in w], matrix_gradients(w, x, t)
        # A wrong step first: there a constant answer (say 0) matches no mistake's variant.
        for mistake in ("S' missing", None, "sign flipped"):
            cases.append((list(node_step(w, x, t, eta, "sigmoid", mistake)), W, dW, eta))
    return cases


MATRIX_STEP = Exercise(
    title="the comparison of the node-level step with the matrix-form step",
    chapter=section("The bridge to the matrix form"),
    correct=matrix_step_difference,
    mistakes={
        "transposed": lambda n, W, dW, eta: matrix_step_difference(n, W, dW, eta,
                                                                   transpose=False),
        "sign flipped": lambda n, W, dW, eta: matrix_step_difference(n, W, dW, eta, sign=-1.0),
    },
    cases=_difference_cases,
    hint="the check hands your function both right and wrong node-level weights: it must "
         "take the matrix-form step W_l - eta dW_l, transpose it, and return the largest "
         "absolute difference it finds, not a fixed number.",
    forbidden=(),
)


def check_output_Delta(student: Callable, seed: int | None = None) -> None:
    """Check ``output_Delta(inp, a, t, g_prime)``; ``seed`` picks random hidden cases."""
    __tracebackhide__ = True
    OUTPUT_DELTA.check(student, seed)


def check_hidden_Delta(student: Callable, seed: int | None = None) -> None:
    """Check ``hidden_Delta(w, inp, Delta_next, g_prime)``."""
    __tracebackhide__ = True
    HIDDEN_DELTA.check(student, seed)


def check_node_update(student: Callable, seed: int | None = None) -> None:
    """Check ``node_update(w, x, t, eta, activation)`` against course_pkg.node_delta."""
    __tracebackhide__ = True
    NODE_UPDATE.check(student, seed)


def check_matrix_step_difference(student: Callable, seed: int | None = None) -> None:
    """Check ``matrix_step_difference(new_w, W, dW, eta)`` on right and wrong node steps."""
    __tracebackhide__ = True
    MATRIX_STEP.check(student, seed)
