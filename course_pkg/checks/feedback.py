"""Feedback that teaches: name the most likely mistake behind a wrong answer.

A check computes, from the same inputs it gives the student's function, the correct answer and
the answer of every known wrong variant (the mistake table of the exercise: a dict from a tag
of :data:`MISTAKES` to a function with the student's signature). When the student's answer is
wrong, :func:`diagnose` looks for the variant it equals and raises an ``AssertionError`` whose
first line is a stable tag that the instructor pipeline can count::

    [mistake: S' missing] the hidden deltas (eq. 5.11 of 001_ce18104b0c2237dd.txt): ...

No message ever contains an array value, the expected answer included: it names the mistake
and the chapter to read again. Shapes, which the visible tests state anyway, may appear.
"""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from course_pkg.checks.guard import ReferenceUsedError, forbid

MISTAKES: dict[str, str] = {
    "S' missing": "the derivative of the activation is missing. The chain rule passes through "
                  "every activation a = S(z), so each delta carries a factor S'(z).",
    "S' of a instead of z": "the derivative of the activation is evaluated at the output "
                            "a = S(z) instead of at its input z. For tanh, 1 - a^2 already is "
                            "S'(z); 1 - tanh(a)^2 is not.",
    "W instead of W^T": "the error is sent back through W instead of its transpose. W maps "
                        "layer l-1 forward to layer l; going backwards uses W^T.",
    "sign flipped": "the sign is flipped. Check which of output and target comes first in the "
                    "error, and whether the step goes down the gradient (minus) or up.",
    "sum instead of mean": "the result is n times too large: it sums over the batch where "
                           "Algorithm 2 averages (divide by the number of examples n).",
    "wrong layer": "a value from the wrong layer is used: layer l's gradient needs a_{l-1} "
                   "(the layer that feeds it), and delta_{l-1} needs S'(z_{l-1}).",
    "transposed": "the result is the transpose of the right one. A weight gradient has the "
                  "shape of its weight matrix: (outputs of the layer, inputs of the layer).",
    "input missing": "the input factor is missing: a weight's derivative is the delta of the "
                     "node it feeds times the activation that travels along that weight.",
    "factor 2": "the factor 2 is off: ||g - y||^2 differentiates to 2 (g - y), while "
                "1/2 ||g - y||^2 differentiates to g - y. Check which loss this is.",
    "softmax missing": "the logits z are used where the probabilities g = softmax(z) belong.",
    "wrong axis": "the sum runs over the wrong axis: each column is one example, so a softmax "
                  "normalises down a column, and a batch average runs along a row.",
    "no sum over k": "only one output's contribution is kept: a hidden unit feeds every output "
                     "k, so its delta sums the contributions of all of them.",
    "shape": "the result has the wrong shape.",
    "not implemented": "the exercise is not solved yet (it still raises NotImplementedError).",
    "error": "your function raised an error.",
    "not finite": "the result contains NaN or inf.",
    "used course_pkg": "your function calls course_pkg's own implementation of what this "
                       "exercise asks you to write.",
    "too slow": "the computation took longer than this exercise allows.",
    "too inaccurate": "the result is not accurate enough.",
    "unknown": "the result is wrong, and it matches none of the usual mistakes.",
}
"""Tag -> what it means. The tags are stable: the pipeline counts them."""

WIDTH = 80
"""Messages are wrapped to this width (``nbgrader validate`` cuts longer lines)."""

TAG = re.compile(r"\[mistake: ([^\]\n]+)\]")
"""The stable first line of every message, ``[mistake: <tag>]``."""


def tags_in(text: str) -> list[str]:
    """The mistake tags in ``text`` (e.g. the error outputs of an autograded notebook), in
    order; only tags of :data:`MISTAKES` count."""
    return [tag for tag in TAG.findall(text) if tag in MISTAKES]


