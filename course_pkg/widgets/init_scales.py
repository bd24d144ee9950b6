"""The scale of every layer of a deep network at initialisation, as the weights' gain varies.

With weights of variance gain / p_{l-1} and zero biases, the forward pass
z_l = W_l a_{l-1} + b_l and the recursion delta_{l-1} = S'(z_{l-1}) * W_l^T delta_l of
``002_ff83eee082f91d18.txt`` multiply the mean square of z and of delta by a factor per layer
that depends on the gain (the variance argument of the chapter on initialisation). For the ReLU
that factor is exactly gain / 2 in both directions, so the gain 2 (He's rule) keeps every layer
at the same scale; for tanh the gain 1 (LeCun's rule) comes closest. :func:`layer_scales`
measures the root mean square of z_l and delta_l with :class:`course_pkg.Network` and
:func:`course_pkg.back_propagate`; :func:`gain_explorer` shows both as the gain moves.

Every label is drawn at 11 points or more (11 px at the static frames' 72 dots per inch).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from course_pkg.network import Network, back_propagate
from course_pkg.widgets import explorer

FONT = 11
"""The smallest font size (points) of every label."""

GAINS = tuple(float(g) for g in np.geomspace(0.25, 4.0, 25))
"""Gains from 1/4 to 4, six positions per doubling (1 and 2 among them)."""

WIDTH, HIDDEN, OUTPUTS, BATCH = 128, 15, 10, 128


def initial_weights(gain: float, sizes: list[int], seed: int = 0) -> list[np.ndarray]:
    """W_l with independent N(0, gain / p_{l-1}) entries, l = 1, ..., L."""
    if not (np.isfinite(gain) and gain > 0):
        raise ValueError(f"the gain must be a positive finite number, got {gain!r}")
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, np.sqrt(gain / sizes[l - 1]), size=(sizes[l], sizes[l - 1]))
            for l in range(1, len(sizes))]


@lru_cache(maxsize=128)
def layer_scales(activation: str, gain: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The rms of z_l and of delta_l for the hidden layers l = 1, ..., 15 (read-only arrays).

    The network has 15 hidden layers of 128 units and 10 linear outputs; the inputs are a batch
    of 128 standard normal vectors, and delta_L has independent standard normal entries.
    """
    if activation not in ("tanh", "relu"):
        raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
    sizes = [WIDTH] * (HIDDEN + 1) + [OUTPUTS]
    net = Network(sizes, [activation] * HIDDEN + ["identity"],
                  weights=initial_weights(gain, sizes, seed))
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(size=(BATCH, WIDTH))
    z, a = net.forward(X)
    delta_L = rng.normal(size=(OUTPUTS, BATCH))
    _, _, delta = back_propagate(net.W, z, a, delta_L, net.S_prime)
    rms_z = np.array([np.sqrt(np.mean(z[l] ** 2)) for l in range(1, HIDDEN + 1)])
    rms_delta = np.array([np.sqrt(np.mean(delta[l] ** 2)) for l in range(1, HIDDEN + 1)])
    rms_z.flags.writeable = rms_delta.flags.writeable = False
    return rms_z, rms_delta


def draw_scales(gain: float, figsize: tuple[float, float] = (8.5, 3.6)):
    """rms z_l (left) and rms delta_l (right) per layer, tanh and ReLU, at one gain.

    The dotted line is the ReLU prediction: a factor (gain / 2)^(1/2) per layer, forwards from
    layer 1 and backwards from layer 15.
    """
    import matplotlib.pyplot as plt

    layers = np.arange(1, HIDDEN + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize, sharex=True)
    fig.subplots_adjust(left=0.09, right=0.99, bottom=0.16, top=0.84, wspace=0.28)
    factor = np.sqrt(gain / 2)
    for name, colour in (("tanh", "tab:blue"), ("relu", "tab:red")):
        rms_z, rms_delta = layer_scales(name, gain)
        left.semilogy(layers, rms_z, "o-", color=colour, ms=4, label=name)
        right.semilogy(layers, rms_delta, "o-", color=colour, ms=4, label=name)
        if name == "relu":
            left.semilogy(layers, rms_z[0] * factor ** (layers - 1), ":", color="black",
                          label="relu, predicted")
            right.semilogy(layers, rms_delta[-1] * factor ** (HIDDEN - layers), ":",
                           color="black", label="relu, predicted")
    for ax, what in ((left, "activation scale: rms of z_l"),
                     (right, "gradient scale: rms of delta_l")):
        ax.set_ylim(1e-9, 1e4)
        ax.set_xticks([1, 5, 10, 15])
        ax.set_xlabel("layer l", fontsize=FONT)
        ax.set_title(what, fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    left.legend(fontsize=FONT, loc="lower left")
    fig.suptitle(f"weights of variance {gain:.3g} / fan-in", fontsize=FONT + 1)
    return fig


def gain_explorer(static: bool | None = None):
    """An explorer over the gain, starting at He's gain 2."""
    return explorer(draw_scales, {"gain": list(GAINS)}, initial={"gain": GAINS[18]},
                    static=static)
