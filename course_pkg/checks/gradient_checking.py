"""Checks of assignment ps6: gradient checking (``book/gradient_checking.md``).

The student writes the central difference and the relative error r of the chapter, chooses the
step h for float64 and float32, recognises an entry whose step crosses the ReLU kink, checks
every parameter of every layer of :mod:`course_pkg.layers` (r per parameter), and reports the
bugs as data: which layer, which parameter, and r. The library's bugs move with its ``variant``
number, so a diagnosis must be computed, not copied: the hidden tests ask for libraries the
student has never seen.

Numbers that come out of finite differences are compared in bands: an r below
:data:`CORRECT_BAND` counts as "correct" whatever its exact value (for a right gradient it is
rounding noise, up to about 1e-7 here with h = 1e-6), an r above it must agree with the
reference to a relative :data:`R_TOLERANCE` (a planted bug gives r of 0.1 to 1).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from course_pkg import gradcheck, layers
from course_pkg.checks.feedback import MISTAKES, Exercise, Feedback, call, diagnose, variants
from course_pkg.checks.guard import reference_functions, withheld

CHAPTER = "book/gradient_checking.md"
FORBIDDEN = (gradcheck.relative_error, gradcheck.central_differences,
             gradcheck.finite_difference_gradients, gradcheck.gradient_check, layers.plan)
"""Switched off while the student's functions run; the sandbox withholds them too. The
library's :func:`~course_pkg.layers.plan` names the bug places: a diagnosis must find them."""
WITHHELD = withheld(*FORBIDDEN, *reference_functions())
CORRECT_BAND = 1e-4
R_TOLERANCE = 1e-4
BUG_THRESHOLD = 1e-3
"""r above this is a bug, for a check in float64 with no kink crossed (the chapter's table)."""
REQUIRED_R = {"float64": 5e-9, "float32": 1e-3}
"""The largest r of a central difference of :func:`course_pkg.layers.probe` (in that dtype)
that a good step reaches: near u^(1/3) these are met with room to spare; a step that lets
truncation (too large) or rounding (too small) dominate misses them."""

MISTAKES.update({
    "not central": "this is a one-sided (forward) difference. The central difference "
                   "evaluates f on both sides, f(x + h) - f(x - h), which cancels the h^2 "
                   "term of the Taylor series.",
    "step factor": "the difference is divided by h, but the two points x + h and x - h are "
                   "2h apart: divide by 2h.",
    "denominator": "the denominator of r is not max(floor, |a| + |b|). r compares the "
                   "difference with the sizes of both numbers, and the floor keeps two "
                   "numbers that are both nearly 0 from giving a large r.",
    "mean instead of max": "r of two arrays is the largest r over their entries, not the "
                           "average: one wrong entry must be enough to fail the check.",
    "step too small": "the step is too small for this precision: rounding error, about "
                      "u |f| / h with u the machine epsilon, dominates. The best step is "
                      "near u^(1/3).",
    "step too large": "the step is too large: the truncation error, about h^2 |f'''| / 6, "
                      "dominates. The best step is near u^(1/3) of the precision.",
    "kink": "an entry counts as crossing the kink exactly when x - h and x + h lie on "
            "different sides of 0, that is when |x| < h; the others are checked as usual.",
    "kink not excluded": "the entries of the ReLU's input within h of the kink are "
                         "compared too. There the central difference averages two slopes "
                         "and r is large although the gradient is right: leave them out.",
    "false alarm": "a parameter whose gradient is right is reported as a bug. Check that "
                   "no kink was crossed and that the threshold is the chapter's (r above "
                   "1e-3 in float64).",
    "missed a bug": "a planted bug was not reported: some parameter has r far above the "
                    "threshold but is missing from the diagnosis.",
})


def section(name: str) -> str:
    return f"{CHAPTER}, section '{name}'"


# -- exercise 1: the central difference -------------------------------------------------------
def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6,
                       mistake: str | None = None) -> np.ndarray:
    """(f(x + h e_i) - f(x - h e_i)) / 2h for every entry i of x; ``mistake`` builds a wrong
    variant."""
    if mistake != "not central":
        central = gradcheck.central_differences(f, x, h)
        return {"step factor": 2.0 * central, "sign flipped": -central}.get(mistake, central)
    x = np.array(x, dtype=float)
    here, grad = f(x), np.empty_like(x)
    for index in np.ndindex(x.shape):
        up = x.copy()
        up[index] += h
        grad[index] = (f(up) - here) / h
    return grad


def _difference_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    shapes = [(5,), (3, 2)] if not hidden else [(int(rng.integers(2, 7)),),
                                                (int(rng.integers(2, 4)), int(rng.integers(2, 4)))]
    steps = [1e-5, 1e-4] if not hidden else [float(10 ** rng.uniform(-6, -3)) for _ in shapes]
    return [(layers.probe, rng.uniform(-1.5, 1.5, size=shape), h)
            for shape, h in zip(shapes, steps, strict=True)]


