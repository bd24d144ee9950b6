"""Grade a whole class: pre-flight, parallel sandboxed autograding, one gradebook, a manifest.

:func:`autograde` is what ``course autograde ps1`` runs. For each student folder under
``submitted/``:

1. its hash is compared with the manifest (:mod:`course_pkg.grading.manifest`): an unchanged
   submission keeps its recorded grade and is not run again;
2. pre-flight (:mod:`course_pkg.grading.preflight`) reads it without running it: a corrupted
   file or a notebook of another assignment is "not graded", with the reason;
3. the sanitised notebooks become one task each on Dask (:mod:`course_pkg.grading.cluster`):
   an embedded local cluster, or an existing cluster with ``--scheduler``. A task
   (:mod:`course_pkg.grading.task`) runs nbgrader's own autograde in a private course folder
   of its worker, with the execute step split across the sandbox wall: the student's cells run
   in an operating-system sandbox (:mod:`course_pkg.grading.sandbox`), the tests in the worker
   (:mod:`course_pkg.grading.trusted`); it returns the grades and graded notebooks as data;
4. the pipeline, alone, writes the scores to the instructor's gradebook, writes the graded
   notebooks to ``autograded/`` (so that ``nbgrader generate_feedback`` and the formgrader see
   them), and records the outcome in the manifest, each as soon as its task is in.

Every submission ends with an :class:`Outcome`, whose :meth:`Outcome.line` is its report line.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from course_pkg.grading.course import (
    Course,
    alembic_version,
    ensure_tools_on_path,
    forget_submission,
    gradebook_students,
    write_submission,
)
from course_pkg.grading.manifest import FILE_NAME, Manifest, hash_folder, hash_json
from course_pkg.grading.preflight import (
    assignment_record,
    assignment_spec,
    cell_ids_by_assignment,
    check_submission,
)
from course_pkg.grading.sandbox import Limits, bwrap_path
from course_pkg.grading.task import sweep
from course_pkg.grading.untrusted import UnsafeFile, one_line, read_regular, valid_text
from course_pkg.grading.withheld import checks_modules, package_hash, withheld_names

ANSI = re.compile(r"\x1b\[[0-9;]*m")
MAX_NOTES = 12
WEAK_LIMITS = "limits per process only"
"""How :func:`course_pkg.grading.sandbox.accounting` begins when no control group held: every
report line of such a sandbox says so."""


@dataclass
class Outcome:
    """How one submission ended.

    ``status`` is ``"graded"`` or ``"not graded"``; ``mistakes`` maps each failed test cell to
    its mistake tag (from the grader's check, :func:`verdicts`), and ``feedback`` to the first
    line of the message the student sees. ``grader_fault`` marks a submission that was not
    graded because of the grader (:meth:`_Recorder.fault`): the command exits non-zero and the
    next run grades it again. ``limits`` says which limits and which count of CPU time held in
    its sandbox (:func:`course_pkg.grading.sandbox.accounting`). Every string is made valid
    UTF-8 on entry (:func:`course_pkg.grading.untrusted.valid_text`): a lone surrogate from a
    notebook's JSON cannot stop a report, an export or a progress line.
    """

    student: str
    status: str
    score: float = 0.0
    max_score: float = 0.0
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    mistakes: dict[str, str] = field(default_factory=dict)
    feedback: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    hash: str = ""
    sandboxed: bool = True
    unchanged: bool = False
    grader_fault: bool = False
    limits: str = ""

    def __post_init__(self) -> None:
        self.student, self.status = valid_text(self.student), valid_text(self.status)
        self.reason = valid_text(self.reason)
        self.notes = [valid_text(n) for n in self.notes]
        self.mistakes = {valid_text(k): valid_text(v) for k, v in self.mistakes.items()}
        self.feedback = {valid_text(k): valid_text(v) for k, v in self.feedback.items()}

    def line(self) -> str:
        """The report line: score or "not graded: <reason>", then what happened to it.

        Every part that a submission could influence (the student id, messages, notes) is
        made one line (:func:`course_pkg.grading.untrusted.one_line`), so none can forge a line.
        """
        student = one_line(self.student, 80)
        if self.status == "graded":
            head = f"{student}: {self.score:g}/{self.max_score:g}"
        else:
            head = f"{student}: not graded: {one_line(self.reason)}"
        if self.unchanged:
            head += " (unchanged since the last run: grade kept)"
        if not self.sandboxed:
            head += " [UNSANDBOXED: graded with --unsandboxed, no isolation]"
        elif self.limits.startswith(WEAK_LIMITS):
            head += f" [{one_line(self.limits)}]"
        details = [f"{one_line(cell, 80)} failed: {one_line(self.feedback.get(cell) or tag)}"
                   for cell, tag in self.mistakes.items()] + [one_line(n) for n in self.notes]
        return "\n".join([head] + [f"    - {d}" for d in details])

    def entry(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("unchanged")
        return data

    @classmethod
    def from_entry(cls, entry: dict[str, Any], unchanged: bool = False) -> Outcome:
        known = {k: v for k, v in entry.items() if k in cls.__dataclass_fields__}
        return cls(**known, unchanged=unchanged)


def autograde(
    course: Course,
    assignment: str,
    workers: int = 2,
    limits: Limits | None = None,
    force: bool = False,
    students: list[str] | None = None,
    progress: Callable[[Outcome], None] | None = None,
    sandboxed: bool = True,
    scheduler: str | None = None,
    start: Callable[[int], None] | None = None,
    stage: Callable[[str], None] | None = None,
    workers_alive: Callable[[Callable[[], int]], None] | None = None,
) -> list[Outcome]:
    """Autograde every submission of ``assignment`` (or only ``students``); see the module doc.

    Parameters
    ----------
    workers
        Worker processes of the embedded Dask cluster (one per core is right; each grades one
        submission at a time). Ignored with ``scheduler``.
    force
        Regrade unchanged submissions too.
    progress
        Called with each :class:`Outcome` as soon as it is recorded.
    sandboxed
        False grades without the operating-system sandbox (``--unsandboxed``); every outcome
        says so. True refuses to start where no sandbox can
        (:class:`~course_pkg.grading.sandbox.SandboxUnavailable`); so does every worker.
    scheduler
        Address of an existing Dask scheduler (``tcp://HOST:8786``); None starts an embedded
        local cluster.
    start
        Called with the number of submissions that will run, before the first runs (after
        every unchanged or refused submission has been reported through ``progress``).
    stage, workers_alive
        For a progress bar: what the batch is doing before its first result, and a function
        that counts the workers alive (see :func:`course_pkg.grading.cluster.grade_batch`).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if sandboxed and scheduler is None:
        bwrap_path()
    limits = limits or Limits()
    ensure_tools_on_path()
    sweep()  # the prepared courses of workers that were killed in an earlier batch
    spec = assignment_spec(course.db_url, assignment)
    manifest = Manifest(course.root / FILE_NAME)
    known = course.students(assignment)
    if students is not None:
        missing = sorted(set(students) - set(known))
        if missing:
            raise ValueError(f"no submission of {assignment} for {', '.join(missing)} under "
                             f"{course.root / 'submitted'}")
        known = [s for s in known if s in students]
    work = course.root / ".grading" / assignment
    work.mkdir(parents=True, exist_ok=True)
    from nbgrader.api import Gradebook

    with _batch_lock(work / "lock") as lock, Gradebook(course.db_url) as gb:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another `course autograde {assignment}` is running on "
                             f"{course.root}") from None
        job = _job(course, assignment, spec, limits, sandboxed)
        recorder = _Recorder(course, assignment, manifest, job, progress, gb)
        tasks = _tasks(course, known, manifest, limits, force, recorder)
        if start is not None:
            start(len(tasks))
        if tasks:
            from course_pkg.grading.cluster import grade_batch

            by_student = {t["submission"]["student"]: t for t in tasks}
            grade_batch(scheduler, min(workers, len(tasks)), job,
                        [t["submission"] for t in tasks],
                        lambda submission, answer: recorder.graded(
                            by_student[submission["student"]], answer),
                        stage=stage, alive=workers_alive)
        return [recorder.outcomes[s] for s in known]


def _batch_lock(path: Path) -> Any:
    """The lock file of a batch, opened without following a link (a link or a file of another
    user's there is refused, as the grader's runtime state is: issue 14, item 9)."""
    from course_pkg.grading.identity import UnsafeRuntimeState

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise UnsafeRuntimeState(f"refusing the batch's lock file {path}: {err.strerror} (a "
                                 "link put there?); remove it and run again") from None
    if os.fstat(fd).st_uid != os.geteuid():
        os.close(fd)
        raise UnsafeRuntimeState(f"refusing the batch's lock file {path}: another user owns it")
    return os.fdopen(fd, "w")


def _job(course: Course, assignment: str, spec: dict[str, Any], limits: Limits,
         sandboxed: bool) -> dict[str, Any]:
    """What every task of the batch needs, as plain data (the same for every submission)."""
    instructor = [c["source"] for nb in spec.values() for c in nb["cells"].values()
                  if c["locked"] and c["cell_type"] == "code" and not c["solution"]]
    return {"assignment": assignment, "spec": spec, **assignment_record(course.db_url,
                                                                          assignment),
            "withheld": withheld_names(checks_modules(instructor)), "limits": limits.to_json(),
            "sandboxed": sandboxed, "package_hash": package_hash(),
            "alembic_version": alembic_version(course.gradebook)}


def _tasks(course: Course, known: list[str], manifest: Manifest, limits: Limits, force: bool,
           recorder: _Recorder) -> list[dict[str, Any]]:
    """Keep the unchanged, refuse the ungradable, and make a task of every other submission."""
    assignment, spec = recorder.assignment, recorder.job["spec"]
    salt = hash_json({"spec": spec, "sandboxed": recorder.job["sandboxed"]})
    in_gradebook = set(gradebook_students(course.db_url, assignment))
    others = {name: ids for name, ids in cell_ids_by_assignment(course.root / "source").items()
              if name != assignment}
    tasks = []
    for student in known:
        folder = course.folder("submitted", assignment, student)
        digest = hash_folder(folder, salt, limits.max_notebook_bytes)
        old = manifest.get(assignment, student)
        if not force and old is not None and old.get("hash") == digest and (
                not old.get("grader_fault")) and (
                old.get("status") != "graded" or student in in_gradebook):
            recorder.keep(Outcome.from_entry(old, unchanged=True))
            continue
        checked = check_submission(folder, spec, limits.max_notebook_bytes, others, assignment)
        if not checked.gradable:
            recorder.not_graded(student, digest, checked.reason or "", checked.notes)
            continue
        # valid UTF-8 on entry: a lone surrogate anywhere in the JSON becomes "?"
        notebooks = {name: valid_text(nbformat.writes(nb))
                     for name, nb in checked.notebooks.items()}
        tasks.append({"submission": {"student": student, "notebooks": notebooks,
                                     "timestamp": _timestamp(folder)},
                      "hash": digest, "notes": checked.notes})
    return tasks


TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:.]+( ?[A-Z]{2,5}|[+-][0-9:]+)?\s*$")


