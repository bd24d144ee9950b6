"""The small one-argument NumPy helpers that the problem sets import.

Each works on a whole array, entry by entry or column by column (the batch as columns, as in
``002_ff83eee082f91d18.txt``). They are helpers, not answers: the grading sandbox keeps them.
"""

from __future__ import annotations

import numpy as np

from course_pkg import activations as act


def tanh(z: np.ndarray) -> np.ndarray:
    """S(z) = tanh(z)."""
    return np.tanh(z)


def tanh_prime(z: np.ndarray) -> np.ndarray:
    """S'(z) = 1 - tanh(z)^2."""
    return 1.0 - np.tanh(z) ** 2


def sigmoid(z: np.ndarray) -> np.ndarray:
    """S(z) = 1 / (1 + exp(-z))."""
    return act.sigmoid(np.asarray(z, dtype=float), np)


def sigmoid_prime(z: np.ndarray) -> np.ndarray:
    """S'(z) = S(z) (1 - S(z))."""
    return act.sigmoid_prime(np.asarray(z, dtype=float), np)


def softmax(z: np.ndarray, axis: int = 0) -> np.ndarray:
    """The softmax of each column (``axis=0``) of z."""
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def one_hot(y: np.ndarray, p: int) -> np.ndarray:
    """The columns e_y, shape (p, n): a 1 in row y_i of column i, zeros elsewhere."""
    return (np.arange(p)[:, None] == np.asarray(y)[None, :]).astype(float)


PAIRS = {"sigmoid": (sigmoid, sigmoid_prime), "tanh": (tanh, tanh_prime)}
"""Activation name -> (S, S') as named functions (which can be passed into the sandbox)."""
