"""Back-propagation node by node, in the notation of ``003_00675a7c1b711b2c.txt``.

Each node k receives in_k = sum_i w_ik a_i from the nodes i of the previous layer and outputs
a_k = g(in_k). The error signal at an output node is Delta_k = g'(in_k)(t_k - a_k), at a
hidden node Delta_j = g'(in_j) sum_k w_jk Delta_k (eq. 1), and every weight moves by
w_ik <- w_ik + eta a_i Delta_k. Here Delta = -dE/d(in) for E = 1/2 sum_k (t_k - a_k)^2: the
opposite sign of delta = +dC/dz in ``002_ff83eee082f91d18.txt``, which is why the update adds.

The loops below run over nodes and edges on purpose: this is the node-level view. Layer m has
``len(a[m])`` nodes, and ``w[m][i][k]`` is the weight on the edge from node i of layer m to node
k of layer m + 1. There are no biases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from course_pkg import activations
from course_pkg.helpers import PAIRS

Weights = Sequence[np.ndarray]


def derivative(name: str) -> tuple[Callable, Callable]:
    """The activation g and its derivative g' for a name of :mod:`course_pkg.activations`.

    Only componentwise activations have a node-level g'; softmax couples the nodes of a layer.
    """
    if name in PAIRS:  # named functions, which the grader can pass into the sandbox by name
        return PAIRS[name]
    S, S_prime = activations.get(name)
    if S_prime is None:
        raise ValueError(f"node-level deltas need a componentwise activation, one of "
                         f"{list(activations.COMPONENTWISE)}; got {name!r}")
    return (lambda v: S(np.asarray(v, dtype=float), np)), \
           (lambda v: S_prime(np.asarray(v, dtype=float), np))


def forward(w: Weights, x: np.ndarray, g: Callable) -> tuple[list, list]:
    """in_k = sum_i w_ik a_i and a_k = g(in_k), node by node; returns the lists ``inp``, ``a``."""
    a = [np.asarray(x, dtype=float)]
    inp = [None]
    for m, w_m in enumerate(w):
        n_in, n_out = w_m.shape
        in_next = np.array([sum(w_m[i, k] * a[m][i] for i in range(n_in)) for k in range(n_out)])
        inp.append(in_next)
        a.append(g(in_next))
    return inp, a


def error_signals(w: Weights, inp: list, a: list, t: np.ndarray, g_prime: Callable) -> list:
    """Delta for every node: Delta_k = g'(in_k)(t_k - a_k) at the output, then eq. (1)
    Delta_j = g'(in_j) sum_k w_jk Delta_k, layer by layer towards the input."""
    top = len(w)
    Delta = [None] * (top + 1)
    Delta[top] = g_prime(inp[top]) * (np.asarray(t, dtype=float) - a[top])
    for m in range(top - 1, 0, -1):
        n_nodes, n_next = w[m].shape
        Delta[m] = np.array([
            g_prime(inp[m][j]) * sum(w[m][j, k] * Delta[m + 1][k] for k in range(n_next))
            for j in range(n_nodes)
        ])
    return Delta


def update(w: Weights, x: np.ndarray, t: np.ndarray, eta: float,
           activation: str = "sigmoid") -> list[np.ndarray]:
    """One back-propagation step on the example (x, t): w_ik <- w_ik + eta a_i Delta_k.

    Returns new weight arrays; ``w`` is not modified.
    """
    g, g_prime = derivative(activation)
    inp, a = forward(w, x, g)
    Delta = error_signals(w, inp, a, t, g_prime)
    new = [np.array(w_m, dtype=float) for w_m in w]
    for m, w_m in enumerate(new):
        n_in, n_out = w_m.shape
        for i in range(n_in):
            for k in range(n_out):
                w_m[i, k] += eta * a[m][i] * Delta[m + 1][k]
    return new


def error(w: Weights, x: np.ndarray, t: np.ndarray, activation: str = "sigmoid") -> float:
    """E_n = 1/2 sum_k (t_k - a_k)^2 for one example."""
    g, _ = derivative(activation)
    _, a = forward(w, x, g)
    return 0.5 * float(np.sum((np.asarray(t) - a[-1]) ** 2))