def _timestamp(folder: Path) -> str | None:
    """The submission's ``timestamp.txt``, if it is one (read without following a link)."""
    try:
        stamp = read_regular(folder / "timestamp.txt", 100).decode("ascii").strip()
    except (UnsafeFile, UnicodeDecodeError):
        return None
    return stamp if TIMESTAMP.match(stamp) else None


class _Recorder:
    """Writes each outcome to the gradebook, ``autograded/`` and the manifest, one at a time
    (the results of the batch arrive in this one thread, as their tasks finish), through one
    open gradebook ``gb`` for the whole batch."""

    def __init__(self, course: Course, assignment: str, manifest: Manifest, job: dict[str, Any],
                 progress: Callable[[Outcome], None] | None, gb: Any) -> None:
        self.course, self.assignment, self.manifest, self.gb = course, assignment, manifest, gb
        self.job, self.progress, self.sandboxed = job, progress, job["sandboxed"]
        self.max_score = sum(c["points"] for nb in job["spec"].values()
                             for c in nb["cells"].values())
        self.outcomes: dict[str, Outcome] = {}

    def keep(self, outcome: Outcome) -> None:
        self._done(outcome, record=False)

    def not_graded(self, student: str, digest: str, reason: str, notes: list[str],
                   grader_fault: bool = False) -> None:
        forget_submission(self.gb, self.assignment, student)
        for kind in ("autograded", "feedback"):  # nothing stale of an earlier submission
            shutil.rmtree(self.course.folder(kind, self.assignment, student), ignore_errors=True)
        self._done(Outcome(student, "not graded", 0.0, self.max_score, reason,
                           notes[:MAX_NOTES], hash=digest, sandboxed=self.sandboxed,
                           grader_fault=grader_fault))

    def fault(self, student: str, digest: str, what: str, notes: list[str]) -> None:
        """Not graded because of the grader, not the submission: "not graded: grader fault
        (what, how to fix it)"; the next run grades it again (see :func:`_tasks`)."""
        self.not_graded(student, digest, what, notes, grader_fault=True)

    def graded(self, task: dict[str, Any], answer: dict[str, Any]) -> None:
        student = task["submission"]["student"]
        if answer.get("fault"):
            self.fault(student, task["hash"], str(answer["fault"]), list(task["notes"]))
            return
        notes = list(task["notes"]) + event_notes(answer.get("events", []))
        if not answer.get("success"):
            reason = answer.get("stopped") or failure_reason(
                f"{answer.get('log') or ''}\n{answer.get('error') or ''}")
            self.not_graded(student, task["hash"], reason, notes)
            return
        notebooks = {name: nbformat.reads(text, as_version=4)
                     for name, text in answer["autograded"].items()}
        run_notes = read_autograded(notebooks)
        mistakes, feedback = verdicts(answer.get("events", []))
        grades = answer["grades"]
        manual = sorted(cell for record in grades["notebooks"].values()
                        for cell, grade in record["grades"].items() if grade["needs_manual_grade"])
        if manual:
            notes.append(f"to grade by hand in the formgrader: {', '.join(manual)}")
        try:
            score = write_submission(self.gb, self.assignment, student, grades)
        except ValueError as err:  # a worker's record out of range: refused, the batch goes on
            self.not_graded(student, task["hash"], f"its grades were refused: {err}", notes)
            return
        target = self.course.folder("autograded", self.assignment, student)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name, notebook in notebooks.items():
            nbformat.write(notebook, target / f"{name}.ipynb")
        self._done(Outcome(student, "graded", score, self.max_score, "",
                           (notes + run_notes)[:MAX_NOTES], mistakes, feedback,
                           answer.get("seconds", 0.0), task["hash"], self.sandboxed,
                           limits=str(answer.get("limits") or "")))

    def _done(self, outcome: Outcome, record: bool = True) -> None:
        if record:
            self.manifest.put(self.assignment, outcome.student, outcome.entry())
        self.outcomes[outcome.student] = outcome
        if self.progress is not None:
            self.progress(outcome)


