"""Central finite differences: the independent oracle for back-propagation.

Back-propagation computes the exact gradient with one backward pass. Finite differences
estimate each of the P partial derivatives by perturbing one parameter at a time, at the cost
of two loss evaluations each (2P forward passes). They share no code with
:mod:`course_pkg.network` beyond the loss itself, which is what makes them a good check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from course_pkg.backend import to_numpy

Array = Any


def finite_difference_gradients(
    net: Any, X: Array, Y: Array, h: float = 1e-5
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Estimate dloss/dW_l and dloss/db_l by central differences (f(t+h) - f(t-h)) / 2h.

    The estimate runs on a float64 NumPy copy of ``net``, whatever its backend, so that the
    oracle does not depend on the library under test.

    Returns
    -------
    dW, db
        Lists of NumPy arrays shaped like ``net.weights`` and ``net.biases``.
    """
    probe = net.copy(backend="numpy", dtype="float64")
    X, Y = to_numpy(X), to_numpy(Y)
    estimates = []
    for params in (probe.weights, probe.biases):
        grads = []
        for theta in params:
            grad = np.empty_like(theta)
            for idx in np.ndindex(theta.shape):
                saved = theta[idx]
                theta[idx] = saved + h
                up = probe.loss(X, Y)
                theta[idx] = saved - h
                down = probe.loss(X, Y)
                theta[idx] = saved
                grad[idx] = (up - down) / (2.0 * h)
            grads.append(grad)
        estimates.append(grads)
    return estimates[0], estimates[1]


def relative_error(a: Array, b: Array, eps: float = 1e-8) -> float:
    """max over entries of |a - b| / max(eps, |a| + |b|)."""
    a, b = np.asarray(to_numpy(a), dtype=float), np.asarray(to_numpy(b), dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare arrays of shapes {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(eps, np.abs(a) + np.abs(b))))


def gradient_check(net: Any, X: Array, Y: Array, h: float = 1e-5, eps: float = 1e-8) -> float:
    """The largest relative error between back-propagation and central differences.

    Parameters
    ----------
    net
        A :class:`course_pkg.Network`; it is not modified.
    X, Y
        A batch, as for :meth:`Network.loss_and_gradients`.
    h
        The finite-difference step.
    eps
        Floor of the denominator, so that two gradients that are both about 0 compare as equal.

    Returns
    -------
    float
        max over all parameters of |a - b| / max(eps, |a| + |b|), where a is the
        back-propagated and b the finite-difference derivative.
    """
    _, dW, db = net.loss_and_gradients(X, Y)
    fd_W, fd_b = finite_difference_gradients(net, X, Y, h)
    return max(relative_error(a, b, eps) for a, b in zip([*dW, *db], [*fd_W, *fd_b]))
