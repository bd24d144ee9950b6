"""One step of gradient descent, theta <- theta - eta * grad, and its first-order prediction.

The step of ``001_ce18104b0c2237dd.txt`` (its (1.1)) changes the loss, to first order, by
-eta ||grad||^2 (its (2.1), the Taylor argument for the minus sign). :func:`losses_after_step`
takes the step with :meth:`course_pkg.Network.train_step` for each learning rate, and
:func:`draw_step` shows the loss after the step beside the straight line of the prediction:
close for a small eta, and wrong once the step is long (the loss can even rise).

The network is the summary page's: 4-5-3-2 with tanh, sigmoid and identity layers, the squared
error of ``002_ff83eee082f91d18.txt``, on a batch of six examples.

Every label is drawn at 11 points or more (11 px at the static frames' 72 dots per inch).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from course_pkg.network import Network
from course_pkg.widgets import explorer

FONT = 11
"""The smallest font size (points) of every label."""

ETAS = tuple(float(e) for e in np.linspace(0.0, 0.96, 25))
"""The learning rates of the explorer: 0, 0.04, ..., 0.96."""


def summary_problem() -> tuple[Network, np.ndarray, np.ndarray]:
    """The summary page's network and batch (seeded)."""
    rng = np.random.default_rng(0)
    net = Network([4, 5, 3, 2], ["tanh", "sigmoid", "identity"], loss="squared_error", seed=1)
    return net, rng.normal(size=(6, 4)), rng.normal(size=(6, 2))


@lru_cache(maxsize=1)
def curve() -> tuple[np.ndarray, np.ndarray, float, float]:
    """(etas, loss after one step at each eta, loss before, ||grad||^2), on a fine grid."""
    net, X, Y = summary_problem()
    loss, dW, db = net.loss_and_gradients(X, Y)
    grad_sq = float(sum(np.sum(g ** 2) for g in (*dW, *db)))
    etas = np.linspace(0.0, max(ETAS), 121)
    after = np.array([losses_after_step(net, X, Y, eta) for eta in etas])
    etas.flags.writeable = after.flags.writeable = False
    return etas, after, loss, grad_sq


def losses_after_step(net: Network, X: np.ndarray, Y: np.ndarray, eta: float) -> float:
    """The loss after one step of learning rate eta (eta = 0: the loss itself)."""
    if eta == 0:
        return net.loss(X, Y)
    stepped = net.copy()
    stepped.train_step(X, Y, lr=eta)
    return stepped.loss(X, Y)


def draw_step(eta: float, figsize: tuple[float, float] = (7.5, 3.6)):
    """Loss after one step against eta, the first-order line, and the chosen eta."""
    import matplotlib.pyplot as plt

    etas, after, loss, grad_sq = curve()
    net, X, Y = summary_problem()
    here = losses_after_step(net, X, Y, eta)
    fig, ax = plt.subplots(figsize=figsize)
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.17, top=0.86)
    ax.plot(etas, after, "-", color="black", lw=2, label="loss after one step")
    ax.plot(etas, loss - etas * grad_sq, "--", color="tab:blue", lw=1.5,
            label="first order: loss - eta |grad|^2")
    ax.plot([eta], [here], "o", color="tab:red", ms=8, label=f"eta = {eta:.2f}")
    ax.axhline(loss, color="grey", lw=1, ls=":")
    ax.set_ylim(0, 2.2 * loss)
    ax.set_xlabel("learning rate eta", fontsize=FONT)
    ax.set_ylabel("training loss", fontsize=FONT)
    ax.set_title(f"before {loss:.4f}, after one step {here:.4f}, "
                 f"predicted {loss - eta * grad_sq:.4f}", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.legend(fontsize=FONT, loc="upper center")
    return fig


def step_explorer(static: bool | None = None):
    """An explorer over the learning rate, starting at eta = 0.2."""
    return explorer(draw_step, {"eta": list(ETAS)}, initial={"eta": ETAS[5]}, static=static)
