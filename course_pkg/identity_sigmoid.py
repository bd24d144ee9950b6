"""The one-weight network of ``000_4a3fe56ce2bc8b6e.txt``, in that seed's notation.

The network learns the identity T(x) = x on x in {0, 1} with one weight w and no bias:
the output is y_hat = T_hat(x) = A(w x) with the logistic A, and the error is
E(y_hat, y) = 1/2 (y_hat - y)^2, where y = T(x) is the desired output. (In this seed y_hat is
the output and y the target; ``001_ce18104b0c2237dd.txt`` uses the opposite names.)
"""

from __future__ import annotations

import numpy as np

from course_pkg.activations import sigmoid


def A(s: float | np.ndarray) -> float | np.ndarray:
    """The logistic activation A(s) = 1 / (1 + e^{-s})."""
    return sigmoid(np.asarray(s, dtype=float), np)


def T_hat(w: float, x: float | np.ndarray) -> float | np.ndarray:
    """The feed-forward function y_hat = T_hat(x) = A(w x)."""
    return A(w * np.asarray(x, dtype=float))


def E(y_hat: float | np.ndarray, y: float | np.ndarray) -> float | np.ndarray:
    """The error E(y_hat, y) = 1/2 (y_hat - y)^2."""
    return 0.5 * (np.asarray(y_hat) - np.asarray(y)) ** 2


def dE_dw(w: float, x: float | np.ndarray, y: float | np.ndarray) -> float | np.ndarray:
    """Eq. (6): dE/dw = (y_hat - y) x A(w x) (1 - A(w x)).

    The chain rule through y_hat gives (y_hat - y) dy_hat/dw (eqs. 1-3; the target y does not
    depend on w, so its term is zero), and dA(wx)/dw = x A(wx)(1 - A(wx)) (eqs. 4-6).
    """
    s = A(w * np.asarray(x, dtype=float))
    return (s - y) * x * s * (1.0 - s)


def update(w: float, x: float, y: float, mu: float) -> float:
    """One step of gradient descent: w_new = w_old - mu dE/dw (the seed's answer)."""
    return float(w - mu * dE_dw(w, x, y))


def train(w0: float, mu: float, steps: int, xs=(0.0, 1.0)) -> np.ndarray:
    """Cycle through ``xs`` (targets y = x), one update per example; return w after each step."""
    w, path = float(w0), [float(w0)]
    for i in range(steps):
        x = xs[i % len(xs)]
        w = update(w, x, x, mu)
        path.append(w)
    return np.asarray(path)
