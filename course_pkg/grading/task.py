"""One grading task: a sanitised submission in, its grades and graded notebooks out, as data.

:func:`grade` is what the pipeline sends to a Dask worker, on this machine or on a cluster
node; it assumes no shared file system. The task carries everything the worker needs (the
assignment's cells as the instructor's gradebook records them, the names to withhold, the
limits) and the submission's notebooks as text. The worker builds, once per process, a private
nbgrader course directory with a gradebook of that one assignment, and the withheld copy of
course_pkg; then it runs nbgrader's autograde with the course's trusted execute step
(:mod:`course_pkg.grading.trusted`), each submission in an operating-system sandbox of its own
(:mod:`course_pkg.grading.sandbox`). It returns the scores, the graded notebooks and what
happened, as plain data. Only the instructor's process writes the instructor's gradebook.

nbgrader cannot run twice at once in one process (its autograde sets and deletes the
``NBGRADER_EXECUTION`` environment variable, and the private course folder is the process's),
so a process grades one submission at a time, whatever the number of threads its Dask worker
was started with: the others wait for :data:`ONE_AT_A_TIME`. Nothing of one grading is shared
with the next: each has its own list of events, its own sandbox and user id.

Before its first submission, a process starts a test sandbox (:func:`course_pkg.grading.sandbox
.probe`). What fails there, or anywhere before the student's code could run (no bubblewrap, a
worker with another course_pkg, a sandbox that cannot see the Python environment, a full
disk), comes back as ``fault``: "not graded: grader fault (what, how to fix it)", never a
grade, and the next run grades that submission again.

A process's prepared course lives in the grader's private runtime folder
(:func:`course_pkg.grading.identity.private_folder`, ``work/<assignment>-<random>``), never in
``/tmp``, and the process holds an exclusive lock on that folder for its life. A worker that
exits removes it; one that is killed cannot, and the lock dies with it: :func:`sweep` (run at
the start of every batch and before a process prepares) removes every folder whose lock is
free. The private gradebook in it is a scratch copy (the instructor's process records the
grades), so it is written without waiting for the disk (SQLite ``synchronous=OFF``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from course_pkg.grading.course import ensure_tools_on_path, read_submission
from course_pkg.grading.identity import UnsafeRuntimeState, private_folder
from course_pkg.grading.sandbox import (
    Limits,
    SandboxFault,
    SandboxUnavailable,
    bwrap_path,
    probe,
)
from course_pkg.grading.withheld import build, package_hash

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_PREPARED: dict[str, tuple[Path, Path, Any, str]] = {}
"""Per worker process: job key -> (course folder, withheld package, nbgrader API, what limits
hold)."""
ONE_AT_A_TIME = threading.Lock()
"""Held while this process grades a submission (see the module doc)."""
WORK_FOLDER = "work"
"""The folder of the private runtime folder that holds the workers' prepared courses."""
_HELD: dict[Path, int] = {}
"""Per process: prepared course folder -> the descriptor that holds its lock."""


class WrongPackage(RuntimeError):
    """The worker's course_pkg is not the instructor's: grades could differ."""


def job_key(job: dict[str, Any]) -> str:
    """A short hash of everything a worker prepares from ``job``."""
    data = {k: job[k] for k in ("assignment", "spec", "withheld", "duedate", "course_id",
                                "limits", "sandboxed")}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def grade(job: dict[str, Any], submission: dict[str, Any]) -> dict[str, Any]:
    """Autograde one submission (see the module doc); runs on a Dask worker.

    Parameters
    ----------
    job
        ``assignment``, ``spec`` (:func:`course_pkg.grading.preflight.assignment_spec`),
        ``withheld`` names, ``duedate``, ``course_id``, ``limits``, ``sandboxed`` and the
        instructor's ``package_hash``.
    submission
        ``student``, ``notebooks`` ({name: notebook JSON text}) and ``timestamp`` (or None).

    Returns
    -------
    dict
        ``student``, ``success``, ``seconds``, ``events``, ``error`` and ``log`` (on failure),
        ``grades`` (:func:`course_pkg.grading.course.read_submission`) and ``autograded``
        ({name: graded notebook JSON text}), ``limits`` (which limits and which count of CPU
        time held, in words); or ``fault`` (what failed in the grader and how to fix it).
    """
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", message=".*not in session.*")
    with ONE_AT_A_TIME:
        try:
            return _grade(job, submission)
        except (SandboxUnavailable, WrongPackage, SandboxFault, UnsafeRuntimeState) as err:
            return fault_answer(submission["student"], str(err))
        except OSError as err:  # the worker's disk or folders, not the student's code
            return fault_answer(submission["student"], f"the grading worker could not write "
                                f"its files ({err}); free some disk space or fix the "
                                "permissions of its temporary folder, then run again")


