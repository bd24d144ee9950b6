"""Where the arithmetic of Algorithm 1 runs: one operation per line, in one of two ways.

:mod:`course_pkg.network` writes Algorithm 1 of ``002_ff83eee082f91d18.txt`` once, line by line,
and hands each line to an *ops* object from this module:

========  ===============================  ===================================================
line      operation                        method
========  ===============================  ===================================================
3         z_l = W_l a_{l-1} + b_l          ``affine(W, a_prev, b, l)``
4         a_l = S_l(z_l)                   ``activation(S, z, l)``
5         delta_L = (dS_L/dz_L)(dC/dg)     ``output_delta(loss, S_prime, z, g, y)``
8 + step  b_l <- b_l - sum_i delta_l^(i)   ``subtract_column_sum(b, delta)``
9 + step  W_l <- W_l - delta_l a_{l-1}^T   ``subtract_product(W, delta, a_prev)``
10        (W_l^T delta_l) * S'(z_{l-1})    ``error_below(W, delta, S_prime, z, a, l)``
========  ===============================  ===================================================

:class:`ArrayOps` writes every line as one expression of the Array API standard that returns a
new array; it runs on any library (NumPy, CuPy, ``array_api_strict``, PyTorch) and allocates
what it must. :class:`Workspace` is the NumPy path of a training step: arrays of shape
(p_l, n) are buffers kept from one batch of n examples to the next, and the matrix products
write into them (``numpy.matmul(..., out=...)``). The gradient step is folded into the
weight-gradient product: a BLAS ``gemm`` computes C <- alpha A B + beta C, and with C = W_l,
alpha = -1 and beta = 1 it subtracts delta_l a_{l-1}^T from W_l in the same pass, so dC/dW_l is
never stored (:func:`course_pkg.blas.gemm`, in the BLAS library that NumPy's ``@`` uses, so that
one pool of BLAS threads serves every product).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from course_pkg import activations as act
from course_pkg import losses
from course_pkg.blas import gemm

Array = Any


def all_finite(X: Array, xp: ModuleType) -> bool:
    """True if no entry of the floating array X is NaN or +-inf.

    On NumPy the test is one BLAS dot product X . X: every term x^2 is >= 0, so the sum is NaN
    if an entry is NaN and +inf if an entry is infinite; a finite sum proves X finite. A sum
    that overflows (entries above ~1e154 in float64) is checked again entry by entry.
    """
    if xp is np and X.dtype.kind == "f" and (X.flags.c_contiguous or X.flags.f_contiguous):
        flat = X.ravel(order="K")
        if math.isfinite(np.vdot(flat, flat)):      # vdot, unlike dot, is silent on overflow
            return True
    return bool(xp.all(xp.isfinite(X)))


def labels_in_range(y: Array, p: int, xp: ModuleType) -> bool:
    """True if every integer label y_i satisfies 0 <= y_i < p."""
    if xp is np and y.dtype.isnative:
        # seen as unsigned, a negative label is a huge number: one reduction checks both ends
        return bool(y.size == 0 or np.maximum.reduce(y.view(f"u{y.dtype.itemsize}")) < p)
    return not (bool(xp.any(y < 0)) or bool(xp.any(y >= p)))


class ArrayOps:
    """Each line of Algorithm 1 as one Array API expression that returns a new array."""

    def __init__(self, xp: ModuleType) -> None:
        self.xp = xp

    def affine(self, W: Array, a_prev: Array, b: Array, l: int) -> Array:
        """Line 3: z_l = W_l a_{l-1} + b_l, the bias added to every column."""
        z = W @ a_prev
        z += b[:, None]
        return z

    def activation(self, S: Callable[..., Array], z: Array, l: int) -> Array:
        """Line 4: a_l = S_l(z_l)."""
        return S(z, self.xp)

    def mean_cost(self, loss: str, z_L: Array, g: Array, y: Array) -> float:
        """The training loss (1/n) sum_i C_i, eq. (1) of ``002_ff83eee082f91d18.txt``."""
        return float(self.xp.mean(losses.costs(loss, z_L, g, y, self.xp)))

    def output_delta(self, loss: str, S_prime: Callable[..., Array] | None, z_L: Array,
                     g: Array, y: Array) -> Array:
        """Line 5: delta_L = (dS_L/dz_L)(dC/dg) (:func:`course_pkg.losses.output_delta`)."""
        return losses.output_delta(loss, S_prime, z_L, g, y, self.xp)

    def error_below(self, W: Array, delta: Array, S_prime: Callable[..., Array], z: Array,
                    a: Array, l: int) -> Array:
        """Line 10: delta_l = (W_{l+1}^T delta_{l+1}) * S'(z_l), for the layer l below."""
        delta_below = W.T @ delta
        delta_below *= S_prime(z, self.xp)
        return delta_below

    def subtract_column_sum(self, b: Array, delta: Array) -> None:
        """Line 8 and the step: b_l <- b_l - sum_i delta_l^(i), in place."""
        b -= self.xp.sum(delta, axis=1)

    def subtract_product(self, W: Array, delta: Array, a_prev: Array) -> None:
        """Line 9 and the step: W_l <- W_l - delta_l a_{l-1}^T, in place."""
        W -= delta @ a_prev.T


