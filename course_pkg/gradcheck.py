"""Central finite differences: the independent oracle for back-propagation.

Back-propagation computes the exact gradient with one backward pass. Finite differences
estimate each of the P partial derivatives by perturbing one parameter at a time; they share
no code with :mod:`course_pkg.network` beyond the loss itself, which is what makes them a good
check.

Two central stencils are offered. With f(t) the loss as a function of one parameter t,

* order 2: f'(t) ~ (f(t + h) - f(t - h)) / (2h), truncation error (h^2 / 6) f'''(t);
* order 4: f'(t) ~ (f(t - 2h) - 8 f(t - h) + 8 f(t + h) - f(t + 2h)) / (12h), truncation
  error (h^4 / 30) f^(5)(t) (eliminate the h^2 term of two order-2 estimates, with steps h
  and 2h).

Both also suffer rounding: each loss value carries a relative error of about the machine
epsilon u, so the estimate carries an absolute error of about u |f| / h. The fourth-order
stencil allows a larger h (1e-4 by default) for the same truncation error, and so less
rounding, which is what makes a relative error of 1e-6 reachable in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from course_pkg.backend import to_numpy

Array = Any

STENCILS = {
    2: ((-1, -0.5), (1, 0.5)),
    4: ((-2, 1 / 12), (-1, -8 / 12), (1, 8 / 12), (2, -1 / 12)),
}
"""order -> ((offset k, weight c), ...): f'(t) ~ sum_k c f(t + k h) / h."""


def finite_difference_gradients(
    net: Any, X: Array, Y: Array, h: float = 1e-4, order: int = 4,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Estimate dloss/dW_l and dloss/db_l by central differences of the given order.

    The estimate runs on a float64 NumPy copy of ``net``, whatever its backend, so that the
    oracle does not depend on the library under test.

    Parameters
    ----------
    net
        A :class:`course_pkg.Network`; it is not modified.
    X, Y
        A batch, as for :meth:`Network.loss`.
    h
        The step, a positive number.
    order
        2 or 4, the order of the central stencil (see the module docstring).

    Returns
    -------
    dW, db
        Lists of NumPy arrays shaped like ``net.weights`` and ``net.biases``.
    """
    if order not in STENCILS:
        raise ValueError(f"order must be one of {sorted(STENCILS)}, got {order!r}")
    if not (isinstance(h, (int, float)) and np.isfinite(h) and h > 0):
        raise ValueError(f"the step h must be a positive finite number, got {h!r}")
    probe = net.copy(backend="numpy", dtype="float64")
    X, Y = to_numpy(X), to_numpy(Y)

    def derivative(theta: np.ndarray, idx: tuple[int, ...]) -> float:
        saved = theta[idx]
        total = 0.0
        for k, c in STENCILS[order]:
            theta[idx] = saved + k * h
            total += c * probe.loss(X, Y)
        theta[idx] = saved
        return total / h

    estimates = []
    for params in (probe.weights, probe.biases):
        grads = []
        for theta in params:
            grad = np.empty_like(theta)
            for idx in np.ndindex(theta.shape):
                grad[idx] = derivative(theta, idx)
            grads.append(grad)
        estimates.append(grads)
    return estimates[0], estimates[1]


def central_differences(f: Any, x: Array, h: float = 1e-6) -> np.ndarray:
    """Central differences (f(x + h e_i) - f(x - h e_i)) / 2h of a scalar function of an array.

    The order-2 stencil entry by entry, for any formula written as a function of one array
    (the chapters' and tests' independent check of a derivative derived by hand).

    Parameters
    ----------
    f
        A function of an array shaped like ``x`` that returns a number.
    x
        The point; it is not modified.
    h
        The step.

    Returns
    -------
    numpy.ndarray
        The estimate of df/dx, shaped like ``x``.
    """
    x = np.array(x, dtype=float)
    grad = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (f(up) - f(down)) / (2.0 * h)
    return grad


def relative_error(a: Array, b: Array, floor: float = 1e-8) -> float:
    """max over entries of |a - b| / max(floor, |a| + |b|).

    The floor keeps two derivatives that are both about 0 from counting as a large relative
    error: below it, the difference is measured in absolute terms (divided by ``floor``).
    """
    a, b = np.asarray(to_numpy(a), dtype=float), np.asarray(to_numpy(b), dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare arrays of shapes {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(floor, np.abs(a) + np.abs(b))))


def gradient_check(
    net: Any, X: Array, Y: Array, h: float = 1e-4, eps: float = 1e-5, order: int = 4,
) -> float:
    """The largest relative error between back-propagation and finite differences.

    Parameters
    ----------
    net
        A :class:`course_pkg.Network`; it is not modified.
    X, Y
        A batch, as for :meth:`Network.loss_and_gradients`.
    h, order
        The finite-difference step and stencil order (:func:`finite_difference_gradients`).
    eps
        Relative floor of the denominator. Rounding gives the finite-difference estimate an
        absolute error of about ``u |loss| / h`` (u the machine epsilon), so derivatives smaller
        than ``eps * max(1, |loss|)`` are compared in absolute terms against that scale
        rather than relative to their own size.

    Returns
    -------
    float
        ``max |a - b| / max(eps max(1, |loss|), |a| + |b|)`` over all parameters, where a is
        the back-propagated and b the finite-difference derivative. Below 1e-6 for a correct
        back-propagation in float64 away from the relu kink.
    """
    loss, dW, db = net.loss_and_gradients(X, Y)
    fd_W, fd_b = finite_difference_gradients(net, X, Y, h, order)
    floor = eps * max(1.0, abs(loss))
    return max(relative_error(a, b, floor) for a, b in zip([*dW, *db], [*fd_W, *fd_b], strict=True))
