"""Saturation: how the size of dC/dW_l changes with the layer l, for sigmoid, tanh and ReLU.

The recursion delta_{l-1} = S'(z_{l-1}) * W_l^T delta_l of ``002_ff83eee082f91d18.txt``
multiplies the error by one factor S'(z) per layer on its way back, and by W_l^T. The logistic
S' is at most 1/4 and decays exponentially away from 0 (saturation), so in a deep sigmoid
network with weights of moderate norm the first layers receive a much smaller gradient than
the last; the ReLU's S' is exactly 1 wherever
the unit is active, and the gradient keeps its size. :func:`gradient_norms` measures this with
:meth:`course_pkg.Network.loss_and_gradients`, and :func:`depth_explorer` shows it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from course_pkg.backend import to_numpy
from course_pkg.network import Network

ACTIVATIONS = ("sigmoid", "tanh", "relu")
DEPTHS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
"""Numbers of hidden layers in the explorer's grid."""

WIDTH = 32
INPUTS = 16
CLASSES = 10


def _check_depth(depth: int) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth (the number of hidden layers) must be a positive integer, "
                         f"got {depth!r}")
    return int(depth)


def deep_network(depth: int, activation: str, width: int = WIDTH, seed: int = 0) -> Network:
    """A classifier with ``depth`` hidden layers of ``width`` units and a softmax output.

    The package initialises W_l with variance 2/p_{l-1} for ReLU (He) and 1/p_{l-1} otherwise.
    """
    depth = _check_depth(depth)
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {list(ACTIVATIONS)}")
    sizes = [INPUTS] + [width] * depth + [CLASSES]
    return Network(sizes, [activation] * depth + ["softmax"], loss="cross_entropy", seed=seed)


def sample_batch(n: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random batch: standard normal inputs (n, 16) and uniform labels in 0..9."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, INPUTS)), rng.integers(0, CLASSES, size=n)


def gradient_norms(net: Network, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The Frobenius norm ||dC/dW_l|| of every layer l = 1, ..., L, from back-propagation."""
    _, dW, _ = net.loss_and_gradients(X, y)
    return np.array([float(np.linalg.norm(to_numpy(g))) for g in dW])


@lru_cache(maxsize=64)
def layer_norms(depth: int, activation: str, seed: int = 0) -> np.ndarray:
    """:func:`gradient_norms` of :func:`deep_network` on :func:`sample_batch` (read-only).

    Cached: every frame of the explorer draws all three activations.
    """
    X, y = sample_batch(seed=seed)
    norms = gradient_norms(deep_network(depth, activation, seed=seed), X, y)
    norms.flags.writeable = False
    return norms


def draw_norms(depth: int, activation: str, figsize: tuple[float, float] = (8, 3.2)):
    """Gradient norm per layer for ``activation`` at ``depth``, beside a 1/4-per-layer decay.

    The dashed line starts at the output layer's norm and divides by 4 per layer: the factor
    S' <= 1/4 of a sigmoid layer alone. The layer's weights multiply it by up to ||W_l||_2 (the
    bound of the matrix-form chapter), so the measured norms may fall more slowly than the line,
    or grow; the faint lines are the other activations, for comparison.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=figsize)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.9)
    for name in ACTIVATIONS:
        if name != activation:
            norms = layer_norms(depth, name)
            ax.semilogy(np.arange(1, len(norms) + 1), norms, ".:", lw=1.5, alpha=0.8,
                        label=name)
    norms = layer_norms(depth, activation)
    layers = np.arange(1, len(norms) + 1)
    ax.semilogy(layers, norms, "o-", lw=2.5, color="black", label=activation)
    ax.semilogy(layers, norms[-1] * 0.25 ** (len(norms) - layers), "--", color="tab:red", lw=1,
                label="x 1/4 per layer")
    # plain-text tick labels: mathtext would triple the drawing time of the static frames
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="layer l", ylabel="||dC/dW_l|| (Frobenius)", ylim=(1e-7, 10),
           xlim=(0.5, max(DEPTHS) + 1.5),
           title=f"{depth} hidden layers: gradient norm per layer, {activation} network")
    ax.legend(loc="lower right", fontsize=8, ncol=2)
    ax.locator_params(axis="x", nbins=6, integer=True)
    return fig


def depth_explorer(static: bool | None = None):
    """An explorer over the depth (first control) and the highlighted activation."""
    from course_pkg.widgets import explorer

    return explorer(draw_norms, {"depth": list(DEPTHS), "activation": list(ACTIVATIONS)},
                    initial={"depth": 8, "activation": "sigmoid"}, static=static)
