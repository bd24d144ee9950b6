"""The two-layer tanh network of ``001_ce18104b0c2237dd.txt`` (after Bishop, eqs. 5.3-5.12).

In this seed's notation, for one example with inputs x_i: hidden pre-activations h_j, hidden
outputs z_j = f(h_j) with f = tanh, network outputs y_k (linear), and targets y_hat_k (here
y_hat is the *target*, the opposite of ``000_4a3fe56ce2bc8b6e.txt``). There are no biases.
``w1[j, i]`` is w_ji^(1) and ``w2[k, j]`` is w_kj^(2).
"""

from __future__ import annotations

import numpy as np


def f(h: np.ndarray) -> np.ndarray:
    """Eq. (5.6): f(h) = tanh(h)."""
    return np.tanh(h)


def f_prime_from_output(z: np.ndarray) -> np.ndarray:
    """Eq. (5.7): f'(h) = 1 - f(h)^2, written in terms of the output z = f(h)."""
    return 1.0 - z**2


def forward(w1: np.ndarray, w2: np.ndarray, x: np.ndarray):
    """Eqs. (5.3)-(5.5): h_j = sum_i w_ji x_i, z_j = f(h_j), y_k = sum_j w_kj z_j.

    Returns
    -------
    h, z, y
        Shapes (M,), (M,), (K,) for w1 (M, D), w2 (K, M) and x (D,).
    """
    h = w1 @ x
    z = f(h)
    y = w2 @ z
    return h, z, y


def E(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Eq. (5.8): E = 1/2 sum_k (y_k - y_hat_k)^2."""
    return 0.5 * float(np.sum((y - y_hat) ** 2))


def dE_dw2(z: np.ndarray, y: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """Eq. (5.9): dE/dw_kj^(2) = (y_k - y_hat_k) z_j, for all k, j at once (K, M)."""
    return np.outer(y - y_hat, z)


def dE_dz(w2: np.ndarray, y: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """Eq. (5.11): dE/dz_j = sum_k (y_k - y_hat_k) w_kj^(2).

    Each hidden unit z_j feeds every output y_k, so its derivative sums over k.
    """
    return (y - y_hat) @ w2


def dE_dw1(w2: np.ndarray, x: np.ndarray, z: np.ndarray, y: np.ndarray,
           y_hat: np.ndarray) -> np.ndarray:
    """Eq. (5.12): dE/dw_ji^(1) = (1 - z_j^2) x_i sum_k (y_k - y_hat_k) w_kj^(2), shape (M, D).

    It is eq. (5.10), dE/dw_ji = (dE/dz_j)(dz_j/dh_j) x_i, with eq. (5.11) substituted in.
    """
    return np.outer(f_prime_from_output(z) * dE_dz(w2, y, y_hat), x)


def gradients(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y_hat: np.ndarray):
    """E and its gradients (dE/dw1, dE/dw2) for one example (x, y_hat)."""
    _, z, y = forward(w1, w2, x)
    return E(y, y_hat), dE_dw1(w2, x, z, y, y_hat), dE_dw2(z, y, y_hat)
