"""The error signal Delta on a drawn network: the picture of the node-level chapter.

The chapter follows ``003_00675a7c1b711b2c.txt``: every node k takes in_k = sum_i w_ik a_i and
outputs a_k = g(in_k); an output node gets Delta_k = g'(in_k)(t_k - a_k), a hidden node j gets
g'(in_j) times the w_jk-weighted sum of the Delta_k above it (eq. 1), and each weight moves by
eta a_i Delta_k. The arithmetic is :mod:`course_pkg.node_delta`; this module trains a small
network with it, one example at a time, and draws the Delta of every node for a chosen example
and epoch.

The example network has three input nodes (x_1, x_2 and a node that always outputs 1, which
plays the part of a bias: the seed's network has none), three hidden nodes and two output
nodes, all sigmoid. It learns t = (x_1 XOR x_2, x_1 AND x_2) on the four binary inputs.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import pairwise
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.ticker import NullLocator

from course_pkg import node_delta
from course_pkg.widgets import explorer

LAYOUT = (3, 3, 2)
"""Nodes per layer of the example network: inputs (x_1, x_2, 1), hidden, outputs."""

INPUTS = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
"""The four examples x_n; the last input node is the constant 1."""

TARGETS = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
"""t_n = (x_1 XOR x_2, x_1 AND x_2) for each example."""

ETA = 4.0
"""The step size eta of the example."""

EPOCHS = (0, 2, 5, 10, 20, 35, 50, 100, 200, 400)
"""The ten epochs the widget can show (one epoch = one update per example, in order)."""


def initial_weights(layout: tuple[int, ...] = LAYOUT, seed: int = 6) -> list[np.ndarray]:
    """Random starting weights: ``w[m][i, k]`` on the edge from node i of layer m to node k."""
    if len(layout) < 2 or min(layout) < 1:
        raise ValueError(f"expected at least two positive layer sizes, got {layout}")
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 1.0, size=(n_in, n_out)) for n_in, n_out in pairwise(layout)]


def train_epochs(w: list[np.ndarray], X: np.ndarray, T: np.ndarray, eta: float,
                 epochs: int) -> list[list[np.ndarray]]:
    """Online training with :func:`course_pkg.node_delta.update`: the weights after each epoch.

    Returns
    -------
    list
        ``history[e]`` are the weights after e epochs (``history[0]`` is ``w``).
    """
    X, T = np.asarray(X, dtype=float), np.asarray(T, dtype=float)
    if X.ndim != 2 or T.ndim != 2 or X.shape[0] != T.shape[0]:
        raise ValueError(f"expected X (n, p_0) and T (n, p_L) with equal n, "
                         f"got {X.shape} and {T.shape}")
    if epochs < 0:
        raise ValueError(f"expected a number of epochs >= 0, got {epochs}")
    history = [[np.array(w_m, dtype=float) for w_m in w]]
    for _ in range(epochs):
        current = history[-1]
        for x, t in zip(X, T, strict=True):
            current = node_delta.update(current, x, t, eta)
        history.append(current)
    return history


@lru_cache(maxsize=1)
def example_history() -> tuple[tuple[np.ndarray, ...], ...]:
    """The weights of the example network after 0, 1, ..., max(EPOCHS) epochs (computed once)."""
    history = train_epochs(initial_weights(), INPUTS, TARGETS, ETA, max(EPOCHS))
    return tuple(tuple(w) for w in history)


@lru_cache(maxsize=1)
def example_errors() -> np.ndarray:
    """E_n of each example (columns) after each epoch (rows) of :func:`example_history`."""
    return np.array([[node_delta.error(list(w), x, t) for x, t in zip(INPUTS, TARGETS, strict=True)]
                     for w in example_history()])


def signals(w: list[np.ndarray], x: np.ndarray, t: np.ndarray) -> tuple[list, list, list]:
    """The values ``inp``, ``a`` and ``Delta`` of every node for the example (x, t)."""
    g, g_prime = node_delta.derivative("sigmoid")
    inp, a = node_delta.forward(w, x, g)
    return inp, a, node_delta.error_signals(w, inp, a, t, g_prime)


def _positions(layout: tuple[int, ...]) -> list[np.ndarray]:
    """(x, y) of each node: layer m at x = m, its nodes from the top down around y = 0."""
    return [np.column_stack([np.full(n, float(m)), (n - 1) / 2 - np.arange(n)])
            for m, n in enumerate(layout)]


def draw_graph(ax: Any, w: list[np.ndarray], x: np.ndarray, t: np.ndarray,
               scale: float = 0.15) -> Any:
    """Draw the network on ``ax``: edge width ~ |w_ik|, node colour = Delta (red < 0 < blue).

    Each non-input node is labelled with its Delta; the input nodes carry no Delta and are drawn
    grey, labelled with their activation a_i. Returns the scatter of the non-input nodes.
    """
    layout = (w[0].shape[0], *(w_m.shape[1] for w_m in w))
    pos = _positions(layout)
    _, a, Delta = signals(w, x, t)
    edges = [(pos[m][i], pos[m + 1][k]) for m, w_m in enumerate(w)
             for i in range(w_m.shape[0]) for k in range(w_m.shape[1])]
    weights = np.concatenate([w_m.ravel() for w_m in w])
    ax.add_collection(LineCollection(
        edges, colors=np.where(weights > 0, "tab:blue", "tab:red"), alpha=0.45, zorder=1,
        linewidths=0.4 + 1.2 * np.minimum(np.abs(weights), 4.0)))
    ax.scatter(pos[0][:, 0], pos[0][:, 1], s=1000, c="0.85", edgecolors="k", zorder=2)
    for (px, py), value in zip(pos[0], a[0], strict=True):
        ax.text(px, py, f"{value:.0f}", ha="center", va="center", fontsize=10, zorder=3)
    xy = np.vstack(pos[1:])
    values = np.concatenate([Delta[m] for m in range(1, len(layout))])
    nodes = ax.scatter(xy[:, 0], xy[:, 1], s=1000, c=values, cmap="RdBu", vmin=-scale,
                       vmax=scale, edgecolors="k", zorder=2)
    for (px, py), value in zip(xy, values, strict=True):
        ax.text(px, py, f"{value:+.2f}", ha="center", va="center", fontsize=10, zorder=3,
                color="white" if abs(value) > 0.6 * scale else "black")
    ax.set_xticks(range(len(layout)), ["input", *["hidden"] * (len(layout) - 2), "output"])
    ax.set_yticks([])
    ax.set_xlim(-0.4, len(layout) - 0.6)
    ax.set_ylim(-(max(layout) + 1) / 2, (max(layout) + 1) / 2)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return nodes


def draw(epoch: int = 20, example: int = 1) -> Any:
    """The widget's figure: Delta on the graph (left), the error during training (right)."""
    import matplotlib.pyplot as plt

    if epoch not in EPOCHS:
        raise ValueError(f"epoch must be one of {EPOCHS}, got {epoch}")
    if example not in range(len(INPUTS)):
        raise ValueError(f"example must be 0..{len(INPUTS) - 1}, got {example}")
    history = example_history()
    w, x, t = list(history[epoch]), INPUTS[example], TARGETS[example]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), width_ratios=(1.35, 1))
    draw_graph(left, w, x, t)
    left.set_title(f"epoch {epoch}: x = ({x[0]:.0f}, {x[1]:.0f}), "
                   f"t = ({t[0]:.0f}, {t[1]:.0f})", fontsize=10)

    errors = example_errors()
    epochs, E_n = np.arange(len(errors)), errors[:, example]
    right.plot(epochs + 1, errors.mean(axis=1), color="k", lw=1, label="mean over the examples")
    right.plot(epochs + 1, E_n, color="tab:purple", lw=1, label=f"example {example}")
    right.plot([epoch + 1], [E_n[epoch]], "o", color="tab:purple")
    right.set_xscale("log")
    right.set_xticks([1, 10, 100], ["1", "10", "100"])
    right.xaxis.set_minor_locator(NullLocator())
    right.set_ylim(0, None)
    right.set_xlabel("epoch + 1")
    right.set_ylabel("error E_n")
    right.legend(fontsize=10, loc="lower left")
    fig.subplots_adjust(left=0.03, right=0.98, bottom=0.15, top=0.9, wspace=0.4)
    return fig


def delta_explorer(static: bool | None = None) -> Any:
    """The widget: the Delta of every node, for a chosen training epoch and example."""
    names = [f"x = ({x[0]:.0f}, {x[1]:.0f})" for x in INPUTS]
    return explorer(draw, {"epoch": list(EPOCHS), "example": list(range(len(INPUTS)))},
                    initial={"epoch": 0, "example": 1}, static=static,
                    labels={"example": names})
