"""``course``: the instructor's command line, over nbgrader's own commands.

::

    course release ps1                 # nbgrader generate_assignment (release/ps1, gradebook)
    course collect ps1 downloads/      # downloaded submissions -> submitted/<student>/ps1
    course autograde ps1 --workers 2   # the whole class, sandboxed, in parallel
    course feedback ps1                # nbgrader generate_feedback -> feedback/<student>/ps1
    course export --to grades.csv      # scores with a status column ("not graded: why")
    course export --format canvas --roster canvas.csv --to upload.csv   # for Canvas
    course report ps1                  # reports/ps1/report.md and mistakes.png

Every command takes ``--course-dir`` (default: the current folder if it has an
``nbgrader_config.py``, else ``./assignments``). See ``book/instructor_guide.md``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from course_pkg.grading.course import Course, nbgrader_api


def _course_dir(value: str | None) -> Course:
    if value is not None:
        root = Path(value)
    elif Path("nbgrader_config.py").exists():
        root = Path(".")
    else:
        root = Path("assignments")
    if not (root / "source").is_dir():
        raise ValueError(f"{root.resolve()} is not an nbgrader course directory (it has no "
                         "source/ folder); pass --course-dir")
    return Course(root)


def _nbgrader(result: dict, what: str) -> None:
    if not result.get("success"):
        lines = (result.get("error") or result.get("log") or "").strip().splitlines()
        raise RuntimeError(f"nbgrader {what} failed: {lines[-1] if lines else 'no message'}")


def cmd_release(course: Course, args: argparse.Namespace) -> int:
    names = course.assignments() if args.all else args.assignments
    if not names:
        raise ValueError("name the assignments to release, or pass --all")
    api = nbgrader_api(course)
    for name in names:
        _nbgrader(api.generate_assignment(name, force=True, create=True),
                  f"generate_assignment {name}")
        files = sorted(p.name for p in course.folder("release", name).iterdir())
        print(f"{name}: released {', '.join(files)} to {course.folder('release', name)}")
    return 0


def cmd_collect(course: Course, args: argparse.Namespace) -> int:
    from course_pkg.grading.collect import collect

    for line in collect(course, args.assignment, Path(args.downloads)):
        print(line)
    return 0


def cmd_autograde(course: Course, args: argparse.Namespace) -> int:
    from course_pkg.grading.pipeline import autograde
    from course_pkg.grading.progress import ProgressBar
    from course_pkg.grading.sandbox import Limits
    from course_pkg.grading.untrusted import one_line

    timeout = args.cell_timeout or _configured_timeout(course)
    limits = Limits(cell_timeout=timeout, wall_seconds=args.wall_seconds,
                    memory_bytes=args.memory_mb * 2**20)
    bar = ProgressBar(enabled=False if args.quiet else None)
    for folder in course.invalid_folders(args.assignment):
        print(f"skipped submitted/{one_line(repr(folder), 80)}: not a valid student id "
              "(letters, digits, '.', '_' and '-')", flush=True)

    def recorded(outcome: Any) -> None:
        bar.clear()
        print(outcome.line(), flush=True)
        if not outcome.unchanged:
            bar.advance(outcome)

    results = autograde(course, args.assignment, workers=args.workers, limits=limits,
                        force=args.force, students=args.student or None, progress=recorded,
                        sandboxed=not args.unsandboxed, scheduler=args.scheduler,
                        start=bar.start)
    graded = sum(o.status == "graded" for o in results)
    kept = sum(o.unchanged for o in results)
    print(f"{args.assignment}: {len(results)} submissions, {graded} graded, "
          f"{len(results) - graded} not graded, {kept} unchanged since the last run")
    return _grader_faults(results)


def _grader_faults(results: list[Any]) -> int:
    """Say which limits held, and exit 1 when the grader failed someone (issue 14, item 6)."""
    held = sorted({o.limits for o in results if o.limits and not o.unchanged})
    for words in held:
        print(f"sandbox: {words}")
    faults = [o.student for o in results if o.grader_fault]
    if not faults:
        return 0
    print(f"{len(faults)} not graded because of a grader fault (see their lines): fix it and "
          "run the same command again, which grades exactly these", file=sys.stderr)
    return 1


def _configured_timeout(course: Course) -> int:
    from course_pkg.grading.course import load_config

    execute = load_config(course.root).get("Execute", {})
    return int(execute.get("timeout", 60) or 60)


def cmd_feedback(course: Course, args: argparse.Namespace) -> int:
    from course_pkg.grading.withheld import feedback_config

    api = nbgrader_api(course, **feedback_config())  # pages without the hidden tests
    _nbgrader(api.generate_feedback(args.assignment, force=True), "generate_feedback")
    folder = course.root / "feedback"
    made = sorted(p.parent.name for p in folder.glob(f"*/{args.assignment}"))
    print(f"{args.assignment}: feedback for {len(made)} students in {folder}")
    return 0


def cmd_export(course: Course, args: argparse.Namespace) -> int:
    names = args.assignment or course.assignments()
    target = Path(args.to)
    if args.format == "canvas":
        return _export_canvas(course, names, args, target)
    if args.roster:
        raise ValueError("--roster is for --format canvas")
    from course_pkg.grading.report import export_csv

    rows = export_csv(course, names, target)
    print(f"wrote {rows} rows to {target}")
    return 0


def _export_canvas(course: Course, names: list[str], args: argparse.Namespace,
                   target: Path) -> int:
    from course_pkg.grading.canvas import fill_roster

    if not args.roster:
        raise ValueError("--format canvas needs --roster: the gradebook CSV exported from "
                         "Canvas (Grades > Export > CSV)")
    done = fill_roster(course, names, Path(args.roster), target, args.match)
    print(f"wrote {target}: {done.filled} scores filled in")
    if done.added_columns:
        print(f"added columns (no such assignment in the roster): "
              f"{', '.join(done.added_columns)}")
    for student in done.not_in_roster:
        print(f"not in the roster (no row whose {args.match} is this id): {student}")
    for assignment, students in done.no_submission.items():
        print(f"{assignment}: no submission from {len(students)} roster students: "
              f"{', '.join(students)}")
    for assignment, students in done.not_graded.items():
        print(f"{assignment}: not graded, left empty (see `course report {assignment}`): "
              f"{', '.join(students)}")
    return 0


def cmd_report(course: Course, args: argparse.Namespace) -> int:
    from course_pkg.grading.report import class_report

    folder = Path(args.to) if args.to else course.root / "reports" / args.assignment
    path = class_report(course, args.assignment, folder)
    print(path.read_text())
    print(f"wrote {path} and {folder / 'mistakes.png'}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``course`` (one sub-command per step of the workflow)."""
    top = argparse.ArgumentParser(prog="course", description=__doc__.splitlines()[0])
    top.add_argument("--course-dir", help="the nbgrader course directory")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="generate the student version (nbgrader "
                       "generate_assignment)")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--all", action="store_true", help="every assignment under source/")
    p.set_defaults(run=cmd_release)

    p = sub.add_parser("collect", help="file downloaded submissions under submitted/")
    p.add_argument("assignment")
    p.add_argument("downloads", help="folder of per-student folders or <student>_<nb>.ipynb")
    p.set_defaults(run=cmd_collect)

    p = sub.add_parser("autograde", help="grade every submission, sandboxed and in parallel")
    p.add_argument("assignment")
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes of the embedded cluster (default 2)")
    p.add_argument("--force", action="store_true", help="regrade unchanged submissions too")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--cell-timeout", type=int, help="seconds per cell (default: the course's "
                   "c.Execute.timeout, else 60)")
    p.add_argument("--wall-seconds", type=int, default=300,
                   help="seconds per submission (300)")
    p.add_argument("--memory-mb", type=int, default=2048, help="memory per kernel (2048)")
    p.add_argument("--scheduler", help="grade on an existing Dask cluster, e.g. "
                   "tcp://HOST:8786 (default: an embedded local cluster of --workers processes)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--unsandboxed", action="store_true",
                   help="grade without the operating-system sandbox (where bubblewrap cannot "
                        "run); every report line then says UNSANDBOXED")
    p.set_defaults(run=cmd_autograde)

    p = sub.add_parser("feedback", help="HTML feedback (nbgrader generate_feedback)")
    p.add_argument("assignment")
    p.set_defaults(run=cmd_feedback)

    p = sub.add_parser("export", help="grades to CSV, with a status column, or into the "
                       "gradebook CSV that Canvas exports (--format canvas)")
    p.add_argument("--format", choices=("csv", "canvas"), default="csv",
                   help="csv: one row per student and assignment (default); canvas: fill the "
                        "roster's assignment columns")
    p.add_argument("--roster", help="the gradebook CSV exported from Canvas (--format canvas)")
    p.add_argument("--match", default="SIS Login ID",
                   help="the roster column that holds nbgrader's student ids (SIS Login ID)")
    p.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    p.add_argument("--to", default="grades.csv", help="the CSV file (grades.csv)")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("report", help="class report and plot of the most common mistakes")
    p.add_argument("assignment")
    p.add_argument("--to", help="output folder (default <course>/reports/<assignment>)")
    p.set_defaults(run=cmd_report)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``course`` console script."""
    args = parser().parse_args(argv)
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", message=".*not in session.*")
    try:
        return args.run(_course_dir(args.course_dir), args)
    except (ValueError, RuntimeError) as err:
        print(f"course {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
