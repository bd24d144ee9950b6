"""Grades in the format Canvas imports: fill the assignment columns of its gradebook export.

Canvas exports a gradebook as CSV: the columns ``Student``, ``ID``, ``SIS User ID``,
``SIS Login ID``, ``Section``, then one column per assignment (named ``<name> (<id>)``), then
totals that Canvas computes itself; the first row under the header is ``Points Possible``.
:func:`fill_roster` writes that same file back with the course's scores filled in, matching
nbgrader's student ids against the roster column ``match`` (``SIS Login ID`` by default).
With ``match="ID"`` each student is matched by the Canvas user id that ``course collect``
recorded from Canvas's download (the gradebook's ``lms_user_id``), which is what a Canvas round
trip needs: students collected from Canvas's zip have ids made from their names. Canvas's
columns and row order are kept; an assignment without a column gets a new one, with its points
possible. Nothing is dropped silently: the result lists the students graded here who have no
roster row and the roster rows with no submission. Scores and statuses come from the gradebook
(:func:`course_pkg.grading.pipeline.outcomes`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from course_pkg.grading.course import Course
from course_pkg.grading.pipeline import outcomes

POINTS_POSSIBLE = "Points Possible"
IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


@dataclass
class CanvasExport:
    """What :func:`fill_roster` did."""

    filled: int = 0
    added_columns: list[str] = field(default_factory=list)
    not_in_roster: list[str] = field(default_factory=list)
    no_submission: dict[str, list[str]] = field(default_factory=dict)
    not_graded: dict[str, list[str]] = field(default_factory=dict)


def _column(header: list[str], assignment: str) -> int | None:
    for index, name in enumerate(header):
        if name == assignment or name.startswith(f"{assignment} ("):
            return index
    return None


def read_roster(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a Canvas gradebook export (a clear error if it is not one)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or "Student" not in rows[0]:
        raise ValueError(f"{path} is not a Canvas gradebook export: its first row should name "
                         f"the columns {', '.join(IDENTITY)}, ...")
    width = len(rows[0])
    return rows[0], [row + [""] * (width - len(row)) for row in rows[1:]]


def roster_keys(course: Course, match: str) -> dict[str, str]:
    """Each student id -> the value of the roster column ``match`` that identifies them.

    ``ID`` is the Canvas user id recorded by ``course collect`` (students without one are
    absent); any other column is matched against the student id itself.
    """
    from nbgrader.api import Gradebook

    if not course.gradebook.exists():
        return {}
    with Gradebook(course.db_url) as gb:
        if match == "ID":
            return {s.id: str(s.lms_user_id) for s in gb.students if s.lms_user_id}
        return {s.id: s.id for s in gb.students}


def fill_roster(course: Course, assignments: list[str], roster: Path, target: Path,
                match: str = "SIS Login ID") -> CanvasExport:
    """Write ``roster`` to ``target`` with the scores of ``assignments`` filled in.

    A student who was not graded (see ``course report``) gets an empty cell, which Canvas
    leaves unchanged, and is listed in :attr:`CanvasExport.not_graded`.
    """
    header, rows = read_roster(roster)
    if match not in header:
        raise ValueError(f"the roster has no column {match!r} to match student ids against "
                         f"(its columns: {', '.join(header[:8])}, ...)")
    key = header.index(match)
    points_row = next((r for r in rows if r[0].strip() == POINTS_POSSIBLE), None)
    students = [r for r in rows if r[0].strip() != POINTS_POSSIBLE and r[key].strip()]
    result = CanvasExport()
    seen: set[str] = set()
    keys = roster_keys(course, match)
    for assignment in assignments:
        records = {o.student: o for o in outcomes(course, assignment)}
        if not records:
            continue
        column = _column(header, assignment)
        if column is None:
            header.append(assignment)
            column = len(header) - 1
            result.added_columns.append(assignment)
            for row in rows:
                row.append("")
        if points_row is not None:
            points_row[column] = f"{next(iter(records.values())).max_score:g}"
        by_id = {row[key].strip(): row for row in students}
        matched: set[str] = set()
        for student, outcome in records.items():
            row = by_id.get(keys.get(student, student if match != "ID" else ""))
            if row is None:
                if student not in seen:
                    result.not_in_roster.append(student)
                continue
            matched.add(row[key].strip())
            if outcome.status == "graded":
                row[column] = f"{outcome.score:g}"
                result.filled += 1
            else:
                row[column] = ""
                result.not_graded.setdefault(assignment, []).append(student)
        seen |= set(records)
        missing = sorted(set(by_id) - matched)
        if missing:
            result.no_submission[assignment] = missing
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    result.not_in_roster = sorted(set(result.not_in_roster))
    return result