CENTRAL = Exercise(
    title="the central difference (f(x + h e_i) - f(x - h e_i)) / 2h",
    chapter=section("Forward and central differences"),
    correct=central_difference,
    mistakes={tag: (lambda m: lambda f, x, h: central_difference(f, x, h, m))(tag)
              for tag in ("not central", "step factor", "sign flipped")},
    cases=_difference_cases,
    hint="perturb one entry at a time, on a copy of x, by +h and by -h.",
    forbidden=FORBIDDEN,
)


# -- exercise 2: the relative error ---------------------------------------------------------------
def relative_error(a: Any, b: Any, floor: float = 1e-8, mistake: str | None = None) -> float:
    """max over entries of |a - b| / max(floor, |a| + |b|) (eq. gc-relative)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if mistake == "denominator":
        ratio = np.abs(a - b) / np.maximum(floor, np.maximum(np.abs(a), np.abs(b)))
    else:
        ratio = np.abs(a - b) / np.maximum(floor, np.abs(a) + np.abs(b))
    return float(np.mean(ratio) if mistake == "mean instead of max" else np.max(ratio))


def _relative_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    n = int(rng.integers(3, 9)) if hidden else 5
    a = rng.normal(size=n)
    near = a * (1 + 1e-3 * rng.normal(size=n))
    near[0] = -a[0]                 # opposite signs: r = 1 there
    zeros = np.zeros(n)
    tiny = zeros + 1e-12 * rng.normal(size=n)
    floor = float(rng.uniform(1e-9, 1e-7)) if hidden else 1e-8
    return [(a, near, 1e-8), (zeros, tiny, floor), (a, a * 2.0, 1e-8),
            (rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), floor)]


RELATIVE = Exercise(
    title="the relative error r(a, b) (eq. gc-relative)",
    chapter=section("Relative error, and when to worry"),
    correct=relative_error,
    mistakes={tag: (lambda m: lambda a, b, floor: relative_error(a, b, floor, m))(tag)
              for tag in ("denominator", "mean instead of max")},
    cases=_relative_cases,
    hint="entry by entry: |a - b| divided by the larger of the floor and |a| + |b|; then "
         "the largest of these ratios.",
    forbidden=FORBIDDEN,
)


# -- exercise 3: the step for each precision ------------------------------------------------------
def step_error(h: float, dtype: str, points: int = 4) -> float:
    """The largest r of a central difference of :func:`course_pkg.layers.probe` with step
    ``h`` in ``dtype``, over a few random points, against the exact gradient."""
    function = layers.probe32 if dtype == "float32" else layers.probe
    kind = np.float32 if dtype == "float32" else np.float64
    rng = np.random.default_rng(11)
    worst = 0.0
    for _ in range(points):
        x = rng.uniform(-1.5, 1.5, size=5).astype(kind)
        exact = layers.probe_gradient(x.astype(float))
        estimate = np.empty(x.shape)
        step = kind(h)
        for i in range(x.size):
            up, down = x.copy(), x.copy()
            up[i] += step
            down[i] -= step
            estimate[i] = (float(function(up)) - float(function(down))) / (2.0 * float(step))
        worst = max(worst, relative_error(exact, estimate))
    return worst


STEP = Exercise(
    title="the step h of a central difference in float64 and in float32",
    chapter=section("Single precision"),
    correct=lambda dtype: None,
    mistakes={},
    cases=lambda rng, hidden: [("float64",), ("float32",)],
    hint="balance the truncation error (about h^2) against the rounding error (about u / h): "
         "the best h is near u^(1/3), with u = np.finfo(dtype).eps.",
    forbidden=FORBIDDEN,
)


def _check_step(h: Any, dtype: str) -> None:
    __tracebackhide__ = True
    try:
        h = float(h)
    except (TypeError, ValueError):
        raise Feedback("shape", STEP, "The step must be a number.") from None
    if not (np.isfinite(h) and h > 0):
        raise Feedback("not finite", STEP, "The step must be a positive number.")
    if step_error(h, dtype) > REQUIRED_R[dtype]:
        best = float(np.finfo(dtype).eps) ** (1 / 3)
        raise Feedback("step too small" if h < best else "step too large", STEP,
                       f"This is the step for {dtype}.")


# -- exercise 4: which entries cross the kink -----------------------------------------------------
def crosses_kink(z: np.ndarray, h: float, mistake: str | None = None) -> np.ndarray:
    """True where z - h and z + h lie on different sides of the kink at 0: |z| < h."""
    z = np.asarray(z, dtype=float)
    if mistake == "kink":
        return z < h
    return np.abs(z) < h


def _kink_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    h = 0.25 if not hidden else float(2.0 ** -int(rng.integers(2, 20)))
    z = rng.normal(0, 1, size=(3, 4)) * (4 * h)
    z.flat[:4] = [0.0, h, -h, -h / 2]
    return [(z, h), (rng.normal(size=6), 1e-6)]


KINK = Exercise(
    title="the entries whose step crosses the ReLU kink",
    chapter=section("The kink of the ReLU"),
    correct=lambda z, h: crosses_kink(z, h).astype(float),
    mistakes={"kink": lambda z, h: crosses_kink(z, h, "kink").astype(float)},
    cases=_kink_cases,
    hint="the kink is at 0; the check evaluates the ReLU at z - h and z + h.",
    forbidden=FORBIDDEN,
)


# -- exercise 5: r for every parameter of a layer -------------------------------------------------
def layer_errors(name: str, variant: int = 0, seed: int = 0, h: float = 1e-6,
                 mistake: str | None = None) -> dict[str, float]:
    """r of the backward pass of layer ``name`` of ``library(variant)``, per parameter, on
    ``example(name, seed)``, with C = sum(Y * dY); entries of the ReLU's input within h of
    the kink are left out."""
    layer = layers.library(variant)[name]
    params, X, dY = layers.example(name, seed)
    analytic = layer.backward(params, X, dY)
    errors = {}
    for parameter in layer.parameters:
        def loss(value: np.ndarray, parameter: str = parameter) -> float:
            trial = {**params, parameter: value} if parameter != "X" else params
            return float(np.sum(layer.forward(trial, value if parameter == "X" else X) * dY))

        point = X if parameter == "X" else params[parameter]
        numeric = central_difference(loss, point, h, "step factor" if mistake == "step factor"
                                     else None)
        keep = np.ones(point.shape, dtype=bool)
        if name == "relu" and parameter == "X" and mistake != "kink not excluded":
            keep = ~crosses_kink(X, h)
        errors[parameter] = relative_error(analytic[parameter][keep], numeric[keep])
    return errors


def banded(errors: Mapping[str, float]) -> dict[str, float]:
    """r below :data:`CORRECT_BAND` as 0: rounding noise is not compared."""
    return {k: (float(v) if float(v) >= CORRECT_BAND else 0.0) for k, v in errors.items()}


def hidden_library(rng: np.random.Generator) -> layers.Key:
    """A library the student has never seen: a variant number from ``rng`` and a salt drawn
    now, at grading time, from the operating system (:class:`course_pkg.layers.Key`), so that
    its bug places cannot be worked out from the library's source and the number."""
    return layers.Key(int(rng.integers(1, 10_000)), secrets.randbits(62))


