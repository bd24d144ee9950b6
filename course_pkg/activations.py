"""Activation functions S and their derivatives S'.

Each hidden layer applies one scalar function S componentwise, ``a_l = S(z_l)``; its
derivative S' fills the diagonal of the matrix D_l of the theorem in
``002_ff83eee082f91d18.txt`` (eq. 2). The table ``ACTIVATIONS`` maps a name to the pair
``(S, S_prime)``; both take the pre-activation ``z`` and an array namespace ``xp``.

``softmax`` is not componentwise: its Jacobian is full. It is only allowed as the output of
the cross-entropy loss, where the product of its Jacobian with dC/dg collapses to g - e_y
(see :mod:`course_pkg.losses`).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

Array = Any
Activation = Callable[[Array, ModuleType], Array]


def identity(z: Array, xp: ModuleType) -> Array:
    """S(z) = z."""
    return z


def identity_prime(z: Array, xp: ModuleType) -> Array:
    """S'(z) = 1."""
    return xp.ones_like(z)


def sigmoid(z: Array, xp: ModuleType) -> Array:
    """The logistic function S(z) = 1 / (1 + e^{-z}).

    Written with ``e = exp(-|z|)``, which never overflows (exp(-z) would for z < -709 in float64):
    S(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0, both accurate to the last digits
    even where S(z) is tiny.
    """
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_prime(z: Array, xp: ModuleType) -> Array:
    """S'(z) = S(z) (1 - S(z)), eq. (6) of ``000_4a3fe56ce2bc8b6e.txt``.

    With ``e = exp(-|z|)`` this is e / (1 + e)^2 for either sign of z, which keeps its relative
    accuracy deep in the saturated tails (S(1 - S) would lose it to cancellation).
    """
    e = xp.exp(-xp.abs(z))
    return e / ((1.0 + e) * (1.0 + e))


def tanh(z: Array, xp: ModuleType) -> Array:
    """S(z) = tanh(z), eq. (5.6) of ``001_ce18104b0c2237dd.txt``."""
    return xp.tanh(z)


def tanh_prime(z: Array, xp: ModuleType) -> Array:
    """S'(z) = 1 - tanh(z)^2, eq. (5.7) of ``001_ce18104b0c2237dd.txt``."""
    t = xp.tanh(z)
    return 1.0 - t * t


def relu(z: Array, xp: ModuleType) -> Array:
    """S(z) = max(z, 0)."""
    return xp.maximum(z, 0.0)


def relu_prime(z: Array, xp: ModuleType) -> Array:
    """S'(z) = 1 for z > 0 and 0 for z < 0; at the kink z = 0 we take 0.

    ``002_ff83eee082f91d18.txt`` explains why the kink does not trouble back-propagation:
    rounding makes an exact z = 0 unlikely, so C is differentiable almost everywhere.
    """
    return xp.astype(z > 0.0, z.dtype)


def softmax(z: Array, xp: ModuleType) -> Array:
    """S(z)_k = exp(z_k) / sum_j exp(z_j), over axis 0 (one column per example).

    Shifting z by its maximum leaves the result unchanged and keeps exp from overflowing.
    """
    e = xp.exp(z - xp.max(z, axis=0, keepdims=True))
    e /= xp.sum(e, axis=0, keepdims=True)
    return e


ACTIVATIONS: dict[str, tuple[Activation, Activation | None]] = {
    "identity": (identity, identity_prime),
    "sigmoid": (sigmoid, sigmoid_prime),
    "tanh": (tanh, tanh_prime),
    "relu": (relu, relu_prime),
    "softmax": (softmax, None),
}
"""Name -> (S, S_prime). Softmax has no componentwise S' (its Jacobian is not diagonal)."""

COMPONENTWISE = tuple(name for name, (_, prime) in ACTIVATIONS.items() if prime is not None)


def get(name: str) -> tuple[Activation, Activation | None]:
    """Look up ``(S, S_prime)`` by name, with an error that lists the known names."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None
