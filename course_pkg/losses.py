"""Costs C, their gradients dC/dg, and the output error delta_L.

A batch is carried as columns: ``g`` and ``y`` have shape (p_L, n), and every function returns
one value per column. The training loss of ``002_ff83eee082f91d18.txt`` (eq. 1) is the mean
of these per-example costs C_i.

=====================  ======================  =================  =========================
name                   C(g, y)                 dC/dg              seeds
=====================  ======================  =================  =========================
half_squared_error     1/2 ||g - y||^2         g - y              000 (E), 001 (eq. 5.8)
squared_error          ||g - y||^2             2 (g - y)          002 (multi-output regr.)
cross_entropy          -ln g_y (softmax g)     (combined below)   002 (multi-logit)
=====================  ======================  =================  =========================

Line 5 of Algorithm 1 is delta_L = (dS_L/dz_L) (dC/dg). For a componentwise S_L the Jacobian
is diagonal and delta_L = S'(z_L) * dC/dg; for softmax with cross-entropy the product
collapses to delta_L = g - e_y, where e_y is the one-hot column of the label y.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from array_api_compat import device

Array = Any


def half_squared_error(g: Array, y: Array, xp: ModuleType) -> Array:
    """C = 1/2 sum_k (g_k - y_k)^2 for each column."""
    r = g - y
    return 0.5 * xp.sum(r * r, axis=0)


def half_squared_error_grad(g: Array, y: Array, xp: ModuleType) -> Array:
    """dC/dg = g - y."""
    return g - y


def squared_error(g: Array, y: Array, xp: ModuleType) -> Array:
    """C = sum_k (g_k - y_k)^2 for each column (``002_ff83eee082f91d18.txt``)."""
    r = g - y
    return xp.sum(r * r, axis=0)


def squared_error_grad(g: Array, y: Array, xp: ModuleType) -> Array:
    """dC/dg = 2 (g - y)."""
    return 2.0 * (g - y)


def one_hot(y: Array, p: int, dtype: Any, xp: ModuleType) -> Array:
    """The columns e_y: shape (p, n), with e_y[k, i] = 1 if y_i = k else 0."""
    classes = xp.arange(p, device=device(y))
    return xp.astype(classes[:, None] == y[None, :], dtype)


def log_softmax(z: Array, xp: ModuleType) -> Array:
    """ln softmax(z) = z - ln sum_k exp(z_k), column by column, without overflow."""
    shifted = z - xp.max(z, axis=0, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=0, keepdims=True))


def cross_entropy(z: Array, y: Array, xp: ModuleType) -> Array:
    """C = -ln g_y = -z_y + ln sum_k exp(z_k), from the logits z (shape (p_L, n)).

    Computed from z rather than from g = softmax(z), so that a probability that rounds to 0
    still gives a finite cost (the log-sum-exp form of ``002_ff83eee082f91d18.txt``).
    """
    e_y = one_hot(y, z.shape[0], z.dtype, xp)
    return -xp.sum(log_softmax(z, xp) * e_y, axis=0)


def softmax_cross_entropy_delta(g: Array, y: Array, xp: ModuleType) -> Array:
    """delta_L = g - e_y, the output error of softmax followed by cross-entropy."""
    return g - one_hot(y, g.shape[0], g.dtype, xp)


LOSSES: dict[str, tuple[Callable[..., Array], Callable[..., Array] | None]] = {
    "half_squared_error": (half_squared_error, half_squared_error_grad),
    "squared_error": (squared_error, squared_error_grad),
    "cross_entropy": (cross_entropy, None),
}
"""Name -> (C, dC/dg). Cross-entropy's C takes the logits z_L and has no separate dC/dg:
its delta_L comes from :func:`softmax_cross_entropy_delta`."""


def check_name(name: str) -> str:
    """Return ``name`` if it is a known loss, else raise a ValueError listing them."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    return name


def costs(name: str, z_L: Array, g: Array, y: Array, xp: ModuleType) -> Array:
    """The per-example costs C_i of a batch, shape (n,)."""
    if name == "cross_entropy":
        return cross_entropy(z_L, y, xp)
    return LOSSES[name][0](g, y, xp)


def output_delta(
    name: str, S_prime: Callable[..., Array] | None, z_L: Array, g: Array, y: Array,
    xp: ModuleType,
) -> Array:
    """delta_L = (dS_L/dz_L)(dC/dg), line 5 of Algorithm 1 (``002_ff83eee082f91d18.txt``).

    For cross-entropy (with its softmax output) this is g - e_y; for the squared losses,
    S'(z_L) * dC/dg, which is S'(z_L) * 2(g - y) for ``squared_error``.
    """
    if name == "cross_entropy":
        return softmax_cross_entropy_delta(g, y, xp)
    dC_dg = LOSSES[name][1](g, y, xp)
    if S_prime is None:
        raise ValueError("softmax output needs loss='cross_entropy'")
    return S_prime(z_L, xp) * dC_dg
