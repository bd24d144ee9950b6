"""The limits a student's notebook runs under, and the private home its kernel starts in.

A submission's notebook runs in a kernel that nbgrader starts; that kernel inherits the
environment of the grading worker. :func:`prepare_home` gives each submission a fresh private
home (``HOME``, ``TMPDIR``, ``IPYTHONDIR`` all inside it) whose IPython startup file installs
:mod:`course_pkg.grading.kernel_guard` before any student code runs. The limits themselves are
one frozen :class:`Limits` record, shared by the pipeline, the workers and the report.
"""

from __future__ import annotations

import json
import os
import pkgutil
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STARTUP = (
    "import course_pkg.grading.kernel_guard as _course_guard\n"
    "_course_guard.install()\n"
    "del _course_guard\n"
)
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
PIPELINE_MODULES = {"cli", "course", "kernel_guard", "manifest", "pipeline", "preflight", "report",
                    "sandbox", "worker"}
"""The modules of course_pkg.grading that grade; the others are the checks the tests call."""


def preload_modules() -> list[str]:
    """Modules imported, then snapshotted, before the student's code runs.

    NumPy and course_pkg, and every checks module of ``course_pkg.grading`` (those the
    assignments' test cells import), so that a patch of any of them is seen and undone.
    """
    import course_pkg.grading

    checks = [f"course_pkg.grading.{m.name}" for m in pkgutil.iter_modules(
        course_pkg.grading.__path__) if m.name not in PIPELINE_MODULES]
    return ["numpy", "numpy.testing", "numpy.linalg", "course_pkg", *sorted(checks)]


@dataclass(frozen=True)
class Limits:
    """What one submission may use. Every field is checked by the tests of the pipeline.

    Attributes
    ----------
    cell_timeout
        Seconds one cell may run before nbgrader interrupts it (nbgrader's ``Execute.timeout``).
    wall_seconds
        Seconds the whole submission may take in its worker; past it, the worker is killed.
    memory_bytes
        Address-space limit of the kernel (``RLIMIT_AS``).
    cpu_seconds
        CPU time limit of the kernel (``RLIMIT_CPU``).
    file_bytes
        Largest file the kernel may write (``RLIMIT_FSIZE``).
    max_output_chars
        Characters one cell may print; the rest is dropped with a notice.
    max_output_lines
        Lines of stream output kept per cell in the graded notebook (nbgrader's ``LimitOutput``).
    max_notebook_bytes
        A submitted notebook file larger than this is not graded.
    """

    cell_timeout: int = 30
    wall_seconds: int = 300
    memory_bytes: int = 2 * 2**30
    cpu_seconds: int = 300
    file_bytes: int = 64 * 2**20
    max_output_chars: int = 20_000
    max_output_lines: int = 200
    max_notebook_bytes: int = 50 * 2**20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")

    def to_json(self) -> dict[str, int]:
        """The limits as a plain dict (what travels to the workers)."""
        return asdict(self)


def prepare_home(
    home: Path,
    own_folder: Path,
    forbidden: list[Path],
    limits: Limits,
    log_file: Path,
    cells: dict[str, Any],
    read_only: list[Path] | None = None,
) -> dict[str, str]:
    """Create a fresh private home for one kernel; return the environment variables to set.

    Parameters
    ----------
    home
        The folder to (re)create; everything the kernel writes outside ``own_folder`` goes here.
    own_folder
        The submission's folder: the kernel's working directory, readable and writable.
    forbidden
        Folders the kernel may neither read nor write (the course directory, the worker's).
    limits
        The resource limits of the kernel.
    log_file
        Where the guard writes what it refused and what it restored (outside ``own_folder``).
    cells
        ``{"instructor_cells": [source, ...], "grade_cells": {source: grade_id}}``.
    read_only
        Folders inside ``forbidden`` that the kernel may still read (a shared font cache).
    """
    if home.exists():
        shutil.rmtree(home)
    startup = home / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (home / "tmp").mkdir()
    (startup / "00-course-guard.py").write_text(STARTUP)
    config = {
        "own": [str(own_folder), str(home)],
        "forbidden": [str(p) for p in forbidden],
        "read_only": [str(p) for p in (read_only or [])],
        "log": str(log_file),
        "preload": preload_modules(),
        "memory_bytes": limits.memory_bytes,
        "cpu_seconds": limits.cpu_seconds,
        "file_bytes": limits.file_bytes,
        "max_output_chars": limits.max_output_chars,
        **cells,
    }
    config_file = home / "guard.json"
    config_file.write_text(json.dumps(config))
    env = {
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "IPYTHONDIR": str(home / ".ipython"),
        "COURSE_GUARD_CONFIG": str(config_file),
        "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update({name: "1" for name in THREAD_VARIABLES})
    return env


def apply_environment(env: dict[str, str]) -> None:
    """Set ``env`` in this process, so that the next kernel it starts inherits it."""
    os.environ.update(env)
