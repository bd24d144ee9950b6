"""Grading helpers for the nbgrader assignments and the instructor pipeline.

Importing this package first puts a lazy stand-in for ``rfc3987_syntax`` in place (see
:func:`_defer_rfc3987_syntax`): every grading process (the ``course`` command, each Dask
worker) imports nbgrader, hence nbformat and ``jsonschema``, whose format checkers import
``rfc3987_syntax``, which builds its IRI grammar when imported: about 3 s of CPU per process, for
a check ("iri" formats) that grading never asks for.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

_DEFERRED = "rfc3987_syntax"


def _defer_rfc3987_syntax() -> None:
    """Let ``rfc3987_syntax`` load on its first use instead of at ``jsonschema``'s import.

    ``jsonschema`` takes ``is_valid_syntax`` from it (``from rfc3987_syntax import
    is_valid_syntax``) and calls it only when a schema's "iri" or "iri-reference" format is
    checked. The stand-in's ``is_valid_syntax``, and any other attribute read from it, import the
    real module then and hand over to it: the checks are the same, only later. (The import
    system's own questions, such as ``__path__``, are no use and load nothing.)
    """
    if _DEFERRED in sys.modules or importlib.util.find_spec(_DEFERRED) is None:
        return
    stand_in = types.ModuleType(_DEFERRED, "Loaded on first use (course_pkg.grading).")

    def real() -> types.ModuleType:
        module = sys.modules.get(_DEFERRED)
        if module is stand_in or module is None:
            sys.modules.pop(_DEFERRED, None)
            try:
                module = importlib.import_module(_DEFERRED)
            except BaseException:
                sys.modules[_DEFERRED] = stand_in
                raise
        return module

    def is_valid_syntax(*args: Any, **kwargs: Any) -> Any:
        return real().is_valid_syntax(*args, **kwargs)

    def __getattr__(name: str) -> Any:  # noqa: N807 - a module's attribute hook (PEP 562)
        if name.startswith("__") and name.endswith("__"):  # the import system's questions
            raise AttributeError(name)  # (``__path__``, ``__file__``): not a use
        return getattr(real(), name)

    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    stand_in.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[_DEFERRED] = stand_in


_defer_rfc3987_syntax()
