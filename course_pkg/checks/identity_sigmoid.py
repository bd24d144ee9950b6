"""Checks of assignment ps1: the one-weight sigmoid of ``000_4a3fe56ce2bc8b6e.txt``.

The student writes dE/dw (eq. 6), the update w <- w - mu dE/dw and a training loop. In the
seed's notation the output is y_hat = A(w x) and the target is y.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from course_pkg import identity_sigmoid as ref
from course_pkg.checks.feedback import Exercise, Feedback, first_wrong_helper
from course_pkg.checks.guard import backward_passes, reference_functions, withheld

CHAPTER = "book/identity_sigmoid.md"
SEED = "000_4a3fe56ce2bc8b6e.txt"
FORBIDDEN = (ref.dE_dw, ref.update, ref.train, *backward_passes())
WITHHELD = withheld(*FORBIDDEN, *reference_functions())


def _sigmoid_prime(s: float) -> float:
    return ref.A(s) * (1.0 - ref.A(s))


def _no_x(w: float, x: float, y: float) -> float:
    y_hat = ref.A(w * x)
    return (y_hat - y) * y_hat * (1.0 - y_hat)


# -- dE/dw, eq. (6) ----------------------------------------------------------------------------
def dE_dw(w: float, x: float, y: float) -> float:
    """Eq. (6): dE/dw = (y_hat - y) x A(wx)(1 - A(wx)), with y_hat = A(wx)."""
    y_hat = ref.A(w * x)
    return (y_hat - y) * x * y_hat * (1.0 - y_hat)


DE_DW_MISTAKES: dict[str, Callable[..., float]] = {
    "S' missing": lambda w, x, y: (ref.A(w * x) - y) * x,
    "S' of a instead of z": lambda w, x, y: (ref.A(w * x) - y) * x * _sigmoid_prime(ref.A(w * x)),
    "sign flipped": lambda w, x, y: -dE_dw(w, x, y),
    "input missing": _no_x,
}


def _gradient_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    if not hidden:
        return [(0.5, 1.0, 1.0), (-0.3, 1.0, 0.0), (1.5, -0.7, 0.25)]
    return [(float(rng.uniform(-2, 2)), float(rng.choice([-1, 1]) * rng.uniform(0.3, 2)),
             float(rng.uniform(0, 1))) for _ in range(6)]


DE_DW = Exercise(
    title="dE/dw",
    notebook_equation=2,
    equation="is-eq6",
    chapter=f"{CHAPTER}, section 'Differentiating the error, line by line'",
    correct=ref.dE_dw,
    mistakes=DE_DW_MISTAKES,
    cases=_gradient_cases,
    hint="write y_hat = A(w x) first, then multiply the three factors of the chain rule: "
         "dE/dy_hat, dA/ds at s = w x, and ds/dw = x.",
    forbidden=FORBIDDEN,
)


# -- the update rule ---------------------------------------------------------------------------
def update(w: float, x: float, y: float, mu: float) -> float:
    """One gradient-descent step: w_new = w - mu dE/dw."""
    return w - mu * dE_dw(w, x, y)


def _with_gradient(gradient: Callable[..., float]) -> Callable[..., float]:
    return lambda w, x, y, mu: w - mu * gradient(w, x, y)


UPDATE_MISTAKES = {tag: _with_gradient(wrong) for tag, wrong in DE_DW_MISTAKES.items()}


def _update_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    cases = _gradient_cases(rng, hidden)
    mus = rng.uniform(0.1, 3.0, size=len(cases)) if hidden else [0.5, 2.0, 1.0]
    return [(*args, float(mu)) for args, mu in zip(cases, mus, strict=True)]


UPDATE = Exercise(
    title="the update w <- w - mu dE/dw",
    notebook_equation=3,
    equation="is-update",
    chapter=f"{CHAPTER}, section 'From the derivative to the update'",
    correct=ref.update,
    mistakes=UPDATE_MISTAKES,
    cases=_update_cases,
    hint="return the new weight, not the step; the step is mu times your dE_dw, subtracted.",
    forbidden=FORBIDDEN,
    earlier=lambda student, case: _earlier_for_update(student, case),
)


def _earlier_for_update(student: Callable[..., float], case: tuple) -> Feedback | None:
    """The student's dE_dw on the case's (w, x, y), when their update is wrong."""
    return first_wrong_helper(student, UPDATE, [(DE_DW, "dE_dw", case[:3])])


# -- the training loop -------------------------------------------------------------------------
def _train_with(step: Callable[..., float]) -> Callable[..., np.ndarray]:
    def train(w0: float, mu: float, steps: int, xs: tuple[float, ...]) -> np.ndarray:
        path = [float(w0)]
        for i in range(steps):
            x = xs[i % len(xs)]
            path.append(step(path[-1], x, x, mu))
        return np.asarray(path)
    return train


train = _train_with(update)
train.__doc__ = """The weights w_0, ..., w_steps: one update per example, cycling through xs."""

TRAIN_MISTAKES = {tag: _train_with(wrong) for tag, wrong in UPDATE_MISTAKES.items()}


def _train_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    if not hidden:
        return [(0.5, 1.0, 6, (0.0, 1.0)), (-1.0, 2.0, 5, (1.0,))]
    orders = [(0.0, 1.0), (1.0, 0.0), (1.0,)]  # both examples, in either order, or only x = 1
    return [(float(rng.uniform(-2, 2)), float(rng.uniform(0.1, 3.0)), int(rng.integers(2, 40)),
             xs) for xs in orders]


TRAIN = Exercise(
    title="the training loop",
    notebook_equation=3,
    equation="is-update",
    chapter=f"{CHAPTER}, sections 'From the derivative to the update' and "
            "'What this network cannot learn'",
    correct=ref.train,
    mistakes=TRAIN_MISTAKES,
    cases=_train_cases,
    hint="start the list with w0, then apply your update once per step, taking the examples "
         "x = xs[0], xs[1], ... in turn (back to xs[0] after the last) with target y = x.",
    forbidden=FORBIDDEN,
    trains=True,
    earlier=lambda student, case: first_wrong_helper(student, TRAIN, train_steps(*case)),
)


def train_steps(w0: float, mu: float, steps: int, xs: tuple[float, ...]
                ) -> list[tuple[Exercise, str, tuple]]:
    """What the training loop asks of the student's dE_dw and update on its first passes
    over the examples (each example twice at most), in the loop's order, along the right
    path of weights: (exercise, the helper's name, its arguments)."""
    asked: list[tuple[Exercise, str, tuple]] = []
    w = float(w0)
    for i in range(min(steps, 2 * len(xs))):
        x = xs[i % len(xs)]
        asked += [(DE_DW, "dE_dw", (w, x, x)), (UPDATE, "update", (w, x, x, mu))]
        w = float(ref.update(w, x, x, mu))
    return asked


def check_dE_dw(student: Callable[..., float], seed: int | None = None) -> None:
    """Check a student's dE/dw (eq. 6); ``seed`` picks random hidden cases."""
    __tracebackhide__ = True
    DE_DW.check(student, seed)


def check_update(student: Callable[..., float], seed: int | None = None) -> None:
    """Check a student's update rule w - mu dE/dw."""
    __tracebackhide__ = True
    UPDATE.check(student, seed)


def check_train(student: Callable[..., np.ndarray], seed: int | None = None) -> None:
    """Check a student's training loop against the same loop built on the reference update."""
    __tracebackhide__ = True
    TRAIN.check(student, seed)
