"""Feedback that teaches: name the most likely mistake behind a wrong answer.

A check computes, from the same inputs it gives the student's function, the correct answer and
the answer of every known wrong variant (the mistake table of the exercise: a dict from a tag
of :data:`MISTAKES` to a function with the student's signature). When the student's answer is
wrong, :func:`diagnose` looks for the variant it equals and raises an ``AssertionError`` whose
first line is a stable tag that the instructor pipeline can count::

    [mistake: S' missing] the hidden deltas (eq. 5.11 of 001_ce18104b0c2237dd.txt): ...

No message ever contains an array value, the expected answer included: it names the mistake
and the chapter to read again. Shapes, which the visible tests state anyway, may appear.

**Tolerance follows the dtype.** A result is compared with the reference to the precision of
the dtype it carries (:data:`RELATIVE_TOLERANCE`): a float32 result is held to float32 precision
and passes when it is right to float32 rounding; a float64 result is held to float64 precision.

**The student sees the message.** In IPython (JupyterLab, ``nbgrader validate``), a failed check
shows the message alone: no line of this package's source (:func:`show_feedback`). Where the
student's own function raised, its traceback (the student's frames) comes first.
"""

from __future__ import annotations

import gc
import re
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from course_pkg.checks import site
from course_pkg.checks.guard import ReferenceUsedError, answer_functions, forbid

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
    "diverged": "training diverged: the weights or the loss became NaN or inf. The step is too "
                "large (try a learning rate ten times smaller), or a sign is wrong, so that "
                "each step goes up the gradient instead of down.",
    "earlier helper": "a function that this one builds on gives a wrong answer on the same "
                      "inputs: fix that one first, then check this one again.",
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