def _buffer(p: int, n: int, dtype: Any) -> np.ndarray:
    """An uninitialised (p, n) buffer, stored by rows: each unit's n values side by side."""
    return np.empty((p, n), dtype=dtype)


class Workspace(ArrayOps):
    """The buffers of one network for batches of n examples, and the BLAS calls that fill them.

    Parameters
    ----------
    sizes
        The layer widths [p_0, ..., p_L].
    dtype
        ``numpy.float64`` or ``numpy.float32``.
    n
        The batch size.

    Every method returns one of the buffers, which the next batch overwrites: the values of a
    training step are not the caller's to keep. Activations other than identity, relu, tanh and
    softmax, and the derivatives other than those of identity, relu and tanh, fall back to
    their allocating formulas.
    """

    def __init__(self, sizes: list[int], dtype: Any, n: int) -> None:
        super().__init__(np)
        self.n, self.dtype = n, np.dtype(dtype)
        layers = range(1, len(sizes))
        self.z = {l: _buffer(sizes[l], n, dtype) for l in layers}
        self.a = {l: _buffer(sizes[l], n, dtype) for l in layers}
        self.delta = {l: _buffer(sizes[l], n, dtype) for l in layers}
        self._scratch = {l: _buffer(sizes[l], n, dtype) for l in layers}
        self._mask = {l: _buffer(sizes[l], n, bool) for l in layers}
        self._row_sums = np.empty(max(sizes[1:]), dtype=dtype)   # line 8: sum_i delta_l^(i)
        self._products: dict[tuple[int, ...], np.ndarray] = {}     # line 9, small W_l
        # relu as maximum(z, 0) against an array of zeros: NumPy's vectorised loop for two
        # arrays runs about 2-3 times faster than its loop for an array and a scalar
        zeros = np.zeros((max(sizes[1:]), n), dtype=dtype)
        self._zeros = {l: zeros[:sizes[l]] for l in layers}
        self._ones = np.ones(n, dtype=dtype)
        self._columns = np.arange(n)
        self._classes = np.arange(sizes[-1])[:, None]
        self._max = np.empty((1, n), dtype=dtype)      # softmax: max_k z_k of each column
        self._sum = np.empty((1, n), dtype=dtype)      # softmax: sum_k exp(z_k - max) per column
        self._softmax_layer: int | None = None

    # -- line 3 -------------------------------------------------------------------------------
    def affine(self, W: np.ndarray, a_prev: np.ndarray, b: np.ndarray, l: int) -> np.ndarray:
        """z_l = W_l a_{l-1} + b_l into the buffer z_l.

        A large z_l gets the bias first, and gemm(alpha=1, A=W_l, B=a_{l-1}, beta=1, C=z_l) adds
        the product to it (copying b_l into every column is cheaper than adding it to every
        column afterwards). A small one takes NumPy's product, then the bias.
        """
        z = self.z[l]
        if z.size >= FOLD_MIN:
            np.copyto(z, b[:, None])
            gemm(1.0, W, a_prev, 1.0, z)
            return z
        np.matmul(W, a_prev, out=z)
        return np.add(z, b[:, None], out=z)

    # -- line 4 -------------------------------------------------------------------------------
    def activation(self, S: Callable[..., Array], z: np.ndarray, l: int) -> np.ndarray:
        """a_l = S_l(z_l) into the buffer a_l; the same ufuncs as :mod:`course_pkg.activations`."""
        out = self.a[l]
        if S is act.relu:
            return np.maximum(z, self._zeros[l], out=out)
        if S is act.tanh:
            return np.tanh(z, out=out)
        if S is act.identity:
            return z
        if S is act.softmax:
            np.maximum.reduce(z, axis=0, keepdims=True, out=self._max)
            np.subtract(z, self._max, out=out)
            np.exp(out, out=out)
            np.add.reduce(out, axis=0, keepdims=True, out=self._sum)
            out /= self._sum
            self._softmax_layer = l
            return out
        return S(z, np)

    # -- the loss and line 5 ------------------------------------------------------------------
    def mean_cost(self, loss: str, z_L: np.ndarray, g: np.ndarray, y: np.ndarray) -> float:
        """(1/n) sum_i C_i; cross-entropy reuses the max and the sum of the softmax just taken.

        C_i = -ln softmax(z)_{y_i} = ln s_i - (z_{y_i, i} - m_i), with m_i the column maximum
        and s_i = sum_k exp(z_{k,i} - m_i): the log-sum-exp form of
        :func:`course_pkg.losses.cross_entropy`.
        """
        if loss != "cross_entropy" or z_L is not self.z.get(self._softmax_layer):
            return super().mean_cost(loss, z_L, g, y)
        shifted_y = z_L[y, self._columns]
        shifted_y -= self._max[0]
        C = np.log(self._sum[0])
        C -= shifted_y
        return float(np.add.reduce(C) / self.n)

    def output_delta(self, loss: str, S_prime: Callable[..., Array] | None, z_L: np.ndarray,
                     g: np.ndarray, y: np.ndarray) -> np.ndarray:
        """delta_L into its buffer: g - e_y (cross-entropy), S'(z_L) * c (g - y) (squares)."""
        L = len(self.delta)
        delta = self.delta[L]
        if loss == "cross_entropy":
            e_y = np.equal(self._classes, y, out=self._mask[L])   # e_y[k, i] = (k == y_i)
            np.copyto(delta, g)
            return np.subtract(delta, 1.0, out=delta, where=e_y)   # g - e_y
        np.subtract(g, y, out=delta)
        if loss == "squared_error":
            delta *= 2.0
        elif loss != "half_squared_error":
            return super().output_delta(loss, S_prime, z_L, g, y)
        return self._times_S_prime(delta, S_prime, z_L, g, L)

    # -- line 10 ------------------------------------------------------------------------------
    def error_below(self, W: np.ndarray, delta: np.ndarray, S_prime: Callable[..., Array],
                    z: np.ndarray, a: np.ndarray, l: int) -> np.ndarray:
        """delta_l = (W_{l+1}^T delta_{l+1}) * S'(z_l): the product into the buffer, then S'."""
        delta_below = np.matmul(W.T, delta, out=self.delta[l])
        return self._times_S_prime(delta_below, S_prime, z, a, l)

    def _times_S_prime(self, delta: np.ndarray, S_prime: Callable[..., Array] | None,
                       z: np.ndarray, a: np.ndarray, l: int) -> np.ndarray:
        """delta *= S'(z), in place. a = S(z) is the buffer that :meth:`activation` filled."""
        if S_prime is act.identity_prime:
            return delta                                  # S' = 1
        if S_prime is act.relu_prime:
            mask = self._mask[l]
            np.greater(z, 0.0, out=mask)                  # S' = 1 where z > 0, else 0
            return np.multiply(delta, mask, out=delta)
        if S_prime is act.tanh_prime and a is self.a.get(l):
            t2 = np.multiply(a, a, out=self._scratch[l])  # S' = 1 - tanh(z)^2 = 1 - a^2
            np.subtract(1.0, t2, out=t2)
            return np.multiply(delta, t2, out=delta)
        delta *= S_prime(z, np)
        return delta

    # -- lines 8 and 9 with the step ----------------------------------------------------------
    def subtract_column_sum(self, b: np.ndarray, delta: np.ndarray) -> None:
        """b_l <- b_l - delta_l 1: the sum over the batch is a matrix-vector product."""
        row_sums = np.matmul(delta, self._ones, out=self._row_sums[:delta.shape[0]])
        np.subtract(b, row_sums, out=b)

    def subtract_product(self, W: np.ndarray, delta: np.ndarray, a_prev: np.ndarray) -> None:
        """W_l <- W_l - delta_l a_{l-1}^T in W_l's own memory, without storing dC/dW_l.

        A large W_l takes one gemm(alpha=-1, A=delta_l, B=a_{l-1}^T, beta=1, C=W_l)
        (:func:`course_pkg.blas.gemm`), which subtracts the product as it forms it. For a small
        one the call through ctypes costs more than the pass it saves: the product goes into a
        buffer and is subtracted. A W_l that is not contiguous gets the allocating formula.
        """
        if not (W.flags.c_contiguous or W.flags.f_contiguous) or W.dtype != self.dtype:
            super().subtract_product(W, delta, a_prev)
        elif W.size >= FOLD_MIN:
            gemm(-1.0, delta, a_prev.T, 1.0, W)
        else:
            product = self._products.get(W.shape)
            if product is None:
                product = self._products[W.shape] = np.empty(W.shape, dtype=self.dtype)
            np.subtract(W, np.matmul(delta, a_prev.T, out=product), out=W)


def ops_for(xp: ModuleType, sizes: list[int], dtype: Any, n: int,
            cache: dict[int, Workspace]) -> ArrayOps:
    """The ops of a step on a batch of n: a cached :class:`Workspace` on NumPy, else ArrayOps.

    ``cache`` (owned by the network) keeps the workspaces of the last few batch sizes, so that
    a training loop whose last batch is smaller does not rebuild the buffers of either size.
    """
    if xp is not np:
        return ArrayOps(xp)
    ws = cache.get(n)
    if ws is None:
        if len(cache) >= MAX_WORKSPACES:
            del cache[next(iter(cache))]
        ws = cache[n] = Workspace(sizes, dtype, n)
    return ws


MAX_WORKSPACES = 4
"""Batch sizes whose buffers a network keeps at once (the oldest is dropped first)."""

FOLD_MIN = 2**14
"""Entries of z_l or W_l from which a product is added into it by one gemm with beta = 1. The
call through ctypes costs about two microseconds more than NumPy's own product and the pass
after it; that pass costs as much at about this size (measured on 784-512-512-10 and
64-32-10)."""