class Feedback(AssertionError):
    """A failed check. ``tag`` is a key of :data:`MISTAKES`; ``str()`` is the message."""

    def __init__(self, tag: str, exercise: Exercise, detail: str = "") -> None:
        if tag not in MISTAKES:
            raise ValueError(f"unknown mistake tag {tag!r}; expected one of {sorted(MISTAKES)}")
        self.tag = tag
        paragraphs = [f"In {exercise.title}, {MISTAKES[tag]}", detail[:1].upper() + detail[1:]]
        if tag == "unknown" and exercise.hint:
            paragraphs.append(f"Hint: {exercise.hint}")
        paragraphs.append(f"Read again: {exercise.chapter}.")
        lines = [f"[mistake: {tag}]"]
        lines += [line for text in paragraphs if text for line in textwrap.wrap(text, WIDTH)]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Exercise:
    """One exercise: how to check a student's function and how to explain its mistakes.

    Attributes
    ----------
    title
        What is computed, with its equation and seed, e.g. "the hidden deltas (eq. 5.11 ...)".
    chapter
        Where to read again, e.g. "book/tanh_two_layer.md, the hidden deltas".
    correct
        The reference answer; same signature as the student's function.
    mistakes
        Tag of :data:`MISTAKES` -> a wrong variant with the same signature.
    cases
        ``cases(rng, hidden)`` -> a list of argument tuples. The first case should make every
        variant computable (square layers, so that W and W^T both fit).
    hint
        Advice shown when the mistake is unknown.
    forbidden
        Reference functions that the student's function must not call.
    returns
        Names of the items of a tuple result, e.g. ("dW", "db"), used in the messages.
    """

    title: str
    chapter: str
    correct: Callable[..., Any]
    mistakes: Mapping[str, Callable[..., Any]]
    cases: Callable[[np.random.Generator, bool], list[tuple]]
    hint: str = ""
    forbidden: tuple[Callable[..., Any], ...] = field(default=())
    returns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.mistakes) - set(MISTAKES)
        if unknown:
            raise ValueError(f"mistake tags {sorted(unknown)} are not in MISTAKES")

    def check(self, student: Callable[..., Any], seed: int | None = None) -> None:
        """Run ``student`` on this exercise's cases and raise :class:`Feedback` if it is wrong.

        ``seed=None`` gives the small fixed cases of the visible tests; an integer seed gives
        the random sizes and values of the hidden tests.
        """
        __tracebackhide__ = True  # IPython and pytest show the student's frames only
        rng = np.random.default_rng(0 if seed is None else seed)
        for args in self.cases(rng, seed is not None):
            answer = call(student, args, self)
            diagnose(answer, self.correct(*args), variants(self.mistakes, args), self)


def call(student: Callable[..., Any], args: Iterable[Any], exercise: Exercise) -> Any:
    """``student(*args)`` on copies of the arguments, with the reference implementation off.

    Any exception becomes :class:`Feedback` with tag ``not implemented``, ``used course_pkg``
    or ``error`` (the type and message of the exception, which are the student's own).
    """
    __tracebackhide__ = True
    if not callable(student):
        raise Feedback("error", exercise, f"expected a function, got {type(student).__name__}.")
    args = [_copy(a) for a in args]
    try:
        with forbid(*exercise.forbidden):
            return student(*args)
    except NotImplementedError:
        raise Feedback("not implemented", exercise) from None
    except ReferenceUsedError as err:
        raise Feedback("used course_pkg", exercise, f"It called {err}.") from None
    except Exception as err:  # the student's own error: keep its traceback, which shows where
        if hasattr(err, "ename"):  # raised in the grading sandbox, and named there
            raise Feedback("error", exercise, f"{err}") from None
        raise Feedback("error", exercise, f"{type(err).__name__}: {_first_line(err)}") from err


def timed(student: Callable[..., Any], args: Iterable[Any], exercise: Exercise,
          limit_s: float) -> Any:
    """:func:`call`, failing with ``too slow`` if it takes more than ``limit_s`` seconds.

    The seconds are the student's function's own ``clock`` where it has one (the grader's
    handle on a function in the sandbox counts the sandbox's CPU time, which a busy neighbour
    cannot inflate), else wall-clock time.
    """
    __tracebackhide__ = True
    clock = getattr(student, "clock", time.perf_counter)
    start = clock()
    answer = call(student, args, exercise)
    elapsed = clock() - start
    if elapsed > limit_s:
        what = getattr(student, "clock_name", "")
        raise Feedback("too slow", exercise, f"It took {elapsed:.1f} s{what}; the limit is "
                                             f"{limit_s} s.")
    return answer


def variants(mistakes: Mapping[str, Callable[..., Any]], args: tuple) -> dict[str, Any]:
    """Each wrong variant's answer on ``args``; variants that cannot run here are left out."""
    out = {}
    for tag, wrong in mistakes.items():
        try:
            with np.errstate(all="ignore"):
                out[tag] = wrong(*[_copy(a) for a in args])
        except (ValueError, IndexError, KeyError, TypeError):  # e.g. W @ delta on a rectangle
            continue
    return out


