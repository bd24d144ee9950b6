"""Helpers shared by the tests of the problem sets' notebooks (``tests/test_ps5.py``,
``tests/test_ps6.py``): a notebook's answers run here, with a student's edits, and the mistake
tag that a check gives a function."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from course_pkg.checks.feedback import Feedback

SETUP_TAG = "course-setup"
"""The tag of the first cell (it installs course_pkg where it is missing): not run here."""


def cells(notebook: Path) -> list[dict]:
    """The cells of the notebook file ``notebook``."""
    return json.loads(Path(notebook).read_text())["cells"]


def student(notebook: Path, changes: dict[str, tuple[str, str]] | None = None,
            last: str | None = None) -> dict[str, Any]:
    """The namespace of ``notebook`` after its code cells that are not tests, each change
    (grade id -> (old, new)) applied to its cell's source as a student would type it.

    Parameters
    ----------
    notebook
        The source notebook (with its solutions).
    changes
        Grade id of an answer cell -> (text of the solution, the student's text instead).
    last
        Stop once this name is defined (the cells after the last answer are left out).
    """
    changes = changes or {}
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for cell in cells(notebook):
        meta = cell["metadata"].get("nbgrader", {})
        if (cell["cell_type"] != "code" or meta.get("grade")
                or SETUP_TAG in cell["metadata"].get("tags", [])):
            continue
        source = "".join(cell["source"])
        if meta.get("grade_id") in changes:
            old, new = changes[meta["grade_id"]]
            assert old in source, f"{old!r} is not in the cell {meta['grade_id']}"
            source = source.replace(old, new)
        exec(compile(source, f"<{meta.get('grade_id', 'cell')}>", "exec"), namespace)
        if last is not None and last in namespace:
            break
    return namespace


def tag_of(checks: ModuleType, check: str, function: Any, seed: int | None = None
           ) -> str | None:
    """The mistake tag that ``checks.<check>`` gives ``function`` (None: it passes)."""
    try:
        getattr(checks, check)(function, seed=seed)
    except Feedback as err:
        return err.tag
    return None
