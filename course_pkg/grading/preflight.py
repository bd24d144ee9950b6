"""Pre-flight: read a submission before any of it runs, and decide what will be graded.

nbgrader restores the instructor's cells by itself (``OverwriteCells``: edited or re-typed test
cells get the released source and type back; ``DeduplicateIds`` keeps one copy of a duplicated
cell; ``add_missing_cells`` re-inserts deleted test cells). What it does not do, and what this
module does, is:

* refuse, with a reason, a file that is not a notebook (corrupted or truncated JSON, a broken
  schema, a file over the size limit) or a notebook of another assignment ("this is ps2's
  notebook, not ps3's": its cells are another assignment's, even where the two share a few
  cell names), so that the report can say "not graded: <reason>" instead of a silent 0 or
  nbgrader's KeyError;
* strip nbgrader metadata that names cells the assignment does not have (a forged test cell);
* copy only the assignment's notebooks to the folder that will be graded (a ``numpy.py``
  shipped next to the notebook would shadow NumPy in the kernel), reading only regular files
  under the size cap and never following a link that the submission made;
* say, in one line each, what was restored or flagged, so that the report can tell the student.

The outcome is a :class:`Preflight`: the sanitised notebooks to grade, or the reason not to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from course_pkg.grading.untrusted import UnsafeFile, one_line, read_regular, regular_files

HIDDEN_TESTS = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[^\n]*\n?",
                          re.DOTALL | re.MULTILINE)
@dataclass
class Preflight:
    """What pre-flight decided for one submission.

    ``reason`` is None when the submission will be graded; then ``notebooks`` maps each
    notebook name to its sanitised content and ``notes`` lists what was restored or flagged.
    """

    reason: str | None = None
    notebooks: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def gradable(self) -> bool:
        return self.reason is None


def assignment_spec(gradebook_url: str, assignment: str) -> dict[str, Any]:
    """The cells of every notebook of ``assignment``, read from the gradebook.

    Returns ``{notebook: {"cells": {grade_id: {...}}, "order": [grade_id, ...]}}`` where each
    cell records its source, type, whether it is locked, a grade (with ``points``) or a solution.
    """
    from nbgrader.api import Gradebook, MissingEntry

    spec: dict[str, Any] = {}
    with Gradebook(gradebook_url) as gb:
        try:
            record = gb.find_assignment(assignment)
        except MissingEntry:
            raise ValueError(f"assignment {assignment!r} is not in the gradebook: release it "
                             f"first (course release {assignment})") from None
        for notebook in record.notebooks:
            grades = {c.name: c.max_score for c in notebook.grade_cells}
            solutions = {c.name for c in notebook.solution_cells}
            cells = {
                c.name: {"source": c.source, "released": without_hidden_tests(c.source),
                         "cell_type": c.cell_type, "locked": c.locked, "checksum": c.checksum,
                         "grade": c.name in grades, "points": grades.get(c.name, 0.0),
                         "solution": c.name in solutions}
                for c in notebook.source_cells
            }
            spec[notebook.name] = {"cells": cells, "order": [c.name for c in notebook.source_cells]}
    return spec


def assignment_record(gradebook_url: str, assignment: str) -> dict[str, Any]:
    """The assignment's due date (ISO text or None) and the course id, from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url) as gb:
        record = gb.find_assignment(assignment)
        return {"duedate": record.duedate.isoformat() if record.duedate else None,
                "course_id": record.course_id}


def cell_ids_by_assignment(source: Path) -> dict[str, set[str]]:
    """The nbgrader cell ids (``grade_id``) of every assignment under ``source/``.

    Read from the instructor's own source notebooks, which pre-flight compares a submission
    with to tell which assignment it belongs to.
    """
    found: dict[str, set[str]] = {}
    if not source.is_dir():
        return found
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        ids: set[str] = set()
        for path in folder.glob("*.ipynb"):
            try:
                cells = json.loads(path.read_text()).get("cells", [])
            except (OSError, ValueError):
                continue
            ids |= {i for i in map(_grade_id, cells) if i}
        found[folder.name] = ids
    return found