def diagnose(answer: Any, expected: Any, wrong: Mapping[str, Any], exercise: Exercise,
             rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Return if ``answer`` equals ``expected``; else raise :class:`Feedback` naming the mistake.

    ``wrong`` maps tags to the answers of the known wrong variants. A variant counts only if
    it differs from the right answer on this case. The message never shows an array.
    """
    __tracebackhide__ = True
    names = exercise.returns
    expected_parts = _parts(expected, names=names)
    try:
        parts = _parts_like(answer, expected, names=names)
    except ValueError as err:
        raise Feedback("shape", exercise, str(err)) from None
    if _close(parts, expected_parts, rtol, atol):
        return
    for tag, value in wrong.items():
        try:
            variant = _parts_like(value, expected, names=names)
        except ValueError:
            continue
        if _close(parts, variant, rtol, atol) and not _close(variant, expected_parts, rtol, atol):
            raise Feedback(tag, exercise)
    for (name, got), (_, want) in zip(parts, expected_parts, strict=True):
        if got.shape != want.shape:
            raise Feedback("shape", exercise, _shape_detail(name, got.shape, want.shape))
        if not np.all(np.isfinite(got)):
            raise Feedback("not finite", exercise, f"See {name}.")
    wrong_names = [name for (name, got), (_, want) in zip(parts, expected_parts, strict=True)
                   if not np.allclose(got, want, rtol=rtol, atol=atol)]
    where = f"Wrong: {', '.join(wrong_names)}." if len(parts) > 1 else ""
    raise Feedback("unknown", exercise, where)


def _shape_detail(name: str, got: tuple, want: tuple) -> str:
    detail = f"{name} has shape {got}, expected {want}."
    try:
        np.broadcast_shapes(got, want)
    except ValueError:
        return detail
    return detail + (" The two shapes broadcast against each other, so an arithmetic "
                     "expression mixing them runs silently and computes something else.")


def _item_names(name: str, count: int, names: tuple[str, ...]) -> list[str]:
    return list(names) if len(names) == count else [f"{name}[{i}]" for i in range(count)]


def _parts(value: Any, name: str = "the result", names: tuple[str, ...] = ()
           ) -> list[tuple[str, np.ndarray]]:
    """Flatten a reference answer (an array, or a tuple/dict of them) into named arrays."""
    if isinstance(value, dict):
        return [part for key in sorted(value) for part in _parts(value[key], f"{name}[{key}]")]
    if isinstance(value, tuple):
        labels = _item_names(name, len(value), names)
        return [part for item, label in zip(value, labels, strict=True)
                for part in _parts(item, label)]
    return [(name, np.asarray(value, dtype=float))]


def _parts_like(value: Any, like: Any, name: str = "the result", names: tuple[str, ...] = ()
                ) -> list[tuple[str, np.ndarray]]:
    """Flatten ``value`` with the structure of ``like``; a ValueError says what differs."""
    if isinstance(like, dict):
        if not isinstance(value, dict) or sorted(value) != sorted(like):
            raise ValueError(f"{name} must be a dict with keys {sorted(like)}, got "
                             f"{_describe(value)}.")
        return [p for key in sorted(like) for p in _parts_like(value[key], like[key],
                                                                 f"{name}[{key}]")]
    if isinstance(like, tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(like):
            raise ValueError(f"{name} must be a tuple of {len(like)} items, got "
                             f"{_describe(value)}.")
        labels = _item_names(name, len(like), names)
        return [p for v, w, label in zip(value, like, labels, strict=True)
                for p in _parts_like(v, w, label)]
    if value is None:
        raise ValueError(f"{name} is None: did the function forget to return it?")
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {_describe(value)}.") from None
    want = np.shape(like)
    if array.shape != want and not (array.size == 1 == int(np.prod(want))):
        raise ValueError(_shape_detail(name, array.shape, want))
    return [(name, array.reshape(want))]


def _describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"


def _close(a: list[tuple[str, np.ndarray]], b: list[tuple[str, np.ndarray]],
           rtol: float, atol: float) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and np.allclose(x, y, rtol=rtol, atol=atol)
        for (_, x), (_, y) in zip(a, b, strict=True)
    )


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else "(no message)"