RELATIVE_TOLERANCE: dict[str, float] = {"float16": 1e-2, "float32": 1e-4, "float64": 1e-10}
"""Relative tolerance by the dtype of the student's result, of each entry and of the result's
largest entry (so that an entry that cancels to about 0 is judged on the result's scale). Far
above the rounding of a few dozen operations in that dtype (eps is 1e-3, 1e-7 and 2e-16), far
below any mistake of the tables. Integers, and anything wider than float64, count as float64."""

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
        paragraphs = [f"In {exercise.title}{exercise.citation()}, {MISTAKES[tag]}",
                      detail[:1].upper() + detail[1:]]
        if tag == "unknown" and exercise.hint:
            paragraphs.append(f"Hint: {exercise.hint}")
        paragraphs.append(f"Read again: {exercise.chapter}.")
        lines = [f"[mistake: {tag}]"]
        lines += [line for text in paragraphs if text for line in textwrap.wrap(
            text, WIDTH, break_long_words=False, break_on_hyphens=False)]
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
    trains
        The result comes out of a training loop: NaN or inf in it means that training
        diverged (tag ``diverged``), not a wrong shape or formula.
    notebook_equation
        The number of the exercise's equation in the problem set's notebook, as JupyterLab
        numbers its display equations: (1), (2), ... (0: none).
    equation
        The label of the same equation in the book (e.g. ``mf-delta``), cited with the
        website's number and link (:mod:`course_pkg.checks.site`).
    earlier
        ``earlier(student, args)`` -> a :class:`Feedback` (tag ``earlier helper``) naming the
        first of the student's own helpers that is wrong on the inputs this case gives them,
        or None. Asked when the student's function fails a case, so that the message points
        at the helper to fix first.
    """

    title: str
    chapter: str
    correct: Callable[..., Any]
    mistakes: Mapping[str, Callable[..., Any]]
    cases: Callable[[np.random.Generator, bool], list[tuple]]
    hint: str = ""
    forbidden: tuple[Callable[..., Any], ...] = field(default=())
    returns: tuple[str, ...] = ()
    trains: bool = False
    notebook_equation: int = 0
    equation: str = ""
    earlier: Callable[[Callable[..., Any], tuple], Feedback | None] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.mistakes) - set(MISTAKES)
        if unknown:
            raise ValueError(f"mistake tags {sorted(unknown)} are not in MISTAKES")

    def citation(self) -> str:
        """" (eq. (4) in this notebook; (4.3) in chapter 4 on the course site, <link>)", or ""."""
        parts = [f"eq. ({self.notebook_equation}) in this notebook"] if self.notebook_equation \
            else []
        if self.equation:
            parts.append(site.cite_equation(self.equation))
        return f" ({'; '.join(parts)})" if parts else ""

    def check(self, student: Callable[..., Any], seed: int | None = None,
              second: Mapping[str, Callable[..., Any]] | None = None) -> None:
        """Run ``student`` on this exercise's cases and raise :class:`Feedback` if it is wrong.

        ``seed=None`` gives the small fixed cases of the visible tests; an integer seed gives
        the random sizes and values of the hidden tests. ``second`` holds other forms of the
        known mistakes, tried where none of :attr:`mistakes` matches the answer.
        """
        __tracebackhide__ = True  # IPython and pytest show the student's frames only
        rng = np.random.default_rng(0 if seed is None else seed)
        for args in self.cases(rng, seed is not None):
            try:
                answer = call(student, args, self)
                expected = self.correct(*args)
                try:
                    diagnose(answer, expected, variants(self.mistakes, args), self)
                except Feedback as first:
                    if not second or first.tag != "unknown":
                        raise
                    diagnose(answer, expected, variants(second, args), self)
                    raise
            except Feedback as err:
                first = None
                if self.earlier is not None and err.tag not in ("not implemented",
                                                                "used course_pkg"):
                    first = self.earlier(student, args)
                if first is None:
                    raise
                raise first from None


def call(student: Callable[..., Any], args: Iterable[Any], exercise: Exercise) -> Any:
    """``student(*args)`` on copies of the arguments, with the reference implementation off.

    At grading, ``student`` is the grader's handle on a function in the sandbox (it says
    ``in_sandbox``): the function gets its own copies over the wire and can reach only the
    sandbox's course_pkg, whose answers are withheld (a call to one comes back as
    ``used course_pkg``), so nothing here needs copying or switching off.

    Any exception becomes :class:`Feedback` with tag ``not implemented``, ``used course_pkg``
    or ``error`` (the type and message of the exception, which are the student's own).
    """
    __tracebackhide__ = True
    if not callable(student):
        raise Feedback("error", exercise, f"expected a function, got {type(student).__name__}.")
    remote = getattr(student, "in_sandbox", False) is True
    try:
        if remote:  # runs on copies sent over the wire, with only the sandbox's course_pkg
            return student(*args)
        with forbid(*exercise.forbidden, *answer_functions()):
            return student(*[_copy(a) for a in args])
    except NotImplementedError:
        raise Feedback("not implemented", exercise) from None
    except ReferenceUsedError as err:
        raise Feedback("used course_pkg", exercise, f"It called {err}.") from None
    except Exception as err:  # the student's own error: keep its traceback, which shows where
        if hasattr(err, "ename"):  # raised in the grading sandbox, and named there
            raise Feedback("error", exercise, f"{err}") from None
        raise Feedback("error", exercise, f"{type(err).__name__}: {_first_line(err)}") from err


def own_helpers(student: Callable[..., Any], names: Iterable[str]) -> dict[str, Callable]:
    """The student's functions called ``names``.

    In the student's notebook they come from the namespace ``student`` was defined in: only
    plain functions, so that nothing else of the kernel is run. At grading, ``student`` is the
    grader's handle on a function in the sandbox
    (:class:`~course_pkg.grading.trusted.RemoteFunction`): its ``helper(name)`` gives the
    handle on the student's function ``name`` there (answer names only), or None.
    """
    namespace = getattr(student, "__globals__", None)
    if isinstance(namespace, dict):
        return {name: namespace[name] for name in names
                if callable(namespace.get(name)) and hasattr(namespace[name], "__code__")}
    remote = getattr(student, "helper", None)
    if not callable(remote):
        return {}
    found = {name: remote(name) for name in names}
    return {name: helper for name, helper in found.items() if helper is not None}


def first_wrong_helper(student: Callable[..., Any], owner: Exercise,
                       steps: Iterable[tuple[Exercise, str, tuple]]) -> Feedback | None:
    """Run the student's own helpers on the inputs that ``owner``'s case gives them.

    ``steps`` lists, in the order the algorithm uses them, (the helper's exercise, the
    helper's name in the notebook, its arguments computed from the reference). The first
    helper whose answer is wrong becomes a :class:`Feedback` on ``owner`` with tag
    ``earlier helper``; None if every helper the student defined agrees.
    """
    __tracebackhide__ = True
    steps = list(steps)
    helpers = own_helpers(student, [name for _, name, _ in steps])
    for exercise, name, args in steps:
        helper = helpers.get(name)
        if helper is None:
            continue
        try:
            answer = call(helper, args, exercise)
            diagnose(answer, exercise.correct(*args), variants(exercise.mistakes, args),
                     exercise)
        except Feedback as err:
            if err.tag == "not implemented":
                detail = f"Your {name} is not written yet."
            else:
                detail = (f"Your {name} gives a wrong answer on the values this check's "
                          f"network hands it (its own check says '{err.tag}': "
                          f"{MISTAKES[err.tag]}) Run its test cell above.")
            return Feedback("earlier helper", owner, detail)
    return None


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Run the body with every object alive before it out of the garbage collector's sight
    (:func:`gc.freeze`), and give them back after.

    A call that allocates may set off a full collection, and a full collection walks every
    object of the process: in a test process that has lived through a long suite, or a kernel
    that has run a whole notebook, that is tenths of a second which the call itself did not
    cost. Frozen, the objects that were already there are not walked, so a timed call is
    charged for its own objects only, wherever it runs.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def clocked(student: Callable[..., Any], args: Iterable[Any], exercise: Exercise,
            fallback: Callable[[], float]) -> tuple[Any, float]:
    """:func:`call` and the seconds it took: on the student's function's own ``clock`` where it
    has one (the grader's handle on a function in the sandbox counts the sandbox's CPU time,
    which a busy neighbour cannot inflate), else on ``fallback``. The heap that was alive
    before the call is frozen while it runs (:func:`heap_frozen`); the grader's kernel freezes
    its own heap for a call in the sandbox."""
    __tracebackhide__ = True
    clock = getattr(student, "clock", fallback)
    with heap_frozen():
        start = clock()
        answer = call(student, args, exercise)
        spent = clock() - start
    return answer, spent


def timed(student: Callable[..., Any], args: Iterable[Any], exercise: Exercise,
          limit_s: float) -> Any:
    """:func:`call`, failing with ``too slow`` if it takes more than ``limit_s`` seconds.

    The seconds are the student's function's own ``clock`` where it has one (the grader's
    handle on a function in the sandbox counts the sandbox's CPU time, which a busy neighbour
    cannot inflate), else wall-clock time.
    """
    __tracebackhide__ = True
    answer, elapsed = clocked(student, args, exercise, time.perf_counter)
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


def tolerance(dtype: Any) -> float:
    """The relative tolerance for a result of ``dtype`` (:data:`RELATIVE_TOLERANCE`)."""
    dt = np.dtype(dtype)
    if dt.kind != "f" or dt.itemsize > 8:
        return RELATIVE_TOLERANCE["float64"]
    return RELATIVE_TOLERANCE.get(dt.name, RELATIVE_TOLERANCE["float64"])


def diagnose(answer: Any, expected: Any, wrong: Mapping[str, Any], exercise: Exercise,
             rtol: float | None = None) -> None:
    """Return if ``answer`` equals ``expected``; else raise :class:`Feedback` naming the mistake.

    ``wrong`` maps tags to the answers of the known wrong variants. A variant counts only if
    it differs from the right answer on this case. Each part of the answer is compared to the
    precision of its own dtype (:func:`tolerance`) unless ``rtol`` is given. The message never
    shows an array.
    """
    __tracebackhide__ = True
    names = exercise.returns
    expected_parts = _parts(expected, names=names)
    try:
        parts = _parts_like(answer, expected, names=names)
    except ValueError as err:
        raise Feedback("shape", exercise, str(err)) from None
    rtols = [tolerance(got.dtype) if rtol is None else rtol for _, got in parts]
    if _close(parts, expected_parts, rtols):
        return
    not_finite = [name for name, got in parts if not np.all(np.isfinite(got))]
    if exercise.trains and not_finite:
        raise Feedback("diverged", exercise, f"See {', '.join(not_finite)}.")
    for tag, value in wrong.items():
        try:
            variant = _parts_like(value, expected, names=names)
        except ValueError:
            continue
        if _close(parts, variant, rtols) and not _close(variant, expected_parts, rtols):
            raise Feedback(tag, exercise)
    for (name, got), (_, want) in zip(parts, expected_parts, strict=True):
        if got.shape != want.shape:
            raise Feedback("shape", exercise, _shape_detail(name, got.shape, want.shape))
    if not_finite:
        raise Feedback("not finite", exercise, f"See {not_finite[0]}.")
    wrong_names = [name for (name, got), (_, want), r in zip(parts, expected_parts, rtols,
                                                              strict=True)
                   if not _agree(got, want, r)]
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
        array = np.asarray(value)
        if array.dtype.kind != "f":
            array = array.astype(float)
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


def _agree(got: np.ndarray, want: np.ndarray, rtol: float) -> bool:
    """Entry by entry within ``rtol`` of ``want``, or of ``want``'s largest entry."""
    if got.shape != want.shape:
        return False
    want = np.asarray(want, dtype=float)
    finite = want[np.isfinite(want)]
    scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    with np.errstate(all="ignore"):
        return bool(np.allclose(np.asarray(got, dtype=float), want, rtol=rtol,
                                atol=rtol * (scale or 1.0)))


def _close(a: list[tuple[str, np.ndarray]], b: list[tuple[str, np.ndarray]],
           rtols: list[float]) -> bool:
    return len(a) == len(b) == len(rtols) and all(
        _agree(x, y, r) for (_, x), (_, y), r in zip(a, b, rtols, strict=True))


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


def show_feedback(shell: Any, etype: type, value: BaseException, tb: Any,
                  tb_offset: int | None = None) -> list[str]:
    """IPython's handler of :class:`Feedback`: the message, without this package's source.

    If the student's own function raised, IPython's traceback of that error (the student's
    frames; this package's are hidden) comes first. Returns the lines shown.
    """
    lines: list[str] = []
    cause = value.__cause__
    if cause is not None and cause.__traceback__ is not None:
        lines += shell.InteractiveTB.structured_traceback(type(cause), cause, cause.__traceback__)
        lines.append("")
    lines.append(f"{etype.__name__}: {value}")
    shell._showtraceback(etype, value, lines)
    return lines


def _show_in_ipython() -> None:
    """Register :func:`show_feedback` with the running IPython, if any, unless the kernel
    already has a handler of its own."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return
    if tuple(shell.custom_exceptions) in ((), (Feedback,)):
        shell.set_custom_exc((Feedback,), show_feedback)


_show_in_ipython()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else "(no message)"
