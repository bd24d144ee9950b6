"""What a gradient may cost: back-propagation, not differencing.

Back-propagation gives all P partial derivatives of a network's error for the price of a few
forward passes: the backward pass does about twice the products of the forward one (seed
``002_ff83eee082f91d18.txt``, Algorithm 1). Differencing the error, by finite or complex steps,
needs one forward pass per parameter, O(P) of them, and so does differentiating it symbolically
entry by entry. Such an answer is right on the small networks of the other checks and cannot be
told apart there; its cost gives it away.

Each check here calls the student's answer once on a network of at least
:data:`MIN_PARAMETERS` parameters, checks the result against the reference, and fails with
``too slow`` when the call took more CPU time than :data:`FORWARD_PASSES` forward passes of
that network plus :data:`ALLOWANCE_S` for the call itself (moving the arrays, a first call's
warm-up). A forward pass is timed here, on the same machine, as the best of a few runs; the
student's call is timed with the function's own ``clock`` when it has one (in the grader: the
grading sandbox's CPU seconds, as the operating system counts them, which a busy neighbour does
not inflate), else with this process's CPU time. Both are timed with the objects that were alive
before frozen (:func:`course_pkg.checks.feedback.heap_frozen`): a full garbage collection of a
long-lived process's heap can cost more than the whole budget, and it is not the call's cost.

For P = 10^5 and a forward pass of a tenth of a millisecond or more, differencing costs at least
ten seconds: far past the budget, whatever the machine. Where an exercise has one parameter
(problem set 1's dE/dw), no cost can tell a derivative from a difference quotient, and these
checks do not apply. Problem set 4's ``matrix_step_difference`` receives dE/dW as an argument and
computes no derivative (one subtraction per weight), so there is nothing that differencing
could stand in for; neither do ps6's exercises, which are themselves finite differences.

Problem set 5's engine is scalar: every weight is a node object, and a pass over the graph
costs a few microseconds per node in Python, far more than a NumPy forward pass costs per
weight. Its budget is therefore counted in runs of the checks' own scalar engine
(:func:`course_pkg.checks.reverse_mode.engine_layered`, which builds the graph and runs
``backward()`` once), timed here on the same graph: :data:`ENGINE_RUNS` of them plus
:data:`ENGINE_ALLOWANCE_S`. The network is deep and narrow (:data:`ENGINE_LAYOUT`), so that one
forward pass, even in NumPy, costs about 0.1 ms: differencing its 2.4 x 10^4 weights, even
one-sided, takes seconds, while the honest engine takes under a tenth of one. (With 10^5
weights a scalar engine in Python would itself take half a second; depth, not width, is what
makes differencing expensive here.) ``backward()`` alone
is held to the same rule on a wide layered graph of 10^4 nodes and 3 x 10^4 edges
(:data:`GRAPH_SHAPE`): reverse mode visits each node and each edge once, and an order or a
visit that searches a list, or a pass per node, makes it quadratic (a list of visited nodes:
about 1.3 s against a budget of about 0.36 s; the engine's time is the best of
:data:`ENGINE_REPEATS` runs, so that a slow first run cannot widen the budget).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from course_pkg import node_delta, tanh_two_layer
from course_pkg.checks import matrix_form
from course_pkg.checks import node_delta as node_checks
from course_pkg.checks import reverse_mode as engine_checks
from course_pkg.checks import tanh_two_layer as tanh_checks
from course_pkg.checks.feedback import Exercise, Feedback, clocked, diagnose, heap_frozen
from course_pkg.helpers import softmax

MIN_PARAMETERS = 100_000
"""The smallest network a cost check uses: differencing it takes 10^5 forward passes."""
FORWARD_PASSES = 20
"""CPU budget of one gradient, in forward passes (back-propagation needs about three)."""
ALLOWANCE_S = 1.0
"""CPU seconds allowed on top, for the call itself: far below 10^5 forward passes."""
REPEATS = 5
ENGINE_RUNS = 4
"""CPU budget of a scalar engine's answer, in runs of the checks' own engine on that graph."""
ENGINE_ALLOWANCE_S = 0.25
"""CPU seconds allowed on top of :data:`ENGINE_RUNS`, for the call itself."""
ENGINE_REPEATS = 3
"""Runs of the checks' own engine, of which the fastest is its time."""
ENGINE_LAYOUT = [20] * 61 + [10]
"""ps5's cost network: 60 tanh layers of 20 units and 10 outputs, 24,200 weights."""
GRAPH_SHAPE = (500, 20, 3)
"""ps5's cost graph: 20 layers of 500 nodes, each with 3 parents in the layer before."""


