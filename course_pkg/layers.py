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

The libraries of the hidden tests are keyed (:class:`Key`): their places depend on the variant
number *and* on a salt that the trusted grader draws when it grades, so that the places cannot
be recomputed from this source and the number. The grader sends a key across the sandbox's wire
by name (``course_pkg.layers:_KEYS.v<variant>_s<salt>``); resolving that name inside the
student's kernel hands the student's function the plain variant number and leaves the salt
where only :func:`library` reads it (a closure cell of :data:`_KEYS`'s resolver). Problem
set 6's sandbox also withholds :func:`plan`, the one public route to the places.
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


class Key:
    """A hidden library: its ``variant`` number and the ``salt`` drawn for it at grading time.

    Pass it wherever a variant number goes (:func:`library`, :func:`plan`); it behaves as its
    number for ``int()`` and indexing. It is callable only so that the sandbox's wire
    (:mod:`course_pkg.sandbox.wire`) carries it by name: the name ``_KEYS.v<variant>_s<salt>``
    resolves, in the student's kernel, to the plain number, with the salt registered for
    :func:`library`.
    """

    def __init__(self, variant: int, salt: int) -> None:
        self.variant, self.salt = _check_variant(variant), _check_salt(salt)
        self.__module__ = __name__
        self.__qualname__ = f"_KEYS.v{self.variant}_s{self.salt}"

    def __index__(self) -> int:
        return self.variant

    __int__ = __index__

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("a library key is not a function: pass it to library() as a variant")

    def __repr__(self) -> str:
        return f"Key(variant={self.variant})"


def _check_variant(variant: object) -> int:
    if isinstance(variant, Key):
        return variant.variant
    if isinstance(variant, bool) or not isinstance(variant, (int, np.integer)) or variant < 0:
        raise ValueError(f"variant must be a non-negative integer, got {variant!r}")
    return int(variant)


def _check_salt(salt: object) -> int:
    if isinstance(salt, bool) or not isinstance(salt, (int, np.integer)) or salt < 0:
        raise ValueError(f"a salt must be a non-negative integer, got {salt!r}")
    return int(salt)


def _places(variant: int, salt: int | None) -> dict[str, tuple[str, str]]:
    """Kind of bug -> (layer, parameter) of library ``variant``, drawn with ``salt`` if any.

    A salted draw is never the unsalted draw of the same number, nor library 0's places: a
    diagnosis recomputed from this source without the salt, or copied from the notebook's
    library, is wrong on every keyed library. Nor does it flip the sign of the ReLU's input,
    whose right gradient is what shows a check that forgets the kink (r = 1 at the kink).
    """
    notebook = {"missing transpose": ("linear", "W"), "sign": ("tanh", "X"),
                "wrong bias sum": ("scale", "beta")}
    if variant == 0:
        return notebook
    seed = [variant, 6] if salt is None else [variant, 6, 1, salt]
    rng = np.random.default_rng(seed)
    while True:
        drawn = {kind: places[int(rng.integers(len(places)))]
                 for kind, places in BUG_KINDS.items()}
        if salt is None or (drawn not in (notebook, _places(variant, None))
                            and drawn["sign"] != ("relu", "X")):
            return drawn


def plan(variant: int | Key) -> dict[str, tuple[str, str]]:
    """Kind of bug -> the (layer, parameter) that carries it in library number ``variant``.

    Variant 0 is the library of the problem set's notebook; the others are drawn at random
    from :data:`BUG_KINDS`, one place per kind (a :class:`Key`'s draw also uses its salt).
    Withheld in problem set 6's grading sandbox: there the places are found by checking.
    """
    number = _check_variant(variant)
    return _places(number, variant.salt if isinstance(variant, Key) else None)


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


def _keyed_library() -> tuple[object, Callable[..., dict[str, Layer]]]:
    """:func:`library`, and the object on which the wire resolves a key's name.

    The salts of the keys resolved in this process live in this closure only: no module
    attribute holds them, and no function of this module returns them.
    """
    salts: dict[int, int] = {}

    class Resolver:
        def __getattr__(self, name: str) -> int:
            variant, _, salt = name.removeprefix("v").partition("_s")
            if not (name.startswith("v") and variant.isdigit() and salt.isdigit()):
                raise AttributeError(name)
            salts[int(variant)] = int(salt)
            return int(variant)

    def library(variant: int | Key = 0) -> dict[str, Layer]:
        """The four layers of :data:`PARAMETERS`, with the three bugs of :func:`plan` planted.

        A :class:`Key` plants them where its salt draws them; so does the number of a key
        that the grader sent into this process.
        """
        number = _check_variant(variant)
        salt = variant.salt if isinstance(variant, Key) else salts.get(number)
        bugs: dict[str, dict[str, str]] = {name: {} for name in PARAMETERS}
        for kind, (layer, parameter) in _places(number, salt).items():
            bugs[layer][parameter] = kind
        return {name: Layer(name, params, _forward(name), _backward(name, bugs[name]))
                for name, params in PARAMETERS.items()}

    library.__module__ = __name__
    return Resolver(), library


_KEYS, library = _keyed_library()


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
