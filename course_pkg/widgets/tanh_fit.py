"""Bishop's figure 5.3 experiment, as a figure and an interactive explorer.

A two-layer network with three tanh hidden units and a linear output (eqs. 5.3-5.5 of
``001_ce18104b0c2237dd.txt``, plus biases) is fitted by full-batch gradient descent (eq. 1.1)
to 50 samples of each of the four targets of :func:`course_pkg.bishop_targets`. The network's
output y(x) is a weighted sum of the three hidden outputs z_j(x) = tanh(h_j(x)), and the figure
shows both: the data with the fit, and the three hidden units that the fit is built from.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from course_pkg.data import BISHOP_TARGETS, bishop_targets
from course_pkg.network import Network
from course_pkg.train import train

TARGETS = tuple(BISHOP_TARGETS)
"""The four targets, in the order of Bishop's figure: square, sin, abs, step."""

EPOCHS = (0, 50, 100, 200, 500, 1000, 2000, 3000, 4000, 5000)
"""The training epochs at which a snapshot of the parameters is kept (the explorer's grid)."""

LEARNING_RATE = 0.15
HIDDEN_UNITS = 3
SEED = 1

Snapshot = tuple[list[np.ndarray], list[np.ndarray], float]


def _check_target(target: str) -> str:
    if target not in BISHOP_TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {list(TARGETS)}")
    return target


def new_network(seed: int = SEED) -> Network:
    """The 1-3-1 network of Bishop's figure 5.3: tanh hidden layer, linear output, E of eq. 5.8."""
    return Network([1, HIDDEN_UNITS, 1], ["tanh", "identity"], loss="half_squared_error",
                   seed=seed)


@lru_cache(maxsize=len(TARGETS))
def fit_snapshots(target: str) -> dict[int, Snapshot]:
    """Train a fresh 1-3-1 network on ``target`` and keep its parameters at each of ``EPOCHS``.

    One epoch is one full-batch gradient step w <- w - eta grad E (eq. 1.1 of
    ``001_ce18104b0c2237dd.txt``) on the 50 points of :func:`course_pkg.bishop_targets`.

    Returns
    -------
    dict
        epoch -> (weights, biases, training loss) at that epoch.
    """
    _check_target(target)
    x, targets = bishop_targets()
    y = targets[target]
    net = new_network()
    snapshots: dict[int, Snapshot] = {}
    done = 0
    for epoch in EPOCHS:
        if epoch > done:
            train(net, x, y, LEARNING_RATE, epochs=epoch - done, batch_size=len(x),
                  progress=False)
            done = epoch
        snapshots[epoch] = ([w.copy() for w in net.weights], [b.copy() for b in net.biases],
                            net.loss(x, y))
    return snapshots


def fitted_network(target: str, epoch: int = EPOCHS[-1]) -> Network:
    """A 1-3-1 network holding the parameters reached after ``epoch`` epochs on ``target``."""
    snapshots = fit_snapshots(_check_target(target))
    if epoch not in snapshots:
        raise ValueError(f"no snapshot at epoch {epoch!r}; expected one of {list(EPOCHS)}")
    weights, biases, _ = snapshots[epoch]
    return Network([1, HIDDEN_UNITS, 1], ["tanh", "identity"], weights=weights, biases=biases)


def hidden_outputs(net: Network, x: np.ndarray) -> np.ndarray:
    """The hidden outputs z_j(x) = tanh(h_j(x)) (eq. 5.4), one column per unit: shape (n, M)."""
    _, a = net.forward(x)
    return a[1].T


def draw_fit(epoch: int, target: str, figsize: tuple[float, float] = (8, 3.2)):
    """Data, network output and the hidden units' outputs after ``epoch`` epochs on ``target``."""
    import matplotlib.pyplot as plt

    x, targets = bishop_targets()
    net = fitted_network(target, epoch)
    grid = np.linspace(-1.0, 1.0, 200).reshape(-1, 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    left.plot(x[:, 0], targets[target][:, 0], "o", ms=3.5, color="tab:blue", label="data")
    left.plot(grid[:, 0], net.predict(grid)[:, 0], color="tab:red", lw=2, label="network y(x)")
    left.set(xlabel="x", ylabel="y", ylim=(-1.35, 1.35),
             title=f"{target}: epoch {epoch}, E = {fit_snapshots(target)[epoch][2]:.2g}")
    left.legend(loc="lower right", fontsize=8)
    z = hidden_outputs(net, grid)
    for j, color in enumerate(("tab:orange", "tab:green", "tab:purple")[:z.shape[1]]):
        right.plot(grid[:, 0], z[:, j], "--", color=color, label=f"z{j + 1}(x)")
    right.set(xlabel="x", ylabel="hidden output", ylim=(-1.05, 1.05),
              title="the three tanh hidden units")
    right.legend(loc="lower right", fontsize=8)
    for ax in (left, right):
        ax.locator_params(nbins=4)  # fewer tick labels: a third less drawing per static frame
    return fig


def training_explorer(static: bool | None = None):
    """An explorer over the training epoch (first control) and the target."""
    from course_pkg.widgets import explorer

    return explorer(draw_fit, {"epoch": list(EPOCHS), "target": list(TARGETS)},
                    initial={"epoch": EPOCHS[1], "target": "sin"}, static=static)