def forward_seconds(forward: Callable[[], Any], repeats: int = REPEATS) -> float:
    """The CPU time of one ``forward()`` in this process: the best of ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        with heap_frozen():
            start = time.process_time()
            forward()
            best = min(best, time.process_time() - start)
    return best


def within_budget(student: Callable[..., Any], args: tuple, forward: Callable[[], Any],
                  parameters: int, exercise: Exercise) -> Any:
    """``student(*args)``, failing with ``too slow`` past the budget of the module doc.

    Raises
    ------
    ValueError
        If the network has fewer than :data:`MIN_PARAMETERS` parameters (a broken check).
    """
    __tracebackhide__ = True
    if parameters < MIN_PARAMETERS:
        raise ValueError(f"a cost check needs at least {MIN_PARAMETERS} parameters, got "
                         f"{parameters}")
    forward_time = engine_seconds(("forward", exercise.title, parameters), forward, REPEATS)
    budget = ALLOWANCE_S + FORWARD_PASSES * forward_time
    return _within(student, args, exercise, budget, lambda spent, what: (
        f"On a network of {parameters} weights it took {spent:.1f} s{what}, more than "
        f"{FORWARD_PASSES} forward passes of that network ({budget:.2f} s): "
        "back-propagation costs a few forward passes, while differencing the error "
        "weight by weight costs one forward pass per weight."))


def _within(student: Callable[..., Any], args: tuple, exercise: Exercise, budget: float,
            explain: Callable[[float, str], str]) -> Any:
    """``student(*args)``, failing with ``too slow`` and ``explain(seconds, which clock)`` when
    it took more than ``budget`` seconds (see the module doc for the clock)."""
    __tracebackhide__ = True
    answer, spent = clocked(student, args, exercise, time.process_time)
    if spent > budget:
        raise Feedback("too slow", exercise, explain(spent, getattr(student, "clock_name",
                                                                    " of CPU time")))
    return answer


def check_tanh_gradients_cost(student: Callable[..., tuple], seed: int = 0) -> None:
    """Problem set 2: ``gradients(w1, w2, x, y_hat)`` on a 300-400-10 tanh network."""
    __tracebackhide__ = True
    rng = np.random.default_rng(seed)
    D, M, K = 300, 400, 10
    w1 = rng.normal(0.0, 1.0 / np.sqrt(D), (M, D))
    w2 = rng.normal(0.0, 1.0 / np.sqrt(M), (K, M))
    x, y_hat = rng.normal(size=D), rng.normal(size=K)
    answer = within_budget(student, (w1, w2, x, y_hat),
                           lambda: tanh_two_layer.forward(w1, w2, x), w1.size + w2.size,
                           tanh_checks.GRADIENTS)
    diagnose(answer, tanh_two_layer.gradients(w1, w2, x, y_hat), {}, tanh_checks.GRADIENTS)


def _matrix_forward(W: dict, b: dict, X: np.ndarray) -> np.ndarray:
    a = X.T
    for l in range(1, len(W) + 1):
        z = W[l] @ a + b[l][:, None]
        a = np.tanh(z) if l < len(W) else softmax(z)
    return a


def check_matrix_gradients_cost(student: Callable[..., tuple], seed: int = 0) -> None:
    """Problem set 3: ``gradients(W, b, X, Y, "cross_entropy")`` on a 256-384-256-10 network
    and a batch of 64."""
    __tracebackhide__ = True
    rng = np.random.default_rng(seed)
    sizes, n = [256, 384, 256, 10], 64
    W = {l: rng.normal(0.0, 1.0 / np.sqrt(sizes[l - 1]), (sizes[l], sizes[l - 1]))
         for l in range(1, len(sizes))}
    b = {l: rng.normal(0.0, 0.1, sizes[l]) for l in range(1, len(sizes))}
    X, Y = rng.normal(size=(n, sizes[0])), rng.integers(0, sizes[-1], size=n)
    parameters = sum(W[l].size + b[l].size for l in W)
    answer = within_budget(student, (W, b, X, Y, "cross_entropy"),
                           lambda: _matrix_forward(W, b, X), parameters, matrix_form.GRADIENTS)
    diagnose(answer, matrix_form.reference_gradients(W, b, X, Y, "cross_entropy"), {},
             matrix_form.GRADIENTS)


def check_node_update_cost(student: Callable[..., list], seed: int = 0) -> None:
    """Problem set 4: ``node_update(w, x, t, eta)`` on a 200-300-200-10 sigmoid network."""
    __tracebackhide__ = True
    rng = np.random.default_rng(seed)
    layout = [200, 300, 200, 10]
    w = [rng.normal(0.0, 1.0 / np.sqrt(layout[m]), (layout[m], layout[m + 1]))
         for m in range(len(layout) - 1)]
    x, t, eta = rng.uniform(-1, 1, size=layout[0]), rng.uniform(0, 1, size=layout[-1]), 0.5
    g, _ = node_delta.derivative("sigmoid")
    answer = within_budget(student, (w, x, t, eta), lambda: node_delta.forward(w, x, g),
                           sum(w_m.size for w_m in w), node_checks.NODE_UPDATE)
    diagnose(answer, node_checks.reference_step(w, x, t, eta, "sigmoid"), {},
             node_checks.NODE_UPDATE)


_ENGINE_SECONDS: dict[tuple, float] = {}
"""Per process: the CPU seconds of the checks' own forward pass or engine on each cost case
already timed."""


def engine_seconds(case: tuple, run: Callable[[], Any], repeats: int = ENGINE_REPEATS
                   ) -> float:
    """The CPU time of ``run()`` (the checks' own forward pass or engine on the network or
    graph ``case``), timed once per process (a grading worker times it for its first
    submission only), as the best of ``repeats`` runs: noise only lengthens a run, and a
    lengthened reference would let a slow answer through on one grading and not on the next.
    Like the student's call, each run is timed with the older heap frozen, so that neither is
    charged for a full collection of objects it did not make."""
    if case not in _ENGINE_SECONDS:
        _ENGINE_SECONDS[case] = forward_seconds(run, repeats=repeats)
    return _ENGINE_SECONDS[case]


def cost_network(seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(W, x, t) of ps5's cost network (:data:`ENGINE_LAYOUT`), drawn from ``seed``."""
    rng = np.random.default_rng([seed, 5])
    sizes = ENGINE_LAYOUT
    W = [rng.normal(0.0, 1.2 / np.sqrt(n), (m, n)) for n, m in zip(sizes[:-1], sizes[1:],
                                                                      strict=True)]
    return W, rng.normal(size=sizes[0]), rng.uniform(-1.0, 1.0, size=sizes[-1])


