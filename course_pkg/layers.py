"""Layers with a forward and a backward pass, and a library of them with planted bugs (ps6).

The modular view of back-propagation: a layer maps a batch X (n rows, one example each) to Y,
and its backward pass maps the gradient dY = dC/dY of some scalar C to the gradients of C with
respect to its input and its parameters. With the scalar C = sum(Y * dY) (dY held fixed),
dC/dY is exactly dY, so any layer can be gradient-checked on its own: perturb one entry of a
parameter, recompute C, and compare the difference quotient with the backward pass
(``book/gradient_checking.md``).

=========  ==========================  =========================================================
layer      forward                     backward (each a sum over the batch where it must be)
=========  ==========================  =========================================================
linear     Y = X W^T + b               dX = dY W,  dW = dY^T X,  db = sum over rows of dY
tanh       Y = tanh X                  dX = dY * (1 - Y^2)
scale      Y = gamma * X + beta        dgamma = sum_rows dY * X,  dbeta = sum_rows dY,
                                       dX = dY * gamma
relu       Y = max(X, 0)               dX = dY * [X > 0]   (0 at the kink X = 0)
=========  ==========================  =========================================================

:func:`library` returns these layers with three bugs planted, one of each kind of
:data:`BUG_KINDS` (a missing transpose, a flipped sign, a bias summed over the wrong axis); which
parameter of which layer carries each bug depends on the ``variant`` number. Problem set 6 asks
for them to be found by gradient checks, layer by layer. All shapes are square (batch n = width
d = :data:`WIDTH`), so that every bug runs silently: the wrong gradient has the right shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

WIDTH = 4
"""Width d of every layer, and the batch size n of :func:`example`."""

PARAMETERS: dict[str, tuple[str, ...]] = {
    "linear": ("W", "b", "X"),
    "tanh": ("X",),
    "scale": ("gamma", "beta", "X"),
    "relu": ("X",),
}
"""Layer name -> what its backward pass differentiates: its parameters, then its input X."""

BUG_KINDS: dict[str, tuple[tuple[str, str], ...]] = {
    "missing transpose": (("linear", "W"), ("linear", "X")),
    "sign": (("tanh", "X"), ("scale", "gamma"), ("scale", "X"), ("relu", "X")),
    "wrong bias sum": (("linear", "b"), ("scale", "beta")),
}
"""Kind of bug -> the (layer, parameter) places where it can be planted."""

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Layer:
    """A layer: ``forward(params, X) -> Y`` and ``backward(params, X, dY) -> {name: gradient}``
    (one gradient per name of ``parameters``, shaped like that parameter or like X)."""

    name: str
    parameters: tuple[str, ...]
    forward: Callable[[Arrays, np.ndarray], np.ndarray]
    backward: Callable[[Arrays, np.ndarray, np.ndarray], dict[str, np.ndarray]]


def plan(variant: int) -> dict[str, tuple[str, str]]:
    """Kind of bug -> the (layer, parameter) that carries it in library number ``variant``.

    Variant 0 is the library of the problem set's notebook; the others are drawn at random
    from :data:`BUG_KINDS`, one place per kind.
    """
    if isinstance(variant, bool) or not isinstance(variant, (int, np.integer)) or variant < 0:
        raise ValueError(f"variant must be a non-negative integer, got {variant!r}")
    if variant == 0:
        return {"missing transpose": ("linear", "W"), "sign": ("tanh", "X"),
                "wrong bias sum": ("scale", "beta")}
    rng = np.random.default_rng([int(variant), 6])
    return {kind: places[int(rng.integers(len(places)))] for kind, places in BUG_KINDS.items()}


def _forward(name: str) -> Callable[[Arrays, np.ndarray], np.ndarray]:
    def linear(p: Arrays, X: np.ndarray) -> np.ndarray:
        return X @ p["W"].T + p["b"]

    def tanh(p: Arrays, X: np.ndarray) -> np.ndarray:
        return np.tanh(X)

    def scale(p: Arrays, X: np.ndarray) -> np.ndarray:
        return p["gamma"] * X + p["beta"]

    def relu(p: Arrays, X: np.ndarray) -> np.ndarray:
        return np.maximum(X, 0.0)

    return {"linear": linear, "tanh": tanh, "scale": scale, "relu": relu}[name]


def _backward(name: str, bugs: Mapping[str, str]
              ) -> Callable[[Arrays, np.ndarray, np.ndarray], dict[str, np.ndarray]]:
    """The backward pass of layer ``name`` with ``bugs`` (parameter -> kind) planted."""
    def planted(parameter: str, right: np.ndarray, transposed: np.ndarray | None = None,
                other_axis: np.ndarray | None = None) -> np.ndarray:
        kind = bugs.get(parameter)
        if kind == "missing transpose":
            return transposed
        if kind == "sign":
            return -right
        if kind == "wrong bias sum":
            return other_axis
        return right

    def linear(p: Arrays, X: np.ndarray, dY: np.ndarray) -> dict[str, np.ndarray]:
        W = p["W"]
        return {"W": planted("W", dY.T @ X, transposed=X.T @ dY),
                "b": planted("b", dY.sum(axis=0), other_axis=dY.sum(axis=1)),
                "X": planted("X", dY @ W, transposed=dY @ W.T)}

    def tanh(p: Arrays, X: np.ndarray, dY: np.ndarray) -> dict[str, np.ndarray]:
        return {"X": planted("X", dY * (1.0 - np.tanh(X) ** 2))}

    def scale(p: Arrays, X: np.ndarray, dY: np.ndarray) -> dict[str, np.ndarray]:
        return {"gamma": planted("gamma", (dY * X).sum(axis=0)),
                "beta": planted("beta", dY.sum(axis=0), other_axis=dY.sum(axis=1)),
                "X": planted("X", dY * p["gamma"])}

    def relu(p: Arrays, X: np.ndarray, dY: np.ndarray) -> dict[str, np.ndarray]:
        return {"X": planted("X", dY * (X > 0.0))}

    return {"linear": linear, "tanh": tanh, "scale": scale, "relu": relu}[name]


def library(variant: int = 0) -> dict[str, Layer]:
    """The four layers of :data:`PARAMETERS`, with the three bugs of :func:`plan` planted."""
    bugs: dict[str, dict[str, str]] = {name: {} for name in PARAMETERS}
    for kind, (layer, parameter) in plan(variant).items():
        bugs[layer][parameter] = kind
    return {name: Layer(name, params, _forward(name), _backward(name, bugs[name]))
            for name, params in PARAMETERS.items()}


def example(name: str, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(params, X, dY) to check layer ``name`` with: float64, batch and width :data:`WIDTH`.

    The input of ``relu`` has one entry exactly at the kink (0) and one just beside it
    (1e-7), as real checks meet them.
    """
    if name not in PARAMETERS:
        raise ValueError(f"unknown layer {name!r}; expected one of {list(PARAMETERS)}")
    rng = np.random.default_rng([int(seed), len(name)])
    d = WIDTH
    X = rng.normal(size=(d, d))
    dY = rng.normal(size=(d, d))
    params: dict[str, np.ndarray] = {}
    if name == "linear":
        params = {"W": rng.normal(0, 1 / np.sqrt(d), size=(d, d)), "b": rng.normal(0, 0.5, d)}
    elif name == "scale":
        params = {"gamma": rng.uniform(0.5, 2.0, d) * rng.choice([-1.0, 1.0], d),
                  "beta": rng.normal(0, 0.5, d)}
    elif name == "relu":
        X[0, 0], X[1, 2] = 0.0, 1e-7
    return params, X, dY


def probe(x: np.ndarray) -> float:
    """A smooth scalar function of an array, to test a finite-difference routine on:
    sum_i (sin(3 x_i) + x_i^3 / 3) + prod_i cos(x_i)."""
    x = np.asarray(x, dtype=float)
    return float(np.sum(np.sin(3.0 * x) + x ** 3 / 3.0) + np.prod(np.cos(x)))


def probe_gradient(x: np.ndarray) -> np.ndarray:
    """The exact gradient of :func:`probe`."""
    x = np.asarray(x, dtype=float)
    others = np.array([np.prod(np.cos(np.delete(x, i))) for i in range(x.size)]).reshape(x.shape)
    return 3.0 * np.cos(3.0 * x) + x ** 2 - np.sin(x) * others


def probe32(x: np.ndarray) -> np.float32:
    """:func:`probe` computed in float32 (the function of a single-precision check)."""
    x = np.asarray(x, dtype=np.float32)
    three = np.float32(3.0)
    return np.float32(np.sum(np.sin(three * x) + x ** 3 / three) + np.prod(np.cos(x)))