def _layer_cases(rng: np.random.Generator, hidden: bool) -> list[tuple]:
    variants_ = [0] if not hidden else [hidden_library(rng)]
    seed = int(rng.integers(0, 100)) if hidden else 0
    return [(name, v, seed, 1e-6) for v in variants_ for name in layers.PARAMETERS]


LAYER = Exercise(
    title="r of every parameter of one layer",
    chapter=section("Relative error, and when to worry"),
    correct=lambda name, v, s, h: banded(layer_errors(name, v, s, h)),
    mistakes={tag: (lambda m: lambda name, v, s, h: banded(layer_errors(name, v, s, h, m)))(tag)
              for tag in ("kink not excluded", "step factor")},
    cases=_layer_cases,
    hint="for each name in layer.parameters, define C as a function of that parameter alone "
         "(the others fixed), take its central difference, and compare it with the "
         "backward pass's gradient of that name.",
    forbidden=FORBIDDEN,
)


def _check_layer(answer: Any, args: tuple) -> None:
    __tracebackhide__ = True
    if not isinstance(answer, Mapping):
        raise Feedback("shape", LAYER, "The result must be a dict: parameter name -> r.")
    try:
        got = banded(answer)
    except (TypeError, ValueError):
        raise Feedback("shape", LAYER, "Each r must be a number.") from None
    wrong = {tag: banded(fn(*args)) for tag, fn in ((t, _layer_variant(t)) for t in
                                                    LAYER.mistakes)}
    diagnose(got, LAYER.correct(*args), wrong, LAYER, rtol=R_TOLERANCE)


def _layer_variant(tag: str) -> Callable[..., dict[str, float]]:
    return lambda name, v, s, h: layer_errors(name, v, s, h, tag)


# -- exercise 6: the diagnosis ---------------------------------------------------------------------
def diagnosis(variant: int = 0, seed: int = 0) -> dict[str, dict[str, float]]:
    """layer -> {parameter -> r} for every parameter whose r is above :data:`BUG_THRESHOLD`
    (layers without one are left out)."""
    found: dict[str, dict[str, float]] = {}
    for name in layers.PARAMETERS:
        for parameter, r in layer_errors(name, variant, seed).items():
            if r > BUG_THRESHOLD:
                found.setdefault(name, {})[parameter] = r
    return found


