"""Back-propagation in matrix form: Algorithms 1 and 2 of ``002_ff83eee082f91d18.txt``.

The names follow the theorem. Layer l = 1, ..., L has weights W[l] of shape (p_l, p_{l-1}),
bias b[l] of shape (p_l,) and activation S[l] with derivative S_prime[l]. The dictionaries
z, a, delta are keyed by the layer number l, so ``a[0]`` is the input and ``a[L]`` the output g.

A batch of n examples is carried as the n columns of each matrix, so that each line of
Algorithm 1 is one matrix expression for the whole batch and there is no loop over examples:

====  ===========================================  =========================================
line  Algorithm 1 (one example)                    here (n examples as columns)
====  ===========================================  =========================================
1     a_0 <- x                                     ``a[0] = x``                (p_0, n)
3     z_l <- W_l a_{l-1} + b_l                     ``z[l] = W[l] @ a[l-1] + b[l][:, None]``
4     a_l <- S_l(z_l)                              ``a[l] = S[l](z[l])``
5     delta_L <- (dS_L/dz_L)(dC/dg)                ``delta[L] = losses.output_delta(...) / n``
8     dC/db_l <- delta_l                           ``dC_db[l] = sum(delta[l], axis=1)``
9     dC/dW_l <- delta_l a_{l-1}^T                 ``dC_dW[l] = delta[l] @ a[l-1].T``
10    delta_{l-1} <- S'(z_{l-1}) * W_l^T delta_l   ``(W[l].T @ delta[l]) * S_prime[l-1](z[l-1])``
====  ===========================================  =========================================

The sums over the columns in lines 8 and 9 are Algorithm 2: the gradient of the training loss
C = (1/n) sum_i C_i is the average of the per-example gradients, and the product
``delta[l] @ a[l-1].T`` already sums delta_l^(i) a_{l-1}^(i)T over the examples i. The factor
1/n is applied once, to delta_L (p_L x n numbers), rather than to every gradient: lines 8-10 are
linear in delta, so the columns of ``delta[l]`` are then dC/dz_l^(i) = delta_l^(i) / n, the
derivatives of the mean C itself. For the same reason a gradient step folds the learning rate
into delta_L as well, and back-propagates lr/n * delta_L to get lr times the gradient.

Where each line runs is the business of :mod:`course_pkg.workspace`: ``feed_forward`` and
:func:`descend` (lines 7-10 with the step W_l <- W_l - delta_l a_{l-1}^T folded into line 9)
hand every line to an ops object. By default it evaluates the expression of the table above
and returns a new array, on any Array API library; ``Network.train_step`` on NumPy passes a
workspace that writes into buffers kept for its batch size and lets BLAS subtract the
weight-gradient product from W_l directly, so that a step stores no gradient.
``back_propagate`` returns the gradient itself and always allocates it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from course_pkg import activations as act
from course_pkg import losses
from course_pkg.backend import dtype_of, get_namespace, to_numpy
from course_pkg.workspace import ArrayOps, all_finite, labels_in_range, ops_for

Array = Any


def feed_forward(
    W: dict[int, Array], b: dict[int, Array], S: dict[int, Any], x: Array, xp: ModuleType = np,
    ops: ArrayOps | None = None,
) -> tuple[dict[int, Array], dict[int, Array]]:
    """Lines 1-4 of Algorithm 1 (``002_ff83eee082f91d18.txt``), for a batch of columns.

    Parameters
    ----------
    W, b
        ``W[l]`` of shape (p_l, p_{l-1}) and ``b[l]`` of shape (p_l,), for l = 1, ..., L.
    S
        ``S[l](z, xp)``, the activation of layer l.
    x
        The inputs as columns, shape (p_0, n).
    ops
        Where the lines run (:mod:`course_pkg.workspace`); by default each returns a new array
        of the namespace ``xp``. A :class:`~course_pkg.workspace.Workspace` writes into buffers
        that its next batch overwrites.

    Returns
    -------
    z, a
        ``z[l]`` for l = 1, ..., L and ``a[l]`` for l = 0, ..., L, each of shape (p_l, n).
    """
    ops = ArrayOps(xp) if ops is None else ops
    L = len(W)
    a = {0: x}                                           # line 1
    z = {}
    for l in range(1, L + 1):                            # line 2
        z[l] = ops.affine(W[l], a[l - 1], b[l], l)       # line 3: z_l = W_l a_{l-1} + b_l
        a[l] = ops.activation(S[l], z[l], l)             # line 4: a_l = S_l(z_l)
    return z, a


def back_propagate(
    W: dict[int, Array], z: dict[int, Array], a: dict[int, Array], delta_L: Array,
    S_prime: dict[int, Any], xp: ModuleType = np,
) -> tuple[dict[int, Array], dict[int, Array], dict[int, Array]]:
    """Lines 7-10 of Algorithm 1, summed over the columns of the batch.

    Parameters
    ----------
    W
        ``W[l]``, l = 1, ..., L.
    z, a
        The values of the feed-forward pass (:func:`feed_forward`).
    delta_L
        The output error, shape (p_L, n) (line 5): column i is dC/dz_L^(i) for the loss C that
        is differentiated. For the training loss (1/n) sum_i C_i (eq. 1) that is
        delta_L^(i) / n; for a single example (n = 1) it is delta_L itself.
    S_prime
        ``S_prime[l](z, xp)``, the derivative of layer l's activation, l = 1, ..., L - 1.

    Returns
    -------
    dC_dW, dC_db, delta
        ``dC_dW[l]`` (p_l, p_{l-1}) and ``dC_db[l]`` (p_l,): the gradient of C;
        ``delta[l]`` (p_l, n): column i is dC/dz_l^(i), eq. (2) of ``002_ff83eee082f91d18.txt``.
    """
    L = len(W)
    delta = {L: delta_L}
    dC_dW, dC_db = {}, {}
    for l in range(L, 0, -1):                                     # line 7
        dC_db[l] = xp.sum(delta[l], axis=1)                       # line 8 (summed over i)
        dC_dW[l] = delta[l] @ a[l - 1].T                          # line 9: delta_l a_{l-1}^T
        if l > 1:  # delta_0 is never used: the seed's z_0 <- 0 only lets its loop finish
            delta[l - 1] = W[l].T @ delta[l]                      # line 10: W_l^T delta_l,
            delta[l - 1] *= S_prime[l - 1](z[l - 1], xp)          #   times S'(z_{l-1})
    return dC_dW, dC_db, delta


def descend(
    W: dict[int, Array], b: dict[int, Array], z: dict[int, Array], a: dict[int, Array],
    delta_L: Array, S_prime: dict[int, Any], ops: ArrayOps,
) -> dict[int, Array]:
    """Lines 7-10 of Algorithm 1 with the gradient step folded into lines 8 and 9.

    ``delta_L`` already carries the step size (lr/n times the output error), so lines 8 and 9
    give lr times the gradient, and each is subtracted from its parameter where it is formed:
    b_l <- b_l - sum_i delta_l^(i) and W_l <- W_l - delta_l a_{l-1}^T. On NumPy the second is
    one BLAS gemm with beta = 1 (:mod:`course_pkg.workspace`), so dC/dW_l is never stored.
    Line 10 runs first in each layer, because it needs W_l as it was before the step.

    Returns
    -------
    delta
        ``delta[l]`` (p_l, n), as in :func:`back_propagate` (buffers of ``ops`` on NumPy).
    """
    L = len(W)
    delta = {L: delta_L}
    for l in range(L, 0, -1):                                     # line 7
        if l > 1:  # line 10 first: it needs W_l before the step below changes it
            delta[l - 1] = ops.error_below(                           # line 10:
                W[l], delta[l], S_prime[l - 1], z[l - 1], a[l - 1], l - 1)  # W^T delta * S'
        ops.subtract_column_sum(b[l], delta[l])                   # line 8: b_l -= sum_i delta_l
        ops.subtract_product(W[l], delta[l], a[l - 1])            # line 9: W_l -= delta_l a^T
    return delta


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    try:
        sizes = [_as_int(p) for p in sizes]
    except TypeError:
        raise ValueError(f"sizes must be a list of positive integers, got {sizes!r}") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(
            f"sizes must list at least two positive layer widths [p0, ..., pL], got {sizes}"
        )
    return sizes


def _as_int(p: Any) -> int:
    """``int(p)`` for true integers only (no bools, no floats)."""
    if isinstance(p, bool):
        raise TypeError
    return operator.index(p)


def _check_activations(names: Sequence[str] | None, L: int, loss: str) -> list[str]:
    if names is None:
        return ["tanh"] * (L - 1) + ["softmax" if loss == "cross_entropy" else "identity"]
    if isinstance(names, str):
        names = [names] * (L - 1) + [names]
    names = list(names)
    if len(names) != L:
        raise ValueError(f"expected {L} activations (one per layer l = 1..{L}), got {len(names)}")
    for name in names:
        act.get(name)
    if "softmax" in names[:-1]:
        raise ValueError("softmax is only allowed as the output activation (layer L)")
    if names[-1] == "softmax" and loss != "cross_entropy":
        raise ValueError(f"a softmax output needs loss='cross_entropy', got loss={loss!r}")
    if loss == "cross_entropy" and names[-1] != "softmax":
        raise ValueError(
            f"loss='cross_entropy' needs a 'softmax' output activation, got {names[-1]!r}"
        )
    return names


def _initial_parameters(sizes: list[int], names: list[str], seed: int | None):
    """He initialisation for relu layers, LeCun (variance 1/p_{l-1}) for the others."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for l in range(1, len(sizes)):
        gain = 2.0 if names[l - 1] == "relu" else 1.0
        scale = math.sqrt(gain / sizes[l - 1])
        weights.append(rng.normal(0.0, scale, size=(sizes[l], sizes[l - 1])))
        biases.append(np.zeros(sizes[l]))
    return weights, biases