def check_layered_gradients_cost(student: Callable[..., tuple], seed: int = 0) -> None:
    """Problem set 5: ``layered_gradients(W, x, t, "tanh")`` on :data:`ENGINE_LAYOUT`, within
    :data:`ENGINE_RUNS` runs of the checks' engine plus :data:`ENGINE_ALLOWANCE_S`."""
    __tracebackhide__ = True
    W, x, t = cost_network(seed)
    weights = sum(W_l.size for W_l in W)
    reference = engine_seconds(("layered", seed),
                               lambda: engine_checks.engine_layered(W, x, t, "tanh"))
    budget = ENGINE_ALLOWANCE_S + ENGINE_RUNS * reference
    answer = _within(student, (W, x, t, "tanh"), engine_checks.LAYERED, budget,
                     lambda spent, what: (
        f"On a network of {weights} weights it took {spent:.1f} s{what}, more than "
        f"{ENGINE_RUNS} runs of the course's own scalar engine on it ({budget:.2f} s): "
        "reverse mode builds the graph once and runs backward() once, while differencing "
        "the error weight by weight costs one forward pass per weight."))
    diagnose(answer, engine_checks.package_layered(W, x, t, "tanh"), {}, engine_checks.LAYERED)


def cost_graph(seed: int) -> tuple[list[list[int]], list[list[float]]]:
    """(parents_of, local_of) of ps5's cost graph (:data:`GRAPH_SHAPE`): the last node is the
    output and has every node of the last layer as a parent."""
    rng = np.random.default_rng([seed, 55])
    width, depth, fan = GRAPH_SHAPE
    parents_of: list[list[int]] = [[] for _ in range(width)]
    for layer in range(1, depth):
        below = (layer - 1) * width
        parents_of += [[below + int(i) for i in rng.choice(width, fan, replace=False)]
                       for _ in range(width)]
    parents_of.append(list(range((depth - 1) * width, depth * width)))
    local_of = [[float(d) for d in rng.uniform(-1.0, 1.0, len(p))] for p in parents_of]
    return parents_of, local_of


def check_backward_cost(student: Callable[..., list], seed: int = 0) -> None:
    """Problem set 5: ``gradients(parents_of, local_of, 1)`` (one ``backward()``) on the graph
    of :data:`GRAPH_SHAPE`, within :data:`ENGINE_RUNS` runs of the checks' own
    ``backward()`` plus :data:`ENGINE_ALLOWANCE_S`."""
    __tracebackhide__ = True
    parents_of, local_of = cost_graph(seed)
    edges = sum(len(p) for p in parents_of)
    reference = engine_seconds(("backward", seed),
                               lambda: engine_checks.graph_gradients(parents_of, local_of, 1))
    budget = ENGINE_ALLOWANCE_S + ENGINE_RUNS * reference
    answer = _within(student, (parents_of, local_of, 1), engine_checks.BACKWARD, budget,
                     lambda spent, what: (
        f"On a graph of {len(parents_of)} nodes and {edges} edges it took {spent:.1f} s{what}, "
        f"more than {ENGINE_RUNS} runs of the course's own backward() on it ({budget:.2f} s): "
        "reverse mode visits each node and each edge once. Look for a search through a "
        "list (use a set of visited nodes) or a pass over the graph per node."))
    diagnose(answer, engine_checks.graph_gradients(parents_of, local_of, 1), {},
             engine_checks.BACKWARD)
