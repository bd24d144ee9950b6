"""The grading manifest: what was graded, from which bytes, with which outcome.

One JSON file in the course directory, ``grading_manifest.json``::

    {"ps1": {"alice": {"hash": "...", "status": "graded", "score": 7.0, ...}, ...}, ...}

The pipeline records a submission the moment its grade is in the gradebook, by writing a new
file and renaming it over the old one (atomic on POSIX), so a crash mid-batch loses at most the
submission being graded. A rerun compares each submission's hash with the manifest and regrades
only what changed (a new submission, an edited one, or a changed assignment).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from course_pkg.grading.untrusted import UnsafeFile, read_regular, regular_files

FILE_NAME = "grading_manifest.json"
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
    """The manifest file of one course directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.data: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"the grading manifest {self.path} is not valid JSON ({err}); "
                                 "move it away to regrade every submission") from None

    def get(self, assignment: str, student: str) -> dict[str, Any] | None:
        return self.data.get(assignment, {}).get(student)

    def entries(self, assignment: str) -> dict[str, Any]:
        return dict(sorted(self.data.get(assignment, {}).items()))

    def put(self, assignment: str, student: str, entry: dict[str, Any]) -> None:
        """Record ``entry`` and write the file at once (write, fsync, rename)."""
        self.data.setdefault(assignment, {})[student] = entry
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