class Network:
    """A feed-forward network trained by back-propagation.

    Parameters
    ----------
    sizes
        The layer widths [p_0, p_1, ..., p_L].
    activations
        One name per layer l = 1, ..., L (``identity``, ``sigmoid``, ``tanh``, ``relu``;
        ``softmax`` only as the output of ``cross_entropy``). Default: tanh hidden layers and
        the output that matches ``loss``.
    loss
        ``half_squared_error`` (1/2 ||g - y||^2), ``squared_error`` (||g - y||^2) or
        ``cross_entropy`` (-ln g_y with a softmax output).
    seed
        Seed of the random initial weights (ignored where ``weights`` are given).
    backend
        ``"numpy"``, ``"cupy"`` or an Array API namespace module; arrays of that library go in
        and come out.
    dtype
        ``"float64"`` (default; gradient checks need it) or ``"float32"``.
    weights, biases
        Explicit initial parameters: ``weights[l-1]`` is W_l, shape (p_l, p_{l-1}), and
        ``biases[l-1]`` is b_l, shape (p_l,). Biases default to zeros.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activations: Sequence[str] | str | None = None,
        loss: str = "half_squared_error",
        seed: int | None = 0,
        backend: str | ModuleType = "numpy",
        dtype: str = "float64",
        weights: Sequence[Array] | None = None,
        biases: Sequence[Array] | None = None,
    ) -> None:
        self.sizes = _check_sizes(sizes)
        self.L = L = len(self.sizes) - 1
        self.loss_name = losses.check_name(loss)
        self.activation_names = _check_activations(activations, L, loss)
        self.xp = get_namespace(backend)
        self.dtype = dtype_of(self.xp, dtype)
        self.dtype_name = dtype
        self.S = {l: act.get(name)[0] for l, name in enumerate(self.activation_names, 1)}
        self.S_prime = {l: act.get(name)[1] for l, name in enumerate(self.activation_names, 1)}

        W0, b0 = _initial_parameters(self.sizes, self.activation_names, seed)
        if weights is not None:
            W0 = self._check_parameters(
                weights, "weights", lambda l: (self.sizes[l], self.sizes[l - 1])
            )
        if biases is not None:
            b0 = self._check_parameters(biases, "biases", lambda l: (self.sizes[l],))
        self.W = {l: self._asarray(w) for l, w in enumerate(W0, 1)}
        self.b = {l: self._asarray(v) for l, v in enumerate(b0, 1)}
        self._workspaces: dict = {}  # NumPy buffers of train_step, by batch size

    # -- parameters ------------------------------------------------------------------------
    @property
    def weights(self) -> list[Array]:
        """[W_1, ..., W_L]; ``weights[l-1]`` is W_l, shape (p_l, p_{l-1})."""
        return [self.W[l] for l in range(1, self.L + 1)]

    @property
    def biases(self) -> list[Array]:
        """[b_1, ..., b_L]; ``biases[l-1]`` is b_l, shape (p_l,)."""
        return [self.b[l] for l in range(1, self.L + 1)]

    @property
    def num_parameters(self) -> int:
        """dim(theta) = sum_l (p_{l-1} p_l + p_l), as in ``002_ff83eee082f91d18.txt``."""
        p = self.sizes
        return sum(p[l - 1] * p[l] + p[l] for l in range(1, self.L + 1))

    def copy(self, backend: str | ModuleType | None = None, dtype: str | None = None) -> Network:
        """An independent copy, optionally on another backend or dtype."""
        return Network(
            self.sizes, self.activation_names, self.loss_name,
            backend=self.xp if backend is None else backend,
            dtype=self.dtype_name if dtype is None else dtype,
            weights=[to_numpy(w) for w in self.weights],
            biases=[to_numpy(v) for v in self.biases],
        )

    # -- the computation -------------------------------------------------------------------
    def forward(self, X: Array) -> tuple[dict[int, Array], dict[int, Array]]:
        """The feed-forward values z[l], a[l] (columns, shape (p_l, n)) for inputs X (n, p_0)."""
        return feed_forward(self.W, self.b, self.S, self._check_X(X).T, self.xp)

    def predict(self, X: Array) -> Array:
        """The network output g(x) for each row of X: shape (n, p_L)."""
        _, a = self.forward(X)
        return a[self.L].T

    def loss(self, X: Array, Y: Array) -> float:
        """The training loss (1/n) sum_i C_i (eq. 1 of ``002_ff83eee082f91d18.txt``)."""
        X = self._check_X(X)
        Y = self._check_Y(Y, X.shape[0])
        z, a = feed_forward(self.W, self.b, self.S, X.T, self.xp)
        return self._mean_cost(z, a, Y)

    def loss_and_gradients(self, X: Array, Y: Array) -> tuple[float, list[Array], list[Array]]:
        """The training loss and its gradients with respect to every W_l and b_l.

        Returns
        -------
        loss, dW, db
            ``dW[l-1]`` has the shape of W_l and ``db[l-1]`` that of b_l.
        """
        loss, dC_dW, dC_db = self._loss_and_gradients(X, Y, scale=1.0)
        L = self.L
        return loss, [dC_dW[l] for l in range(1, L + 1)], [dC_db[l] for l in range(1, L + 1)]

    def train_step(self, X: Array, Y: Array, lr: float) -> float:
        """One step of gradient descent on this batch: theta <- theta - lr * grad.

        The learning rate multiplies delta_L before back-propagation (which is linear in it), so
        lines 8 and 9 give lr * grad, and :func:`course_pkg.network.descend` subtracts each from
        its parameter as it is formed. On NumPy the step reuses the buffers of its batch size and
        stores no gradient (:mod:`course_pkg.workspace`). Returns the training loss before the
        update.
        """
        lr = _check_learning_rate(lr)
        loss, _, _ = self._loss_and_gradients(X, Y, scale=lr, step=True)
        return loss

    def _loss_and_gradients(self, X: Array, Y: Array, scale: float, step: bool = False):
        """The loss and ``scale`` times its gradient (Algorithms 1 and 2).

        With ``step``, the parameters move by minus that gradient instead, and no gradient is
        returned (``None, None``).
        """
        X = self._check_X(X)
        n = X.shape[0]
        Y = self._check_Y(Y, n)
        xp, L = self.xp, self.L
        ops = ops_for(xp, self.sizes, self.dtype, n, self._workspaces)
        y = Y if Y.ndim == 1 else Y.T
        z, a = feed_forward(self.W, self.b, self.S, X.T, xp, ops)
        loss = ops.mean_cost(self.loss_name, z[L], a[L], y)
        delta_L = ops.output_delta(self.loss_name, self.S_prime[L], z[L], a[L], y)   # line 5
        delta_L *= scale / n                  # Algorithm 2: the mean over the batch (and lr)
        if step:
            descend(self.W, self.b, z, a, delta_L, self.S_prime, ops)
            return loss, None, None
        dC_dW, dC_db, _ = back_propagate(self.W, z, a, delta_L, self.S_prime, xp)
        return loss, dC_dW, dC_db

    def _mean_cost(self, z, a, Y) -> float:
        y = Y if Y.ndim == 1 else Y.T
        return float(self.xp.mean(losses.costs(self.loss_name, z[self.L], a[self.L], y, self.xp)))

    # -- input checks ----------------------------------------------------------------------
    def _asarray(self, x: Array) -> Array:
        xp = self.xp
        if xp is not np and isinstance(x, np.ndarray):
            x = np.ascontiguousarray(x)
        return xp.asarray(x, dtype=self.dtype, copy=True)

    def _check_parameters(self, arrays, what: str, shape_of) -> list[np.ndarray]:
        arrays = list(arrays)
        if len(arrays) != self.L:
            raise ValueError(f"expected {self.L} {what} (one per layer), got {len(arrays)}")
        out = []
        for l, array in enumerate(arrays, 1):
            array = np.asarray(to_numpy(array), dtype=float)
            if array.shape != shape_of(l):
                raise ValueError(
                    f"{what}[{l - 1}] (layer {l}) must have shape {shape_of(l)}, got {array.shape}"
                )
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{what}[{l - 1}] (layer {l}) contains NaN or inf")
            out.append(array)
        return out

    def _to_backend(self, X: Array) -> Array:
        xp = self.xp
        try:
            return xp.asarray(X)
        except Exception:
            return xp.asarray(np.asarray(to_numpy(X)))

    def _check_X(self, X: Array) -> Array:
        xp = self.xp
        X = self._to_backend(X)
        p0 = self.sizes[0]
        if X.ndim != 2 or X.shape[1] != p0:
            raise ValueError(f"X must have shape (n_samples, {p0}), got {tuple(X.shape)}")
        if X.shape[0] == 0:
            raise ValueError("X has no rows: expected at least one example")
        if X.dtype != self.dtype and not _is_real(X.dtype, xp):
            raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
        if X.dtype != self.dtype:
            X = xp.astype(X, self.dtype)
        if not all_finite(X, xp):
            raise ValueError("X contains NaN or inf; expected finite numbers")
        return X

    def _check_Y(self, Y: Array, n: int) -> Array:
        xp = self.xp
        Y = self._to_backend(Y)
        pL = self.sizes[-1]
        if self.loss_name == "cross_entropy":
            if Y.ndim != 1 or Y.shape[0] != n:
                raise ValueError(
                    f"cross_entropy needs Y as a vector of {n} integer labels, shape ({n},), "
                    f"got shape {tuple(Y.shape)}"
                )
            if not _is_integral(Y.dtype, xp):
                raise ValueError(f"class labels must be integers in [0, {pL}), got dtype {Y.dtype}")
            if not labels_in_range(Y, pL, xp):
                raise ValueError(
                    f"class labels must lie in [0, {pL}) for {pL} outputs; got labels from "
                    f"{int(xp.min(Y))} to {int(xp.max(Y))}"
                )
            return Y
        if Y.ndim != 2 or tuple(Y.shape) != (n, pL):
            hint = " (use Y.reshape(-1, 1))" if Y.ndim == 1 and pL == 1 else ""
            raise ValueError(
                f"Y must have shape ({n}, {pL}) for loss {self.loss_name!r}, "
                f"got {tuple(Y.shape)}{hint}"
            )
        if Y.dtype != self.dtype and not _is_real(Y.dtype, xp):
            raise ValueError(f"Y must hold real numbers, got dtype {Y.dtype}")
        if Y.dtype != self.dtype:
            Y = xp.astype(Y, self.dtype)
        if not all_finite(Y, xp):
            raise ValueError("Y contains NaN or inf; expected finite numbers")
        return Y

    def __repr__(self) -> str:
        layers = "-".join(map(str, self.sizes))
        return (f"Network({layers}, activations={self.activation_names}, "
                f"loss={self.loss_name!r}, backend={self.xp.__name__!r})")


def _is_integral(dtype: Any, xp: ModuleType) -> bool:
    if xp is np:  # the same test as np.isdtype, without its cost per call
        return dtype.kind in "iu"
    return xp.isdtype(dtype, "integral")


def _is_real(dtype: Any, xp: ModuleType) -> bool:
    """A real floating or integer dtype (what X and a regression Y may hold)."""
    if xp is np:
        return dtype.kind in "fiu"
    return xp.isdtype(dtype, "real floating") or xp.isdtype(dtype, "integral")


def _check_learning_rate(lr: Any) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
        raise ValueError(f"the learning rate must be a positive finite number, got {lr!r}")
    lr = float(lr)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"the learning rate must be a positive finite number, got {lr!r}")
    return lr
