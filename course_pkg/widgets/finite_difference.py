"""Tangent and secant: what a finite difference sees, for the chapters on checking gradients.

A central difference (f(t + h) - f(t - h)) / 2h is the slope of the secant through two points
of the loss f, seen as a function of one parameter t; back-propagation gives the slope f'(t)
of the tangent (the theorem of ``002_ff83eee082f91d18.txt``). :func:`draw_secant` draws both
over the window [t - 1.6h, t + 1.6h]. For a large h the secant leaves the tangent (truncation
error); for a tiny h the curve itself becomes a staircase of rounding errors (round-off error).
The curve is drawn as f(t + s) - f(t), so that its tiny changes show.

Two explorers use it: :func:`worked_example_explorer`, on the cost of the worked example (a
2-2-2 sigmoid network, half squared error) as a function of the weight W_1[0, 0], and
:func:`step_explorer`, on the training loss of the gradient-checking chapter's 3-4-2 network.

Every label is drawn at 11 points or more (11 px at the static frames' 72 dots per inch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from course_pkg.network import Network
from course_pkg.widgets import explorer

FONT = 11
"""The smallest font size (points) of every label."""

WORKED_STEPS = tuple(float(h) for h in np.geomspace(1e-3, 3.0, 25))
"""The secant half-widths h of the worked example's explorer."""

CHECK_STEPS = tuple(float(10.0 ** e) for e in np.arange(-13.0, 0.25, 0.5))
"""h = 10^-13, 10^-12.5, ..., 10^0: the 27 steps of the gradient-checking explorer."""


@dataclass(frozen=True)
class OneParameter:
    """A loss f(t) of one parameter t, its value t0, and the back-propagated slope f'(t0)."""

    f: Callable[[float], float]
    t0: float
    slope: float
    name: str


def _one_parameter(net: Network, X: np.ndarray, Y: np.ndarray, name: str) -> OneParameter:
    """f(t) = the loss of ``net`` with W_1[0, 0] set to t."""
    probe = net.copy()
    t0 = float(probe.W[1][0, 0])

    def f(t: float) -> float:
        probe.W[1][0, 0] = t
        value = probe.loss(X, Y)
        probe.W[1][0, 0] = t0
        return value

    _, dW, _ = net.loss_and_gradients(X, Y)
    return OneParameter(f, t0, float(dW[0][0, 0]), name)


@lru_cache(maxsize=1)
def worked_example() -> OneParameter:
    """The cost of the worked example (book/worked_example.md) as a function of W_1[0, 0]."""
    W1, W2 = np.array([[0.5, -1.0], [1.0, 1.0]]), np.array([[1.0, -1.0], [0.5, 0.5]])
    net = Network([2, 2, 2], "sigmoid", loss="half_squared_error", weights=[W1, W2],
                  biases=[np.array([0.0, -0.5]), np.zeros(2)])
    return _one_parameter(net, np.array([[1.0, 0.5]]), np.array([[0.0, 1.0]]), "W_1[0, 0]")


@lru_cache(maxsize=1)
def checking_example() -> OneParameter:
    """The loss of the gradient-checking chapter's network (3-4-2, tanh) in W_1[0, 0]."""
    rng = np.random.default_rng(0)
    net = Network([3, 4, 2], ["tanh", "identity"], loss="half_squared_error", seed=1)
    X, Y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    return _one_parameter(net, X, Y, "W_1[0, 0]")


def central_difference(p: OneParameter, h: float) -> float:
    """(f(t0 + h) - f(t0 - h)) / 2h, the slope of the secant."""
    return (p.f(p.t0 + h) - p.f(p.t0 - h)) / (2 * h)


def draw_secant(p: OneParameter, h: float, figsize: tuple[float, float] = (7.5, 3.8)):
    """f(t0 + s) - f(t0) for |s| <= 1.6 h, the tangent f'(t0) s and the secant through +-h."""
    import matplotlib.pyplot as plt

    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"the step h must be a positive finite number, got {h!r}")
    s = np.linspace(-1.6 * h, 1.6 * h, 65)
    f0 = p.f(p.t0)
    curve = np.array([p.f(p.t0 + v) for v in s]) - f0
    secant = central_difference(p, h)
    fig, ax = plt.subplots(figsize=figsize)
    fig.subplots_adjust(left=0.16, right=0.98, bottom=0.17, top=0.84)
    ax.plot(s / h, curve, ".-", color="black", lw=1, ms=3, label="loss f(t0 + s) - f(t0)")
    ax.plot(s / h, p.slope * s, "-", color="tab:blue", lw=1.5,
            label=f"tangent, back-propagation: slope {p.slope:.6g}")
    ax.plot(s / h, secant * s + (p.f(p.t0 + h) + p.f(p.t0 - h)) / 2 - f0, "--",
            color="tab:red", lw=1.5, label=f"secant through s = -h, h: slope {secant:.6g}")
    ax.plot([-1, 1], [p.f(p.t0 - h) - f0, p.f(p.t0 + h) - f0], "o", color="tab:red", ms=6)
    ax.set_xlabel("s / h", fontsize=FONT)
    ax.set_ylabel("change of the loss", fontsize=FONT)
    error = abs(secant - p.slope)
    ax.set_title(f"h = {h:.1e}: |secant slope - tangent slope| = {error:.1e}", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.yaxis.get_offset_text().set_fontsize(FONT)
    ax.legend(fontsize=FONT, loc="best", framealpha=0.9)
    return fig


def worked_example_explorer(static: bool | None = None):
    """The worked example's cost in W_1[0, 0]: the secant half-width h is the control."""
    p = worked_example()
    return explorer(lambda h: draw_secant(p, h), {"h": list(WORKED_STEPS)},
                    initial={"h": WORKED_STEPS[12]}, static=static)


def step_explorer(static: bool | None = None):
    """The gradient-checking chapter's loss: h from 1e-13 to 1, half a decade per position."""
    p = checking_example()
    return explorer(lambda h: draw_secant(p, h), {"h": list(CHECK_STEPS)},
                    initial={"h": CHECK_STEPS[16]}, static=static)
