"""Switch course_pkg's reference functions off while a student's function runs.

An exercise that asks for the hidden deltas must not pass by calling
``course_pkg.network.back_propagate``. Inside :func:`forbid`, each listed function raises
:class:`ReferenceUsedError` when called. The function object itself is changed (its code is
swapped, then restored), so a name imported before the check, such as
``from course_pkg.network import back_propagate``, is switched off as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class ReferenceUsedError(RuntimeError):
    """A reference function of course_pkg was called where the student must write it."""


def _off(*args: Any, **kwargs: Any) -> Any:
    # Runs with the globals of the function it replaces, so it names builtins only.
    raise PermissionError("switched off by course_pkg.checks.guard")


@contextmanager
def forbid(*functions: Callable[..., Any]) -> Iterator[None]:
    """Within the block, calling any of ``functions`` raises :class:`ReferenceUsedError`."""
    saved = [(f, f.__code__) for f in functions]
    switched = {}
    try:
        for f, _ in saved:
            f.__code__ = _off.__code__.replace(co_name=f.__name__, co_filename=f.__module__)
            # Keyed by identity: two switched-off functions of the same name have equal code.
            switched[id(f.__code__)] = f"{f.__module__}.{f.__qualname__}"
        try:
            yield
        except PermissionError as err:
            name = _raised_by(err, switched)
            if name is None:
                raise
            raise ReferenceUsedError(name) from None
    finally:
        for f, code in saved:
            f.__code__ = code


def _raised_by(err: BaseException, switched: dict[int, str]) -> str | None:
    """The name of the switched-off function in whose frame ``err`` was raised, if any."""
    tb = err.__traceback__
    while tb is not None:
        name = switched.get(id(tb.tb_frame.f_code))
        if name is not None:
            return name
        tb = tb.tb_next
    return None


def backward_passes() -> tuple[Callable[..., Any], ...]:
    """course_pkg's matrix-form backward pass and its finite-difference oracle.

    Every exercise that asks for a gradient switches these off.
    """
    from course_pkg import gradcheck, network

    return (network.back_propagate, network.descend, network.Network._loss_and_gradients,
            network.Network.loss_and_gradients, network.Network.train_step,
            gradcheck.finite_difference_gradients, gradcheck.gradient_check)


def reference_functions() -> tuple[Callable[..., Any], ...]:
    """Every function of course_pkg that computes a derivative, an error signal or a step of
    gradient descent: what no exercise may call, and what the grading sandbox withholds from
    every assignment (besides the forward pass, the helpers stay)."""
    import importlib

    from course_pkg import (
        gradcheck,
        graph,
        identity_sigmoid,
        losses,
        node_delta,
        tanh_two_layer,
        workspace,
    )

    training = importlib.import_module("course_pkg.train")  # the package exports train()

    backward_ops = [getattr(cls, name) for cls in (workspace.ArrayOps, workspace.Workspace)
                    for name in ("output_delta", "error_below", "subtract_column_sum",
                                 "subtract_product", "_times_S_prime") if name in vars(cls)]
    return (*backward_passes(), *backward_ops, gradcheck.central_differences,
            graph.Graph.backward_trace, graph.Graph.error_signals, graph.Graph.gradient,
            graph.Graph.update, identity_sigmoid.dE_dw, identity_sigmoid.update,
            identity_sigmoid.train, losses.output_delta, losses.softmax_cross_entropy_delta,
            losses.half_squared_error_grad, losses.squared_error_grad,
            node_delta.error_signals, node_delta.update, tanh_two_layer.dE_dw1,
            tanh_two_layer.dE_dw2, tanh_two_layer.dE_dz, tanh_two_layer.gradients, training.train)


CHECKS_PACKAGE = "course_pkg.checks."
NOT_ANSWERS = ("course_pkg.checks.feedback", "course_pkg.checks.guard", "course_pkg.checks.site")


def answer_functions() -> tuple[Callable[..., Any], ...]:
    """The checks' own answers: every public function of a loaded assignment module of
    :mod:`course_pkg.checks` that is not a ``check_...`` function (the reference answers,
    their building blocks and the wrong variants' builders).

    The grading sandbox has only empty shells of those modules, so a student's function that
    delegates to one of these fails there; the checks switch them off in the student's own
    kernel too, so that local validation says so first. Closures are left out (their code
    cannot be swapped); each calls a module-level answer that is switched off.
    """
    import sys

    if _ANSWERS and _unchanged(sys.modules):
        return _ANSWERS[2]
    found: dict[int, Callable[..., Any]] = {}
    walked = []
    for name, module in list(sys.modules.items()):
        if not name.startswith(CHECKS_PACKAGE) or name in NOT_ANSWERS or module is None:
            continue
        names = dict(vars(module))  # a copy: a module may be importing meanwhile
        walked.append((name, module, names))
        for attr, value in names.items():
            if (callable(value) and hasattr(value, "__code__") and not value.__closure__
                    and getattr(value, "__module__", "") == name
                    and not attr.startswith(("check_", "_"))):
                found[id(value)] = value
    _ANSWERS[:] = [set(sys.modules), walked, tuple(found.values())]
    return _ANSWERS[2]


_ANSWERS: list[Any] = []
"""The last walk of :func:`answer_functions`: [the loaded modules' names, (name, module, its
names) of each checks module walked, the answers found]. The checks ask for the answers dozens
of times per grading, and the walk of every loaded module is most of the cost."""


def _unchanged(modules: dict[str, Any]) -> bool:
    """Whether the last walk still holds: the same modules loaded, and each checks module the
    same object holding the same objects under the same names."""
    if modules.keys() != _ANSWERS[0]:
        return False
    for name, module, names in _ANSWERS[1]:
        now = vars(module)
        if modules.get(name) is not module or len(now) != len(names) or any(
                names.get(attr, _ANSWERS) is not value for attr, value in list(now.items())):
            return False
    return True


def withheld(*functions: Callable[..., Any]) -> tuple[str, ...]:
    """``"module:qualname"`` of each function: the names the grading sandbox withholds."""
    return tuple(sorted({f"{f.__module__}:{f.__qualname__}" for f in functions}))