def _other_assignment(notebook: Any, name: str, spec: dict[str, Any],
                      others: dict[str, set[str]]) -> str | None:
    """The assignment that ``notebook``'s cells belong to, if not this one (else None)."""
    ids = {i for i in map(_grade_id, notebook.cells) if i}
    mine = ids & set(spec["cells"])
    if not ids - mine:
        return None
    best, overlap = None, len(mine)
    for assignment, theirs in sorted(others.items()):
        if len(ids & theirs) > overlap and len(ids & theirs) > len(ids - theirs):
            best, overlap = assignment, len(ids & theirs)
    return best


def without_hidden_tests(source: str) -> str:
    """The source as released: nbgrader's ``ClearHiddenTests`` drops the hidden-test blocks."""
    return HIDDEN_TESTS.sub("", source)


def check_submission(folder: Path, spec: dict[str, Any], max_bytes: int,
                     others: dict[str, set[str]] | None = None,
                     assignment: str = "") -> Preflight:
    """Read every notebook the assignment expects from ``folder``; see the module docstring.

    ``others`` maps the course's other assignments to their cell ids
    (:func:`cell_ids_by_assignment`), to name the assignment a wrong notebook belongs to.
    """
    result = Preflight()
    try:
        present, links = regular_files(folder)
    except UnsafeFile as err:
        result.reason = str(err)
        return result
    expected = [f"{name}.ipynb" for name in spec]
    if links:
        result.notes.append(f"ignored what is not a regular file (links, folders): "
                            f"{', '.join(one_line(n, 60) for n in links[:8])}")
    extra = [one_line(name, 60) for name in present
             if name not in expected and name != "timestamp.txt"]
    if not any(name in present for name in expected):
        found = ", ".join(one_line(n, 60) for n in (present + links)[:8]) or "nothing"
        result.reason = (f"no notebook named {' or '.join(expected)} in the submission "
                         f"(found: {found})")
        return result
    if extra:
        result.notes.append(f"ignored files that are not part of the assignment: "
                            f"{', '.join(extra)}")
    for name, notebook_spec in spec.items():
        path = folder / f"{name}.ipynb"
        if f"{name}.ipynb" not in present:
            result.notes.append(f"{name}.ipynb is missing: its exercises score 0")
            continue
        notebook, reason = _read_notebook(path, max_bytes)
        if reason is None and others:
            reason = _wrong_assignment(notebook, name, notebook_spec, others, assignment)
        if reason is None:
            reason = _check_cells(notebook, notebook_spec, name, result.notes)
        if reason is not None:
            result.reason = reason
            result.notebooks.clear()
            return result
        # No notebook-level metadata of the student's reaches nbgrader or a page (widget
        # state, for one, would load scripts): only what names the kernel and the language.
        notebook.metadata = nbformat.from_dict({k: v for k, v in notebook.metadata.items()
                                                if k in ("kernelspec", "language_info")})
        result.notebooks[name] = notebook
    return result


def _wrong_assignment(notebook: Any, name: str, spec: dict[str, Any],
                      others: dict[str, set[str]], assignment: str) -> str | None:
    other = _other_assignment(notebook, assignment, spec, others)
    if other is None:
        return None
    this = assignment or "this assignment"
    graded = {g for g, c in spec["cells"].items() if c["grade"] or c["solution"]}
    shared = graded & {i for i in map(_grade_id, notebook.cells) if i}
    tail = ("it has none of the assignment's cells" if not shared else
            f"it shares only {', '.join(sorted(shared))} with {this}")
    return (f"{name}.ipynb is {other}'s notebook, not {this}'s: its cells are {other}'s "
            f"({tail}); was the wrong file handed in?")


