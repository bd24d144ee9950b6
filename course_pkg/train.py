"""Mini-batch stochastic gradient descent with :meth:`Network.train_step`.

Each epoch shuffles the training set and takes one gradient step per mini-batch: the update
w <- w - eta * grad E of eq. (1.1) in ``001_ce18104b0c2237dd.txt``, with the gradient of the
batch's mean loss (Algorithm 2 of ``002_ff83eee082f91d18.txt``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from course_pkg.backend import to_numpy

Array = Any


@dataclass
class History:
    """What :func:`train` records, one entry per epoch."""

    loss: list[float] = field(default_factory=list)
    """Mean training loss over the epoch's mini-batches (each before its update)."""
    val_loss: list[float] = field(default_factory=list)
    """Loss on the validation set after the epoch (if one was given)."""
    val_accuracy: list[float] = field(default_factory=list)
    """Classification accuracy on the validation set (cross-entropy networks only)."""


def accuracy(net: Any, X: Array, y: Array) -> float:
    """The fraction of rows of X whose largest output is the label y."""
    P = to_numpy(net.predict(X))
    return float(np.mean(np.argmax(P, axis=1) == to_numpy(y)))


def train(
    net: Any, X: Array, Y: Array, lr: float, epochs: int = 10, batch_size: int = 32,
    X_val: Array | None = None, Y_val: Array | None = None, progress: bool = True,
    seed: int = 0,
) -> History:
    """Train ``net`` in place by mini-batch SGD and return its :class:`History`.

    Parameters
    ----------
    net
        A :class:`course_pkg.Network`.
    X, Y
        The training set, as for :meth:`Network.loss_and_gradients`.
    lr
        The learning rate eta > 0.
    epochs, batch_size
        Passes over the data, and examples per gradient step (the last batch may be smaller).
    X_val, Y_val
        An optional validation set, scored after each epoch.
    progress
        Show a progress bar (tqdm; a widget in notebooks).
    seed
        Seed of the shuffling.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if (X_val is None) != (Y_val is None):
        raise ValueError("give both X_val and Y_val, or neither")
    xp = net.xp
    X, Y = xp.asarray(X), xp.asarray(Y)
    n = X.shape[0]
    if Y.shape[0] != n:
        raise ValueError(f"X has {n} rows but Y has {Y.shape[0]}")
    rng = np.random.default_rng(seed)
    history = History()
    epochs_iter = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc="epochs", leave=False)
    for _ in epochs_iter:
        order = xp.asarray(rng.permutation(n))
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            Xb, Yb = xp.take(X, rows, axis=0), xp.take(Y, rows, axis=0)
            total += net.train_step(Xb, Yb, lr) * rows.shape[0]
        history.loss.append(total / n)
        if X_val is not None:
            history.val_loss.append(net.loss(X_val, Y_val))
            if net.loss_name == "cross_entropy":
                history.val_accuracy.append(accuracy(net, X_val, Y_val))
    return history