DIAGNOSIS = Exercise(
    title="the diagnosis of a layer library: which layer, which parameter, r",
    chapter=section("Relative error, and when to worry"),
    correct=diagnosis,
    mistakes={},
    cases=lambda rng, hidden: ([(0, 0)] if not hidden else
                               [(hidden_library(rng), int(rng.integers(0, 100)))]),
    hint="run your layer check on every layer and keep what is above the chapter's threshold.",
    forbidden=FORBIDDEN,
)


def _check_diagnosis(answer: Any, variant: int, seed: int) -> None:
    __tracebackhide__ = True
    try:
        found = {(str(layer), str(parameter)): float(r) for layer, inner in answer.items()
                 for parameter, r in inner.items()}
    except (AttributeError, TypeError, ValueError):
        raise Feedback("shape", DIAGNOSIS, "The diagnosis must be a dict: layer -> {parameter "
                       "-> r}.") from None
    truth = {(layer, parameter): r for layer, inner in diagnosis(variant, seed).items()
             for parameter, r in inner.items()}
    if set(found) - set(truth):
        raise Feedback("false alarm", DIAGNOSIS)
    if set(truth) - set(found):
        raise Feedback("missed a bug", DIAGNOSIS)
    for key, r in truth.items():
        if not abs(found[key] - r) <= R_TOLERANCE * r:
            raise Feedback("unknown", DIAGNOSIS, "The right parameters are listed, but an r "
                           "is not the r of that parameter's check.")


# -- the check functions that the notebook calls ------------------------------------------------
def check_central_difference(student: Callable, seed: int | None = None) -> None:
    """Check ``central_difference(f, x, h)``."""
    __tracebackhide__ = True
    rng = np.random.default_rng(0 if seed is None else seed)
    for args in CENTRAL.cases(rng, seed is not None):
        answer = call(student, args, CENTRAL)
        diagnose(answer, CENTRAL.correct(*args), variants(CENTRAL.mistakes, args), CENTRAL,
                 rtol=1e-7)


def check_relative_error(student: Callable, seed: int | None = None) -> None:
    """Check ``relative_error(a, b, floor)``; a denominator without the floor is named too."""
    __tracebackhide__ = True
    RELATIVE.check(student, seed, second={"denominator": _no_floor})


def _no_floor(a: Any, b: Any, floor: float = 1e-8) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(all="ignore"):
        return float(np.max(np.abs(a - b) / (np.abs(a) + np.abs(b))))


def check_step(student: Callable, seed: int | None = None) -> None:
    """Check ``step_for(dtype)`` for float64 and float32 (by the error its step gives)."""
    __tracebackhide__ = True
    for (dtype,) in STEP.cases(np.random.default_rng(0), seed is not None):
        _check_step(call(student, (dtype,), STEP), dtype)


def check_crosses_kink(student: Callable, seed: int | None = None) -> None:
    """Check ``crosses_kink(z, h)`` (an array of booleans shaped like z)."""
    __tracebackhide__ = True
    rng = np.random.default_rng(0 if seed is None else seed)
    for args in KINK.cases(rng, seed is not None):
        answer = call(student, args, KINK)
        try:
            answer = np.asarray(answer, dtype=bool).astype(float)
        except (TypeError, ValueError):
            raise Feedback("shape", KINK, "The result must be an array of booleans.") from None
        diagnose(answer, KINK.correct(*args), variants(KINK.mistakes, args), KINK)


def check_layer_errors(student: Callable, seed: int | None = None) -> None:
    """Check ``layer_errors(name, variant, seed, h)`` on every layer of one library."""
    __tracebackhide__ = True
    rng = np.random.default_rng(0 if seed is None else seed)
    for args in LAYER.cases(rng, seed is not None):
        _check_layer(call(student, args, LAYER), args)


def check_diagnosis(student: Callable, seed: int | None = None) -> None:
    """Check ``diagnosis(variant, seed)``: exactly the planted bugs, each with its r, as a
    dict layer -> {parameter -> r}."""
    __tracebackhide__ = True
    rng = np.random.default_rng(0 if seed is None else seed)
    for variant, data_seed in DIAGNOSIS.cases(rng, seed is not None):
        _check_diagnosis(call(student, (variant, data_seed), DIAGNOSIS), variant, data_seed)


def planted(variant: int | layers.Key) -> set[tuple[str, str]]:
    """The (layer, parameter) places of :func:`course_pkg.layers.plan`, as a set (withheld in
    the sandbox with the other answers of the checks)."""
    return set(layers.plan(variant).values())