def fault_answer(student: str, what: str) -> dict[str, Any]:
    """The answer of a task that failed because of the grader, not the submission."""
    what = what if what.startswith("grader fault") else f"grader fault: {what}"
    return {"student": student, "success": False, "fault": what, "events": [], "seconds": 0.0}


def _grade(job: dict[str, Any], submission: dict[str, Any]) -> dict[str, Any]:
    from course_pkg.grading.trusted import EVENTS

    if job["package_hash"] != package_hash():
        raise WrongPackage("the grading worker refused: its course_pkg differs from the "
                           "instructor's (install the same version of the course on every "
                           "worker)")
    if job["sandboxed"]:
        bwrap_path()  # refuses, with the reason, where no sandbox can start
    root, _, api, held = _prepare(job)
    assignment, student = job["assignment"], submission["student"]
    submitted = root / "submitted" / student
    autograded = root / "autograded" / student
    for folder in (submitted, autograded, root / "plain"):
        shutil.rmtree(folder, ignore_errors=True)
    (submitted / assignment).mkdir(parents=True)
    for name, text in submission["notebooks"].items():
        (submitted / assignment / f"{name}.ipynb").write_text(text)
    if submission.get("timestamp"):
        (submitted / assignment / "timestamp.txt").write_text(submission["timestamp"])
    events: list[dict[str, Any]] = []
    token = EVENTS.set(events)
    started = time.monotonic()
    try:
        outcome = api.autograde(assignment, student, force=True, create=True)
    finally:
        EVENTS.reset(token)
    faults = [str(e.get("what", "")) for e in events if e.get("event") == "grader fault"]
    if faults:
        shutil.rmtree(submitted, ignore_errors=True)
        return fault_answer(student, faults[0])
    answer: dict[str, Any] = {
        "student": student,
        "success": bool(outcome.get("success")),
        "seconds": round(time.monotonic() - started, 3),
        "error": (outcome.get("error") or "")[-2000:],
        "log": (outcome.get("log") or "")[-4000:],
        "events": events,
        "limits": held + _one_at_a_time(),
    }
    if answer["success"]:
        answer["grades"] = read_submission(_gradebook_url(root), assignment,
                                           student)
        answer["autograded"] = {path.stem: path.read_text() for path in
                                sorted((autograded / assignment).glob("*.ipynb"))}
    shutil.rmtree(submitted, ignore_errors=True)
    return answer


def _one_at_a_time() -> str:
    """Words for the report when this process's Dask worker has several threads."""
    try:
        from distributed import get_worker

        threads = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return ""
    if threads <= 1:
        return ""
    return (f"; one submission at a time per worker process (this worker has {threads} "
            "threads; nbgrader cannot run twice in one process)")


def one_blas_thread() -> None:
    """Run BLAS on one thread in this process and in the processes it starts.

    A process grades one submission at a time on one core. NumPy's OpenBLAS starts a thread per
    core when it loads, and idle threads spin between calls: with two cores, the instructor's
    process grading ps3 itself (one submission, ``--workers 1``, a small batch) spent about
    160 ms of CPU per submission on them. The variables reach libraries loaded later (and
    nbgrader's kernels); ``threadpoolctl`` sets the ones already loaded, since NumPy was imported
    before this process knew it would grade. (Dask's workers start with one thread already.)
    """
    from threadpoolctl import threadpool_limits

    os.environ.update({name: "1" for name in THREAD_VARIABLES})
    threadpool_limits(limits=1)


