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
not inflate), else with this process's CPU time.

For P = 10^5 and a forward pass of a tenth of a millisecond or more, differencing costs at least
ten seconds: far past the budget, whatever the machine. Where an exercise has one parameter
(problem set 1's dE/dw), no cost can tell a derivative from a difference quotient, and these
checks do not apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from course_pkg import node_delta, tanh_two_layer
from course_pkg.checks import matrix_form
from course_pkg.checks import node_delta as node_checks
from course_pkg.checks import tanh_two_layer as tanh_checks
from course_pkg.checks.feedback import Exercise, Feedback, call, diagnose
from course_pkg.helpers import softmax

MIN_PARAMETERS = 100_000
"""The smallest network a cost check uses: differencing it takes 10^5 forward passes."""
FORWARD_PASSES = 20
"""CPU budget of one gradient, in forward passes (back-propagation needs about three)."""
ALLOWANCE_S = 1.0
"""CPU seconds allowed on top, for the call itself: far below 10^5 forward passes."""
REPEATS = 5


def forward_seconds(forward: Callable[[], Any]) -> float:
    """The CPU time of one ``forward()`` in this process: the best of :data:`REPEATS` runs."""
    best = float("inf")
    for _ in range(REPEATS):
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
    budget = ALLOWANCE_S + FORWARD_PASSES * forward_seconds(forward)
    clock = getattr(student, "clock", time.process_time)
    start = clock()
    answer = call(student, args, exercise)
    spent = clock() - start
    if spent > budget:
        what = getattr(student, "clock_name", " of CPU time")
        raise Feedback("too slow", exercise, (
            f"On a network of {parameters} weights it took {spent:.1f} s{what}, more than "
            f"{FORWARD_PASSES} forward passes of that network ({budget:.2f} s): "
            "back-propagation costs a few forward passes, while differencing the error "
            "weight by weight costs one forward pass per weight."))
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
