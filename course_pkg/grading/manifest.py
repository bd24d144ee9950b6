"""The grading manifest: what was graded, from which bytes, with which outcome.

One file in the course directory, ``grading_manifest.jsonl``: a journal of JSON lines, one per
recorded outcome, the last line of a (assignment, student) pair winning::

    {"assignment": "ps1", "student": "alice", "entry": {"hash": "...", "status": "graded", ...}}

The pipeline appends a line (and syncs it to disk) the moment a grade is in the gradebook, so a
crash mid-batch loses at most the submissions being graded, and recording costs the same for
the ten-thousandth student as for the first. A line cut short by a crash is ignored; the file
is rewritten without its superseded lines when they outnumber the live ones. A rerun compares
each submission's hash with the manifest and regrades only what changed (a new submission, an
edited one, or a changed assignment).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from course_pkg.grading.untrusted import UnsafeFile, read_regular, regular_files

FILE_NAME = "grading_manifest.jsonl"
PIPELINE_VERSION = "2"
"""Part of every hash: bump it when a change of the pipeline must regrade every submission."""


def hash_folder(folder: Path, salt: str = "", max_bytes: int = 64 * 2**20) -> str:
    """SHA-256 of the entries of ``folder`` (names, and contents of regular files), plus ``salt``.

    Nothing is followed: a link or a sub-folder counts by its name and kind, a file over
    ``max_bytes`` by its size (a submission controls all of these).
    """
    digest = hashlib.sha256(f"{PIPELINE_VERSION}\0{salt}\0".encode())
    try:
        regular, other = regular_files(folder)
    except UnsafeFile:
        return digest.hexdigest() + "-unreadable"
    for name in regular:
        try:
            content = hashlib.sha256(read_regular(folder / name, max_bytes)).hexdigest()
        except UnsafeFile as err:
            content = str(err)
        digest.update(f"file\0{name}\0{content}\0".encode("utf-8", "replace"))
    for name in other:
        digest.update(f"other\0{name}\0".encode("utf-8", "replace"))
    return digest.hexdigest()


def hash_json(data: Any) -> str:
    """SHA-256 of ``data`` written as canonical JSON (used for the assignment's cells)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


class Manifest:
    """The manifest journal of one course directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.data: dict[str, dict[str, Any]] = {}
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self.data.setdefault(record["assignment"], {})[record["student"]] = (
                    record["entry"])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                if number == len(lines):  # the last line, cut short by a crash mid-write
                    continue
                raise ValueError(f"line {number} of the grading manifest {self.path} is not a "
                                 f"record ({err}); move the file away to regrade every "
                                 "submission") from None
        if len(lines) > 2 * sum(map(len, self.data.values())) + 100:
            self._rewrite()

    def get(self, assignment: str, student: str) -> dict[str, Any] | None:
        return self.data.get(assignment, {}).get(student)

    def entries(self, assignment: str) -> dict[str, Any]:
        return dict(sorted(self.data.get(assignment, {}).items()))

    def put(self, assignment: str, student: str, entry: dict[str, Any]) -> None:
        """Record ``entry``: append its line and sync it to disk at once."""
        self.data.setdefault(assignment, {})[student] = entry
        with open(self.path, "a") as f:
            f.write(_line(assignment, student, entry))
            f.flush()
            os.fsync(f.fileno())

    def _rewrite(self) -> None:
        """The journal without superseded lines (write, sync, rename: atomic on POSIX)."""
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w") as f:
            for assignment, students in sorted(self.data.items()):
                for student, entry in sorted(students.items()):
                    f.write(_line(assignment, student, entry))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)


def _line(assignment: str, student: str, entry: dict[str, Any]) -> str:
    return json.dumps({"assignment": assignment, "student": student, "entry": entry},
                      sort_keys=True) + "\n"