def _prepare(job: dict[str, Any]) -> tuple[Path, Path, Any, str]:
    key = job_key(job)
    if key not in _PREPARED:
        one_blas_thread()
        ensure_tools_on_path()
        _gradebooks_without_sync()
        _gradebooks_opened_lightly()
        _metadata_schema_compiled_once()
        root = claim_work_folder(job["assignment"])
        try:
            _gradebook(root, job)
            (root / "source" / job["assignment"]).mkdir(parents=True)
            package = build(root / "package", job["withheld"])
            limits = Limits(**job["limits"])
            held = probe(package, limits) if job["sandboxed"] else "no sandbox"
            _PREPARED[key] = (root, package, _api(root, package, job), held)
        except BaseException:
            release_work_folder(root)
            raise
    return _PREPARED[key]


def work_parent() -> Path:
    """The folder of this user's private runtime folder that holds the prepared courses
    (created and checked: see :func:`course_pkg.grading.identity.open_private_dir`)."""
    return private_folder(WORK_FOLDER)


def claim_work_folder(assignment: str) -> Path:
    """A new folder for this process's prepared course of ``assignment``, locked by this
    process until :func:`release_work_folder` or its death (after sweeping stale ones).

    A Dask worker process keeps its prepared course for its life and removes it when it exits
    (the embedded cluster's workers are spawned interpreters: atexit runs); the folder of one
    that is killed is removed by the next sweep.
    """
    parent = work_parent()
    sweep(parent)
    while True:
        root = Path(tempfile.mkdtemp(prefix=f"{assignment}-", dir=parent))
        fd = _open_folder(root)
        if fd is None:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        # a sweep that locked the folder between mkdtemp and flock has removed it: try again
        with contextlib.suppress(FileNotFoundError):
            if os.stat(root, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                _HELD[root] = fd
                atexit.register(release_work_folder, root)
                return root
        os.close(fd)


def release_work_folder(root: Path) -> None:
    """Remove the prepared course ``root`` and give up its lock (idempotent)."""
    shutil.rmtree(root, ignore_errors=True)
    engine = _ENGINES.pop(_gradebook_url(root), None)
    if engine is not None:
        engine.dispose()
    fd = _HELD.pop(root, None)
    if fd is not None:
        os.close(fd)


def forget_prepared() -> None:
    """Remove every course this process prepared (and give up their locks)."""
    for prepared in list(_PREPARED.values()):
        release_work_folder(prepared[0])
    _PREPARED.clear()


def sweep(parent: Path | None = None) -> list[Path]:
    """Remove the prepared courses whose process is gone (their lock is free); return them.

    A live process holds its folder's lock, so its folder is never touched.
    """
    parent = parent if parent is not None else work_parent()
    removed = []
    for entry in sorted(parent.iterdir()):
        fd = _open_folder(entry)
        if fd is None:  # not a folder (nothing else is put there): leave it
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


def _open_folder(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None


class _CachedSchemaValidation:
    """What nbgrader's cell-metadata check uses of ``jsonschema``: ``validate`` (the same
    checks and the same error), with each schema's validator built once per process instead
    of once per cell (``jsonschema.validate`` checks the schema itself and builds a validator
    on every call: about half of nbgrader's metadata checks, twice per notebook)."""

    def __init__(self) -> None:
        self._validators: dict[str, Any] = {}

    def validate(self, instance: Any, schema: dict[str, Any]) -> None:
        import jsonschema

        key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(key)
        if validator is None:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            validator = self._validators[key] = cls(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        if error is not None:
            raise error


def _metadata_schema_compiled_once() -> None:
    from nbgrader.nbgraderformat import common

    if not isinstance(common.jsonschema, _CachedSchemaValidation):
        common.jsonschema = _CachedSchemaValidation()


_ENGINES: dict[str, Any] = {}
"""Per process: the URL of a prepared course's private gradebook -> its SQLAlchemy engine."""


def _gradebook_url(root: Path) -> str:
    return f"sqlite:///{root / 'gradebook.db'}"


def _gradebooks_opened_lightly() -> None:
    """Once per process: nbgrader opens the private gradebook about ten times per submission,
    and each time makes a new engine, connects it for the first time and checks that every
    table exists (about 5 ms). For a private gradebook that this process made and checked
    once (:func:`_gradebook`), the later opens reuse its engine and skip the table check; the
    rest of nbgrader's ``Gradebook.__init__`` (a session, the course) is unchanged. Any other
    gradebook (the instructor's) is opened as nbgrader does."""
    from nbgrader import api

    if getattr(api.Gradebook.__init__, "course_light", False):
        return
    full = api.Gradebook.__init__

    def __init__(self: Any, db_url: str, course_id: str = "default_course",
                 authenticator: Any = None) -> None:
        engine = _ENGINES.get(db_url)
        if engine is None:
            full(self, db_url, course_id, authenticator)
            if any(db_url == _gradebook_url(root) for root in _HELD):
                _ENGINES[db_url] = self.engine
            return
        from sqlalchemy.orm import scoped_session, sessionmaker

        self.engine = engine
        self.db = scoped_session(sessionmaker(autoflush=True, bind=engine, future=True))
        self.check_course(course_id=course_id)
        self.course_id, self.authenticator = course_id, authenticator

    __init__.course_light = True  # type: ignore[attr-defined]
    api.Gradebook.__init__ = __init__


_SYNC_OFF: list[bool] = []


def _gradebooks_without_sync() -> None:
    """Once per process: the private gradebooks (in a prepared course, never the instructor's)
    are opened with ``PRAGMA synchronous=OFF``: each of nbgrader's many commits would otherwise
    wait for the disk, for a file that is thrown away after the grading."""
    if _SYNC_OFF:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _no_sync)
    _SYNC_OFF.append(True)


def _no_sync(connection: Any, record: Any) -> None:
    if not isinstance(connection, sqlite3.Connection):
        return
    rows = connection.execute("PRAGMA database_list").fetchall()
    path = next((row[2] for row in rows if row[1] == "main" and row[2]), None)
    if path is not None and os.path.dirname(os.path.realpath(path)) in {
            os.path.realpath(root) for root in _HELD}:
        connection.execute("PRAGMA synchronous=OFF")


def _gradebook(root: Path, job: dict[str, Any]) -> None:
    """A gradebook with the one assignment, its notebooks and cells, as the instructor's."""
    from nbgrader.api import Gradebook

    assignment = job["assignment"]
    duedate = datetime.fromisoformat(job["duedate"]) if job.get("duedate") else None
    with Gradebook(_gradebook_url(root), course_id=job["course_id"]) as gb:
        gb.update_or_create_assignment(assignment, duedate=duedate)
        for notebook, spec in job["spec"].items():
            gb.add_notebook(notebook, assignment)
            for name in spec["order"]:
                cell = spec["cells"][name]
                if cell["grade"]:
                    gb.update_or_create_grade_cell(name, notebook, assignment,
                                                   max_score=cell["points"],
                                                   cell_type=cell["cell_type"])
                if cell["solution"]:
                    gb.update_or_create_solution_cell(name, notebook, assignment)
                gb.update_or_create_source_cell(name, notebook, assignment,
                                                cell_type=cell["cell_type"],
                                                locked=cell["locked"], source=cell["source"],
                                                checksum=cell["checksum"])


def _api(root: Path, package: Path, job: dict[str, Any]) -> Any:
    from nbgrader.apps import NbGraderAPI
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import Execute
    from traitlets.config import Config

    from course_pkg.grading.trusted import TrustedExecute

    limits = Limits(**job["limits"])
    config = Config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = _gradebook_url(root)
    config.CourseDirectory.course_id = job["course_id"]
    config.LimitOutput.max_lines = limits.max_output_lines
    config.OverwriteCells.add_missing_cells = True
    config.TrustedExecute.package = str(package)
    config.TrustedExecute.spec = job["spec"]
    config.TrustedExecute.limits = limits.to_json()
    config.TrustedExecute.sandboxed = job["sandboxed"]
    config.TrustedExecute.workdir = "" if job["sandboxed"] else str(root / "plain")
    config.Autograde.autograde_preprocessors = [
        TrustedExecute if p is Execute else p
        for p in Autograde.class_traits()["autograde_preprocessors"].default()]
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
