"""Checks of assignment ps2: the two-layer tanh network of ``001_ce18104b0c2237dd.txt``.

Seed notation, one example: input x (D,), first-layer weights w1 (M, D) with w1[j, i] = w_ji,
hidden pre-activations h = w1 x, hidden outputs z = tanh(h) (M,), second-layer weights w2
(K, M), outputs y = w2 z (K,) and targets y_hat (K,). E = 1/2 sum_k (y_k - y_hat_k)^2.
The student writes the output deltas, the hidden deltas (the sum over k), dE/dw2 and dE/dw1
(eqs. 5.9-5.12) in plain NumPy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from course_pkg import tanh_two_layer as ref
from course_pkg.checks.feedback import Exercise, first_wrong_helper
from course_pkg.checks.guard import backward_passes, reference_functions, withheld

CHAPTER = "book/tanh_two_layer.md"
SEED = "001_ce18104b0c2237dd.txt"
GRADIENT = f"{CHAPTER}, section 'The gradient, one weight at a time'"
FORBIDDEN = (ref.dE_dw1, ref.dE_dw2, ref.dE_dz, ref.gradients, *backward_passes())
WITHHELD = withheld(*FORBIDDEN, *reference_functions())


def _network(rng: np.random.Generator, D: int, M: int, K: int) -> dict[str, np.ndarray]:
    """Random weights, an input and targets; the outputs are computed by the forward pass."""
    w1 = rng.normal(0.0, 1.0 / np.sqrt(D), size=(M, D))
    w2 = rng.normal(0.0, 1.0 / np.sqrt(M), size=(K, M))
    x = rng.normal(size=D)
    y_hat = rng.normal(size=K)
    h, z, y = ref.forward(w1, w2, x)
    delta_out = y - y_hat
    delta_hidden = (1.0 - z**2) * (w2.T @ delta_out)
    return dict(w1=w1, w2=w2, x=x, y_hat=y_hat, h=h, z=z, y=y, delta_out=delta_out,
                delta_hidden=delta_hidden)


def _sizes(rng: np.random.Generator, hidden: bool) -> list[tuple[int, int, int]]:
    """(D, M, K): a square network first (so that W and W^T both fit), then a rectangular one."""
    if not hidden:
        return [(3, 3, 3), (4, 3, 2)]
    n = int(rng.integers(2, 7))
    D, M, K = (int(v) for v in rng.choice(np.arange(2, 9), size=3, replace=False))
    return [(n, n, n), (D, M, K)]


def _cases(*names: str) -> Callable[[np.random.Generator, bool], list[tuple]]:
    """Cases that hand the student the named quantities of a random network."""
    def cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
        nets = [_network(rng, *sizes) for sizes in _sizes(rng, hidden)]
        return [tuple(net[name] for name in names) for net in nets]
    return cases


# -- output deltas, dE/dy_k --------------------------------------------------------------------
def output_deltas(y: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """delta_k = dE/dy_k = y_k - y_hat_k, from eq. (5.8)."""
    return y - y_hat


OUTPUT_DELTAS = Exercise(
    title="the output deltas dE/dy_k",
    notebook_equation=2,
    equation="tanh-dw2",
    chapter=GRADIENT,
    correct=output_deltas,
    mistakes={"sign flipped": lambda y, y_hat: y_hat - y,
              "factor 2": lambda y, y_hat: 2.0 * (y - y_hat)},
    cases=_cases("y", "y_hat"),
    hint="differentiate 1/2 (y_k - y_hat_k)^2 with respect to the output y_k.",
    forbidden=FORBIDDEN,
)


# -- hidden deltas, dE/dh_j --------------------------------------------------------------------
def hidden_deltas(w2: np.ndarray, z: np.ndarray, delta_out: np.ndarray) -> np.ndarray:
    """delta_j = dE/dh_j = (1 - z_j^2) sum_k w2[k, j] delta_k (eqs. 5.7, 5.10, 5.11)."""
    return (1.0 - z**2) * (w2.T @ delta_out)


HIDDEN_DELTAS = Exercise(
    title="the hidden deltas dE/dh_j",
    notebook_equation=4,
    equation="tanh-dz",
    chapter=f"{GRADIENT} and section 'The derivative of tanh'",
    correct=hidden_deltas,
    mistakes={
        "S' missing": lambda w2, z, d: w2.T @ d,
        "S' of a instead of z": lambda w2, z, d: (1.0 - np.tanh(z) ** 2) * (w2.T @ d),
        "W instead of W^T": lambda w2, z, d: (1.0 - z**2) * (w2 @ d),
        "sign flipped": lambda w2, z, d: -hidden_deltas(w2, z, d),
        "no sum over k": lambda w2, z, d: (1.0 - z**2) * w2[0] * d[0],
    },
    cases=_cases("w2", "z", "delta_out"),
    hint="hidden unit j feeds every output k through the weight w2[k, j]; add up "
         "w2[k, j] * delta_k over k, then multiply by f'(h_j) = 1 - z_j^2.",
    forbidden=FORBIDDEN,
)


# -- the weight gradients ----------------------------------------------------------------------
def weight_gradient(delta: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """dE/dw[r, s] = delta_r * inputs_s: eq. (5.9) with (delta_out, z), eq. (5.12) with
    (delta_hidden, x)."""
    return np.outer(delta, inputs)


WEIGHT_MISTAKES = {
    "transposed": lambda delta, inputs: np.outer(inputs, delta),
    "sign flipped": lambda delta, inputs: -np.outer(delta, inputs),
    "input missing": lambda delta, inputs: np.outer(delta, np.ones_like(inputs)),
}

GRAD_W2 = Exercise(
    title="dE/dw2",
    notebook_equation=5,
    equation="tanh-dw2",
    chapter=GRADIENT,
    correct=weight_gradient,
    mistakes=WEIGHT_MISTAKES,
    cases=_cases("delta_out", "z"),
    hint="entry [k, j] is the output delta delta_k times the hidden output z_j that travels "
         "along w2[k, j]; np.outer builds the whole table at once.",
    forbidden=FORBIDDEN,
)

GRAD_W1 = Exercise(
    title="dE/dw1",
    notebook_equation=5,
    equation="tanh-dw1",
    chapter=GRADIENT,
    correct=weight_gradient,
    mistakes=WEIGHT_MISTAKES,
    cases=_cases("delta_hidden", "x"),
    hint="entry [j, i] is the hidden delta delta_j times the input x_i that travels along "
         "w1[j, i].",
    forbidden=FORBIDDEN,
)


# -- the whole backward pass -------------------------------------------------------------------
def gradients(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y_hat: np.ndarray,
              mistake: str | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """(E, dE/dw1, dE/dw2) for one example; ``mistake`` builds a known wrong variant."""
    _, z, y = ref.forward(w1, w2, x)
    d_out = y - y_hat
    if mistake == "sign flipped":
        d_out = -d_out
    back = w2 @ d_out if mistake == "W instead of W^T" else w2.T @ d_out
    f_prime = {"S' missing": 1.0, "S' of a instead of z": 1.0 - np.tanh(z) ** 2}
    d_hidden = f_prime.get(mistake, 1.0 - z**2) * back
    first_input = z if mistake == "wrong layer" else x
    second_input = x if mistake == "wrong layer" else z
    return (ref.E(y, y_hat), np.outer(d_hidden, first_input), np.outer(d_out, second_input))


def _variant(tag: str) -> Callable[..., tuple]:
    return lambda w1, w2, x, y_hat: gradients(w1, w2, x, y_hat, mistake=tag)


def helper_steps(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y_hat: np.ndarray
                 ) -> list[tuple[Exercise, str, tuple]]:
    """What the backward pass of the last exercise asks of the four helpers on one case, in
    the order it asks it: (exercise, the helper's name in the notebook, its arguments)."""
    _, z, y = ref.forward(w1, w2, x)
    delta_out = output_deltas(y, y_hat)
    delta_hidden = hidden_deltas(w2, z, delta_out)
    return [(OUTPUT_DELTAS, "output_deltas", (y, y_hat)),
            (HIDDEN_DELTAS, "hidden_deltas", (w2, z, delta_out)),
            (GRAD_W1, "grad_w1", (delta_hidden, x)),
            (GRAD_W2, "grad_w2", (delta_out, z))]


GRADIENTS = Exercise(
    title="the backward pass (E, dE/dw1, dE/dw2)",
    notebook_equation=5,
    equation="tanh-dw1",
    chapter=GRADIENT,
    correct=ref.gradients,
    mistakes={tag: _variant(tag) for tag in (
        "S' missing", "S' of a instead of z", "W instead of W^T", "sign flipped", "wrong layer")},
    cases=_cases("w1", "w2", "x", "y_hat"),
    hint="run the forward pass (h, z, y), then your four functions in order: output deltas, "
         "hidden deltas, dE/dw2 from (delta_out, z), dE/dw1 from (delta_hidden, x).",
    forbidden=FORBIDDEN,
    returns=("E", "dE_dw1", "dE_dw2"),
    earlier=lambda student, case: first_wrong_helper(student, GRADIENTS, helper_steps(*case)),
)


def check_output_deltas(student: Callable[..., np.ndarray], seed: int | None = None) -> None:
    """Check ``output_deltas(y, y_hat)``; ``seed`` picks random hidden cases."""
    __tracebackhide__ = True
    OUTPUT_DELTAS.check(student, seed)


def check_hidden_deltas(student: Callable[..., np.ndarray], seed: int | None = None) -> None:
    """Check ``hidden_deltas(w2, z, delta_out)``."""
    __tracebackhide__ = True
    HIDDEN_DELTAS.check(student, seed)


def check_grad_w2(student: Callable[..., np.ndarray], seed: int | None = None) -> None:
    """Check ``grad_w2(delta_out, z)``."""
    __tracebackhide__ = True
    GRAD_W2.check(student, seed)


def check_grad_w1(student: Callable[..., np.ndarray], seed: int | None = None) -> None:
    """Check ``grad_w1(delta_hidden, x)``."""
    __tracebackhide__ = True
    GRAD_W1.check(student, seed)


def check_gradients(student: Callable[..., tuple], seed: int | None = None) -> None:
    """Check ``gradients(w1, w2, x, y_hat) -> (E, dE_dw1, dE_dw2)``."""
    __tracebackhide__ = True
    GRADIENTS.check(student, seed)
