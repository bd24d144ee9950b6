"""Collect: file a folder of downloaded submissions into nbgrader's ``submitted/`` layout.

A learning-management system gives back either one folder per student
(``downloads/alice/ps1.ipynb``) or flat files that start with the student's id
(``downloads/alice_ps1.ipynb``, ``downloads/alice-ps1 (1).ipynb``). Both become
``submitted/alice/ps1/ps1.ipynb`` with a ``timestamp.txt`` (the file's modification time, which
nbgrader uses for late penalties). A student's only notebook, when the assignment has one
notebook, is filed under that notebook's name even if the student renamed it.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from course_pkg.grading.course import STUDENT_ID, Course
from course_pkg.grading.untrusted import UnsafeFile, one_line, read_regular

MAX_BYTES = 50 * 2**20
"""A downloaded notebook larger than this is not collected."""



def release_notebooks(course: Course, assignment: str) -> list[str]:
    """Names (without ``.ipynb``) of the released notebooks of ``assignment``."""
    folder = course.folder("release", assignment)
    names = sorted(p.stem for p in folder.glob("*.ipynb"))
    if not names:
        raise ValueError(f"{folder} has no notebook: run `course release {assignment}` first")
    return names


def _flat_owner(path: Path, notebooks: list[str]) -> tuple[str, str] | None:
    """(student, notebook) for a flat file ``<student>[_-]<notebook>...ipynb``."""
    stem = path.stem
    for name in sorted(notebooks, key=len, reverse=True):
        found = re.match(rf"^(.+?)[_-]{re.escape(name)}\b", stem)
        if found:
            return found.group(1), name
    return None


def collect(course: Course, assignment: str, downloads: Path) -> list[str]:
    """File every submission found in ``downloads``; return one line per action taken."""
    if not downloads.is_dir():
        raise ValueError(f"{downloads} is not a folder of downloaded submissions")
    notebooks = release_notebooks(course, assignment)
    found: dict[str, dict[str, Path]] = {}
    lines: list[str] = []
    for entry in sorted(downloads.iterdir()):
        if entry.is_symlink():
            lines.append(f"{one_line(entry.name, 80)}: skipped, a link (links are not followed)")
            continue
        if entry.is_dir():
            files = [f for f in sorted(entry.rglob("*.ipynb")) if ".ipynb_checkpoints" not in
                     f.parts and not f.is_symlink() and f.is_file()
                     and not any(p.is_symlink() for p in f.relative_to(entry).parents
                                 if p != Path("."))]
            by_name = {f.stem: f for f in files if f.stem in notebooks}
            if not by_name and len(files) == 1 and len(notebooks) == 1:
                by_name = {notebooks[0]: files[0]}
                lines.append(f"{one_line(entry.name, 80)}: filed {one_line(files[0].name, 80)} "
                             f"as {notebooks[0]}.ipynb")
            if not by_name:
                lines.append(f"{one_line(entry.name, 80)}: skipped, no notebook named "
                             f"{' or '.join(n + '.ipynb' for n in notebooks)}")
                continue
            found.setdefault(entry.name, {}).update(by_name)
        elif entry.suffix == ".ipynb" and entry.is_file():
            owner = _flat_owner(entry, notebooks)
            if owner is None:
                lines.append(f"{one_line(entry.name, 80)}: skipped, the name is not "
                             "<student>_<notebook>.ipynb")
                continue
            found.setdefault(owner[0], {})[owner[1]] = entry
    for student, files in sorted(found.items()):
        if not STUDENT_ID.fullmatch(student):
            lines.append(f"{one_line(student, 80)}: skipped, not a valid student id")
            continue
        target = course.folder("submitted", assignment, student)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        latest = max(f.lstat().st_mtime for f in files.values())
        for name, source in files.items():
            try:
                (target / f"{name}.ipynb").write_bytes(read_regular(source, MAX_BYTES))
            except UnsafeFile as err:
                lines.append(f"{student}: {name}.ipynb skipped: {err}")
        stamp = datetime.fromtimestamp(latest, tz=timezone.utc)
        (target / "timestamp.txt").write_text(stamp.strftime("%Y-%m-%d %H:%M:%S.%f %Z"))
        lines.append(f"{student}: collected {', '.join(sorted(files))}")
    return lines
