"""The nbgrader course directory and its gradebook, as the pipeline uses them.

:class:`Course` names the folders of an nbgrader course directory; :func:`read_submission` and
:func:`write_submission` copy one student's autograded scores from one gradebook to another
(from a worker's private copy to the instructor's), which is how parallel workers share one
gradebook without ever writing the same SQLite file at the same time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import unicodedata
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""A student id: what nbgrader, a file name and a report line can all carry (fullmatch)."""

LETTERS = {"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE",
           "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "TH",
           "ı": "i", "ŀ": "l", "ĸ": "k"}
"""Latin letters that Unicode does not decompose into an ASCII letter and a mark."""
MAX_ID = 64


def student_id(name: str) -> str:
    """A valid student id (:data:`STUDENT_ID`) for any display name; never empty.

    A name that already is a valid id is kept as it is. Any other is transliterated (accents
    dropped: ``José Müller`` gives ``jose-muller``), lower-cased, and every run of other
    characters becomes one ``-``; a letter with no Latin spelling is written by its code point
    (``王`` gives ``u738b``). A name with nothing to keep gives ``student-`` and a short hash of
    the name, so two such names never share an id.
    """
    text = str(name)
    if STUDENT_ID.fullmatch(text) and len(text) <= MAX_ID:
        return text
    parts = []
    for char in unicodedata.normalize("NFKD", "".join(LETTERS.get(c, c) for c in text)):
        if unicodedata.combining(char):
            continue
        if char.isascii() and (char.isalnum() or char in "._"):
            parts.append(char.lower())
        elif char.isalnum():
            parts.append(f"-u{ord(char):04x}-")
        else:
            parts.append("-")
    slug = re.sub(r"-{2,}", "-", "".join(parts))
    slug = re.sub(r"^[^a-z0-9]+", "", slug)[:MAX_ID].rstrip("-._")
    if not slug:
        slug = "student-" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:8]
    return slug


@dataclass(frozen=True)
class Course:
    """An nbgrader course directory (``nbgrader_config.py``, ``source/``, ``gradebook.db``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @property
    def gradebook(self) -> Path:
        return self.root / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.gradebook}"

    def folder(self, kind: str, assignment: str, student: str | None = None) -> Path:
        """``source/ps1``, ``release/ps1``, ``submitted/alice/ps1``, ``autograded/alice/ps1``..."""
        if kind in ("source", "release"):
            return self.root / kind / assignment
        if student is None:
            raise ValueError(f"the {kind} folder of {assignment} needs a student id")
        return self.root / kind / student / assignment

    def students(self, assignment: str) -> list[str]:
        """Students with a folder for ``assignment`` under ``submitted/``, sorted.

        Only real folders (not links) whose name is a valid student id (:data:`STUDENT_ID`)
        count; :meth:`invalid_folders` names the others.
        """
        return [name for name in self._folders(assignment) if STUDENT_ID.fullmatch(name)]

    def invalid_folders(self, assignment: str) -> list[str]:
        """Folders of ``submitted/`` with ``assignment`` whose name is not a student id."""
        return [name for name in self._folders(assignment) if not STUDENT_ID.fullmatch(name)]

    def _folders(self, assignment: str) -> list[str]:
        submitted = self.root / "submitted"
        if not submitted.is_dir():
            return []
        return sorted(p.name for p in submitted.iterdir()
                      if not p.is_symlink() and (p / assignment).is_dir())

    def assignments(self) -> list[str]:
        """Assignments with a folder under ``source/``, sorted."""
        source = self.root / "source"
        return sorted(p.name for p in source.iterdir() if p.is_dir()) if source.is_dir() else []


def ensure_tools_on_path() -> None:
    """nbgrader runs ``alembic`` and starts kernels from PATH: put this Python's bin first."""
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def load_config(root: Path) -> Any:
    """The course's ``nbgrader_config.py`` (if any) as a traitlets Config, rooted at ``root``."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    if (root / "nbgrader_config.py").exists():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config())
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    return config


def nbgrader_api(course: Course, **overrides: Any) -> Any:
    """nbgrader's own Python API on ``course`` (what ``nbgrader <command>`` runs)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    ensure_tools_on_path()
    config = load_config(course.root)
    for section, values in overrides.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def alembic_version(gradebook: Path) -> str | None:
    """The schema version (alembic's) recorded in the gradebook file, or None.

    nbgrader stamps a new gradebook with it by running the ``alembic`` command in a new
    process (a second or two); a grading process that knows it creates its private gradebook
    without that (:func:`course_pkg.grading.cluster.grade_task`).
    """
    import sqlite3

    if not Path(gradebook).is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{gradebook}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row and re.fullmatch(r"[0-9a-f]{6,32}", str(row[0])) else None


