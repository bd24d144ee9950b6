"""The identity sigmoid of ``000_4a3fe56ce2bc8b6e.txt``: experiments and pictures of chapter 2.

The model is :mod:`course_pkg.identity_sigmoid` (y_hat = A(w x), E = 1/2 (y_hat - y)^2, the
target y = T(x) = x for x in {0, 1}). This module adds what the chapter measures with it:

- two update rules side by side: the proportional step w <- w - mu dE/dw of the seed's answer,
  and a step of fixed size against the sign of dE/dw (the question in the seed's comments);
- the slow approach of the error to 0 on x = 1, E_k ~ 1/(4 mu k) after k updates;
- the same unit with a bias b, y_hat = A(w x + b), trained through :class:`course_pkg.Network`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from course_pkg import identity_sigmoid as isg
from course_pkg.network import Network
from course_pkg.widgets import explorer

X_BOTH = np.array([[0.0], [1.0]])
"""The two inputs x = 0 and x = 1 as a batch of rows, as :class:`Network` takes them."""

MUS = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
W0S = [-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
"""The grids of :func:`training_explorer`: learning rates mu and initial weights w0."""


def error(w: Any, x: float) -> Any:
    """E(w) = 1/2 (A(w x) - x)^2: the error of the one-weight network on input x (target x)."""
    return isg.E(isg.T_hat(w, x), x)


def descend(grad: Callable[[np.ndarray], Any], w0: Any, rate: float, steps: int,
            rule: str = "proportional") -> np.ndarray:
    """Run ``steps`` updates from ``w0`` and return every iterate, shape (steps + 1, *w0.shape).

    Parameters
    ----------
    grad
        The gradient dE/dw as a function of w.
    rule
        ``"proportional"``: w <- w - rate * dE/dw (the answer in ``000_4a3fe56ce2bc8b6e.txt``).
        ``"sign"``: w <- w - rate * sign(dE/dw), a step of fixed size in each coordinate,
        against the sign of its derivative (the alternative asked about in its comments).
    """
    if rule not in ("proportional", "sign"):
        raise ValueError(f"expected rule 'proportional' or 'sign', got {rule!r}")
    if rate <= 0:
        raise ValueError(f"expected a positive rate, got {rate}")
    w = np.asarray(w0, dtype=float)
    path = [w]
    for _ in range(int(steps)):
        g = np.asarray(grad(w), dtype=float)
        w = w - rate * (g if rule == "proportional" else np.sign(g))
        path.append(w)
    return np.asarray(path)


def asymptotic_error(mu: float, k: Any) -> Any:
    """E_k ~ 1/(4 mu k): the error on x = 1 after k proportional updates, for large k.

    For large w, 1 - A(w) ~ e^{-w}, so one update adds mu e^{-2w} to w and u = e^{2w} grows by
    about 2 mu per update; hence e^{2 w_k} ~ 2 mu k and E = 1/2 (1 - A(w_k))^2 ~ 1/(4 mu k).
    """
    return 1.0 / (4.0 * mu * np.asarray(k, dtype=float))


# -- the unit with a bias, through course_pkg.Network ---------------------------------------------
def bias_network(w: float, b: float) -> Network:
    """The unit y_hat = A(w x + b) as ``Network([1, 1], ["sigmoid"], "half_squared_error")``."""
    return Network([1, 1], ["sigmoid"], "half_squared_error",
                   weights=[[[float(w)]]], biases=[[float(b)]])


def train_bias_network(w0: float, b0: float, lr: float, steps: int,
                       targets: tuple[float, float] = (0.0, 1.0),
                       learn_bias: bool = True) -> dict[str, np.ndarray]:
    """Full-batch gradient descent on x in {0, 1} with targets (y(0), y(1)).

    The loss is the batch mean 1/2 [E(x=0) + E(x=1)], as :meth:`Network.loss` defines it. With
    ``learn_bias=False`` the bias stays at its start ``b0`` and only w moves.

    Returns
    -------
    history
        ``w``, ``b`` and ``loss``, each of length steps + 1 (the loss at each iterate).
    """
    net = bias_network(w0, b0)
    Y = np.asarray(targets, dtype=float).reshape(2, 1)
    ws, bs, losses = [], [], []
    for _ in range(int(steps) + 1):
        loss, dW, db = net.loss_and_gradients(X_BOTH, Y)
        ws.append(float(net.weights[0][0, 0]))
        bs.append(float(net.biases[0][0]))
        losses.append(loss)
        net.weights[0][...] -= lr * dW[0]
        if learn_bias:
            net.biases[0][...] -= lr * db[0]
    return {"w": np.asarray(ws), "b": np.asarray(bs), "loss": np.asarray(losses)}


# -- the picture --------------------------------------------------------------------------------
def draw_training(mu: float = 1.0, w0: float = 0.0, steps: int = 400) -> Any:
    """Train on x = 0, 1, 0, 1, ... (``identity_sigmoid.train``) and show where w goes.

    Left: E(w) for x = 1 and x = 0 with the iterates marked on the x = 1 curve. Right: the
    error on each input against the number k of updates on x = 1 (both in log10),
    with the asymptote 1/(4 mu k).
    """
    from matplotlib.figure import Figure

    path = isg.train(w0, mu, steps)
    w_grid = np.linspace(-6, 12, 300)
    fig = Figure(figsize=(8, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(w_grid, error(w_grid, 1.0), color="tab:blue", label="E on x = 1")
    ax1.plot(w_grid, error(w_grid, 0.0), color="tab:orange", label="E on x = 0")
    ax1.plot(path[::8], error(path[::8], 1.0), "o", ms=3, color="tab:red", label="w (every 8th)")
    ax1.set(xlabel="w", ylabel="E", xlim=(-6, 12), ylim=(-0.02, 0.52), title=f"mu = {mu:g}",
            xticks=[-6, -3, 0, 3, 6, 9, 12], yticks=[0, 0.1, 0.2, 0.3, 0.4, 0.5])
    ax1.legend(fontsize=7, loc="upper right")
    k = np.arange(1, steps // 2 + 1)
    w_after_k = path[2 * k]               # x = 1 is the second example of each pair
    log_k = np.log10(k)
    ax2.plot(log_k, np.log10(error(w_after_k, 1.0)), color="tab:blue", label="E on x = 1")
    ax2.plot(log_k, np.log10(asymptotic_error(mu, k)), "k--", lw=1, label="1/(4 mu k)")
    ax2.plot(log_k, np.log10(error(w_after_k, 0.0)), color="tab:orange", label="E on x = 0")
    ax2.set(xlabel="log10 k (k = updates on x = 1)", ylabel="log10 E", ylim=(-5, 0),
            xticks=[0, 1, 2], yticks=[-5, -4, -3, -2, -1, 0],
            title=f"w0 = {w0:g}, final w = {path[-1]:.2f}")
    ax2.legend(fontsize=7, loc="lower left")
    fig.subplots_adjust(wspace=0.35)
    return fig


def training_explorer(static: bool | None = None) -> Any:
    """Choose the learning rate mu and the initial weight w0 of the identity sigmoid."""
    controls = {"mu": MUS, "w0": W0S}
    return explorer(draw_training, controls, {"mu": 1.0, "w0": 0.0}, static=static)