KNOWN_FAILURES = {
    "CellTimeoutError": "a cell ignored the interrupt at the time limit per cell, so nbgrader "
                        "could not finish the notebook",
    "DeadKernelError": "the kernel died (the CPU-time or memory limit, or a crash), so nbgrader "
                       "could not finish the notebook",
}
EXCEPTION_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception|Exit)): ?(.*)$")


def failure_reason(log: str) -> str:
    """Why nbgrader failed, in words, from its log: the last exception it reports."""
    found = [m for m in map(EXCEPTION_LINE.match, ANSI.sub("", log).splitlines())
             if m and m.group(1) != "NbGraderException"]
    if not found:
        return "nbgrader could not grade it (no error message)"
    name, message = found[-1].group(1), found[-1].group(2).strip()
    detail = f"{name}: {message}"[:200] if message else name
    if name in KNOWN_FAILURES:
        return f"{KNOWN_FAILURES[name]} ({detail})"
    return f"nbgrader could not grade it: {detail}"


def verdicts(events: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    """Each failed test's mistake tag and first feedback line, from the grader's ``verdict``
    events (:meth:`course_pkg.grading.trusted.TrustedExecute._verdict`): the tag is the
    trusted check's, never text that the student's code printed or raised."""
    mistakes: dict[str, str] = {}
    feedback: dict[str, str] = {}
    for event in events:
        if event.get("event") == "verdict" and isinstance(event.get("cell"), str):
            mistakes[event["cell"]] = str(event.get("tag") or "unknown")
            feedback[event["cell"]] = one_line(event.get("feedback") or "", 240)
    return mistakes, feedback


def read_autograded(notebooks: dict[str, Any]) -> list[str]:
    """From autograded notebooks: notes on which cells ran out of time or memory, so that the
    report tells why."""
    notes: list[str] = []
    for name, notebook in sorted(notebooks.items()):
        for index, cell in enumerate(notebook.cells):
            meta = cell.metadata.get("nbgrader", {})
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if not errors:
                continue
            error = errors[-1]
            label = meta.get("grade_id") or f"cell #{index + 1}"
            if error.get("ename") == "KeyboardInterrupt":
                notes.append(f"{name}: {label} was stopped at the time limit per cell")
            elif error.get("ename") == "MemoryError":
                notes.append(f"{name}: {label} ran out of memory (limit per kernel)")
    return notes


def event_notes(events: list[dict[str, Any]]) -> list[str]:
    """Report lines for what the trusted execute step saw: a stopped kernel, tests not run."""
    notes: list[str] = []
    not_run = [e.get("cell", "?") for e in events if e.get("event") == "not run"]
    for event in events:
        if event.get("event") == "kernel stopped":
            notes.append(str(event.get("what", "")))
        elif event.get("event") == "capped":
            notes.append(f"output cut: {event.get('what', '')}")
        elif event.get("event") == "note":
            notes.append(str(event.get("what", "")))
    if not_run:
        notes.append(f"tests not run because the kernel had stopped (they score 0): "
                     f"{', '.join(map(str, not_run))}")
    return notes


def outcomes(course: Course, assignment: str) -> list[Outcome]:
    """The outcomes of ``assignment`` as the gradebook has them, one per student, sorted.

    The gradebook is the one source of truth: a submission in it is graded, with its score
    there (manual grades included), whether or not this pipeline graded it. The manifest adds
    what the gradebook cannot hold: the notes and mistakes of a graded submission, and why a
    submission was not graded (such a student stays in the gradebook, with no submission). A
    manifest line that says "graded" but whose gradebook record is gone is reported as not
    graded, to regrade, if its submission is still under ``submitted/``, and else dropped; a
    "not graded" line of a student the gradebook no longer knows is dropped too.
    """
    from nbgrader.api import Gradebook, MissingEntry

    if not course.gradebook.exists():
        return []
    with Gradebook(course.db_url) as gb:
        try:
            record = gb.find_assignment(assignment)
        except MissingEntry:
            return []
        max_score = float(record.max_score)
        scores = {s.student.id: float(s.score) for s in record.submissions}
        enrolled = {s.id for s in gb.students}
    journal = Manifest(course.root / FILE_NAME).entries(assignment)
    present = set(course.students(assignment))
    found: dict[str, Outcome] = {}
    for student, score in scores.items():
        entry = journal.get(student)
        outcome = (Outcome.from_entry(entry) if entry and entry.get("status") == "graded"
                   else Outcome(student, "graded"))
        outcome.status, outcome.score, outcome.max_score = "graded", score, max_score
        found[student] = outcome
    for student, entry in journal.items():
        if student in found:
            continue
        if entry.get("status") == "graded" and student in present:
            found[student] = Outcome(student, "not graded", 0.0, max_score,
                                     "its grade is no longer in the gradebook: run `course "
                                     f"autograde {assignment}` again to regrade it")
        elif entry.get("status") != "graded" and student in enrolled:
            found[student] = Outcome.from_entry(entry)
    return [found[s] for s in sorted(found)]