def _read_notebook(path: Path, max_bytes: int) -> tuple[Any, str | None]:
    try:
        raw = read_regular(path, max_bytes)
    except UnsafeFile as err:
        return None, f"{err} (the limit for a notebook file)"
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        return None, f"corrupted notebook {path.name}: not UTF-8 text ({err.reason})"
    except json.JSONDecodeError as err:
        return None, (f"corrupted notebook {path.name}: invalid JSON ({err.msg} at line "
                      f"{err.lineno}, column {err.colno}); was it truncated or edited "
                      f"outside Jupyter?")
    except (RecursionError, ValueError) as err:  # nested too deeply, a 5000-digit number...
        return None, (f"corrupted notebook {path.name}: JSON that no notebook holds "
                      f"({type(err).__name__}: {str(err)[:80]})")
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None, f"corrupted notebook {path.name}: the JSON is not a notebook (no cell list)"
    try:
        notebook = nbformat.reads(json.dumps(data), as_version=4)
        nbformat.validate(notebook)
    except (Exception, RecursionError) as err:  # noqa: BLE001 - nbformat raises several kinds
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return None, f"corrupted notebook {path.name}: not a valid notebook ({first[:120]})"
    return notebook, None


def _grade_id(cell: Any) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
    return grade_id if isinstance(grade_id, str) else None


def _check_cells(notebook: Any, spec: dict[str, Any], name: str, notes: list[str]) -> str | None:
    cells = spec["cells"]
    seen: dict[str, int] = {}
    foreign: list[str] = []
    for cell in notebook.cells:
        cell.pop("outputs", None) if cell.cell_type != "code" else cell.update(outputs=[])
        grade_id = _grade_id(cell)
        if grade_id is None:
            if "nbgrader" in cell.metadata:  # malformed nbgrader metadata: a plain cell
                cell.metadata.pop("nbgrader")
            continue
        if grade_id not in cells:
            foreign.append(grade_id)
            cell.metadata.pop("nbgrader")
            continue
        seen[grade_id] = seen.get(grade_id, 0) + 1
    answers_and_tests = {g for g, c in cells.items() if c["grade"] or c["solution"]}
    if not seen or not answers_and_tests & set(seen):
        which = f" (it has cells {', '.join(sorted(foreign)[:4])})" if foreign else ""
        return (f"{name}.ipynb has none of the assignment's cells{which}: a notebook from "
                f"another assignment, or not the released notebook")
    if foreign:
        notes.append(f"{name}: ignored cells that are not in the assignment: "
                     f"{', '.join(sorted(foreign))}")
    for grade_id, count in seen.items():
        if count > 1:
            # nbgrader 0.9 crashes on duplicates (DeduplicateIds leaves an empty nbgrader
            # dict that add_missing_cells cannot read): keep the last copy, as it would.
            copies = [c for c in notebook.cells if _grade_id(c) == grade_id]
            for cell in copies[:-1]:
                cell.metadata.pop("nbgrader")
            notes.append(f"{name}: cell {grade_id} appears {count} times: the last copy is "
                         f"graded, the others run as plain cells")
    for grade_id, info in cells.items():
        what = "test cell" if info["grade"] and not info["solution"] else "cell"
        if grade_id not in seen:
            if info["solution"]:
                notes.append(f"{name}: answer cell {grade_id} was deleted: it scores 0")
            elif info["grade"]:
                notes.append(f"{name}: {what} {grade_id} was deleted: restored from the release")
            continue
        if info["locked"]:
            _compare_locked(notebook, grade_id, info, name, what, notes)
    return None


def _compare_locked(notebook: Any, grade_id: str, info: dict[str, Any], name: str, what: str,
                    notes: list[str]) -> None:
    copies = [c for c in notebook.cells if _grade_id(c) == grade_id]
    cell = copies[-1]
    if cell.cell_type != info["cell_type"]:
        notes.append(f"{name}: {what} {grade_id} was changed to {cell.cell_type}: restored as "
                     f"{info['cell_type']}")
    elif _normalise(cell.source) not in (_normalise(info["source"]),
                                         _normalise(info["released"])):
        notes.append(f"{name}: {what} {grade_id} was edited: the released version is run instead")


def _normalise(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())