def read_submission(db_url: str, assignment: str, student: str) -> dict[str, Any]:
    """The autograded scores and comments of one submission, as plain JSON-able data."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        submission = gb.find_submission(assignment, student)
        notebooks = {}
        for notebook in submission.notebooks:
            notebooks[notebook.name] = {
                "flagged": bool(notebook.flagged),
                "late_submission_penalty": notebook.late_submission_penalty,
                "grades": {g.name: {"auto_score": g.auto_score,
                                    "needs_manual_grade": bool(g.needs_manual_grade)}
                           for g in notebook.grades},
                "comments": {c.name: c.auto_comment for c in notebook.comments},
            }
        stamp = submission.timestamp
        return {"timestamp": stamp.isoformat() if stamp else None, "notebooks": notebooks}


def write_submission(gb: Any, assignment: str, student: str, data: dict[str, Any]) -> float:
    """Record ``data`` (from :func:`read_submission`) in the open gradebook ``gb``.

    One :class:`nbgrader.api.Gradebook` serves a whole batch: its database engine keeps the
    statements it has compiled, which more than halves the time of recording a result.
    Manual scores already given by a grader are kept, as ``nbgrader autograde`` keeps them.
    An automatic score outside [0, points] (a tampered worker gradebook) is refused with a
    ValueError, and none of the submission's scores is stored (the pipeline then records it as
    not graded and forgets it). Returns the submission's total score.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's autoflush notices inside nbgrader
        try:
            _write(gb, assignment, student, data)
            gb.db.commit()
        except Exception:
            gb.db.rollback()
            raise
        return float(gb.find_submission(assignment, student).score)


def _write(gb: Any, assignment: str, student: str, data: dict[str, Any]) -> None:
    gb.update_or_create_student(student)
    stamp = data.get("timestamp")
    kwargs = {"timestamp": datetime.fromisoformat(stamp)} if stamp else {}
    submission = gb.update_or_create_submission(assignment, student, **kwargs)
    for notebook in submission.notebooks:
        record = data["notebooks"].get(notebook.name)
        if record is None:
            continue
        notebook.flagged = record["flagged"]
        for grade in notebook.grades:
            value = record["grades"].get(grade.name)
            if value is None:
                continue
            score = value["auto_score"]
            if score is not None and not 0 <= score <= grade.max_score:
                raise ValueError(f"score {score} of {grade.name} is outside [0, "
                                 f"{grade.max_score}]")
            grade.auto_score = score
            grade.needs_manual_grade = value["needs_manual_grade"] or (
                grade.manual_score is not None and score is None)
        for comment in notebook.comments:
            if comment.name in record["comments"]:
                comment.auto_comment = record["comments"][comment.name]


def forget_submission(gb: Any, assignment: str, student: str) -> None:
    """Remove a submission from the open gradebook ``gb`` (it scores 0), keeping the student."""
    from nbgrader.api import MissingEntry

    gb.update_or_create_student(student)
    try:
        gb.remove_submission(assignment, student)
    except MissingEntry:
        pass


def gradebook_students(db_url: str, assignment: str) -> list[str]:
    """Students who have a submission of ``assignment`` in the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        return sorted(s.student.id for s in gb.find_assignment(assignment).submissions)
