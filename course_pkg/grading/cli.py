"""course: the instructor's command line, over nbgrader's own commands.

  course release ps1                 nbgrader generate_assignment (release/ps1, gradebook)
  course collect ps1 submissions.zip an LMS download (Canvas's zip, or a folder)
                                     -> submitted/<student>/ps1
  course autograde ps1 --workers 2   the whole class, sandboxed, in parallel
  course feedback ps1                nbgrader generate_feedback -> feedback/<student>/ps1
  course export --to grades.csv      scores with a status column ("not graded: why")
  course export --format canvas --roster canvas.csv --match ID --to upload.csv
                                     the gradebook file that Canvas imports
  course report ps1                  reports/ps1/report.md and mistakes.png

Every command takes --course-dir, before or after the command's name (default: the
current folder if it has an nbgrader_config.py, else ./assignments). An error exits with
status 2, a grader fault in autograde with 1, Ctrl-C with 130 (what was recorded stays
recorded). The instructor's guide, book/instructor_guide.md, walks through a term.
"""

from __future__ import annotations

import argparse
import signal
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


def _known(course: Course, names: list[str]) -> list[str]:
    """``names``, each checked to be an assignment of the course (under ``source/``)."""
    have = course.assignments()
    unknown = [n for n in names if n not in have]
    if unknown:
        raise ValueError(f"no assignment {', '.join(map(repr, unknown))} in "
                         f"{course.root / 'source'} (the assignments: {', '.join(have) or 'none'})")
    return names


def _writable(target: Path) -> Path:
    """``target``, checked to be a file that can be written (a clear error if not)."""
    import os

    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise ValueError(f"cannot write {target}: it is a folder; name a file")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot write {target}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK) or (
            target.exists() and not os.access(target, os.W_OK)):
        raise ValueError(f"cannot write {target}: permission denied (choose another place)")
    return target


def _nbgrader(result: dict, what: str) -> None:
    if not result.get("success"):
        lines = (result.get("error") or result.get("log") or "").strip().splitlines()
        raise RuntimeError(f"nbgrader {what} failed: {lines[-1] if lines else 'no message'}")


def cmd_release(course: Course, args: argparse.Namespace) -> int:
    names = course.assignments() if args.all else _known(course, args.assignments)
    if not names:
        raise ValueError("name the assignments to release, or pass --all")
    released = [n for n in names if course.folder("release", n).is_dir()
                and any(course.folder("release", n).iterdir())]
    if released and not args.force:
        raise ValueError(f"{', '.join(released)} already released to "
                         f"{course.root / 'release'}: pass --force to generate it again "
                         "(students who downloaded the old version keep it)")
    api = nbgrader_api(course)
    for name in names:
        _nbgrader(api.generate_assignment(name, force=True, create=True),
                  f"generate_assignment {name}")
        files = sorted(p.name for p in course.folder("release", name).iterdir())
        print(f"{name}: released {', '.join(files)} to {course.folder('release', name)}")
    return 0


def cmd_collect(course: Course, args: argparse.Namespace) -> int:
    from course_pkg.grading.collect import collect

    _known(course, [args.assignment])
    for line in collect(course, args.assignment, Path(args.downloads), args.pattern):
        print(line, flush=True)
    return 0


def cmd_autograde(course: Course, args: argparse.Namespace) -> int:
    _known(course, [args.assignment])
    if args.scheduler is None and args.workers > 1 and (
            len(args.student or course.students(args.assignment)) > 1):
        from course_pkg.grading import forkserver

        forkserver.start()  # the workers' imports, on the other core while this one reads
    from course_pkg.grading.pipeline import autograde
    from course_pkg.grading.progress import ProgressBar
    from course_pkg.grading.sandbox import Limits
    from course_pkg.grading.untrusted import one_line

    timeout = args.cell_timeout or _configured_timeout(course)
    limits = Limits(cell_timeout=timeout, wall_seconds=args.wall_seconds,
                    memory_bytes=args.memory_mb * 2**20)
    bar = ProgressBar(enabled=False if args.quiet else (True if args.progress else None))
    for folder in course.invalid_folders(args.assignment):
        print(f"skipped submitted/{one_line(repr(folder), 80)}: not a valid student id "
              "(letters, digits, '.', '_' and '-')", flush=True)

    def recorded(outcome: Any) -> None:
        bar.print(outcome.line())
        bar.advance(outcome)

    try:
        results = autograde(course, args.assignment, workers=args.workers, limits=limits,
                            force=args.force, students=args.student or None,
                            progress=recorded, sandboxed=not args.unsandboxed,
                            scheduler=args.scheduler, start=bar.start, stage=bar.stage,
                            workers_alive=bar.workers)
    finally:
        bar.stop()
    graded = sum(o.status == "graded" for o in results)
    kept = sum(o.unchanged for o in results)
    print(f"{args.assignment}: {len(results)} submissions, {graded} graded, "
          f"{len(results) - graded} not graded, {kept} unchanged since the last run")
    return _grader_faults(args.assignment, results)


def _grader_faults(assignment: str, results: list[Any]) -> int:
    """Say which limits held, and exit 1 when the grader failed someone (issue 14, item 6)."""
    held = sorted({o.limits for o in results if o.limits and not o.unchanged})
    for words in held:
        print(f"{assignment}: sandbox: {words}")
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
    _known(course, [args.assignment])
    from course_pkg.grading.withheld import feedback_config

    api = nbgrader_api(course, **feedback_config())  # pages without the hidden tests
    _nbgrader(api.generate_feedback(args.assignment, force=True), "generate_feedback")
    folder = course.root / "feedback"
    made = sorted(p.parent.name for p in folder.glob(f"*/{args.assignment}"))
    print(f"{args.assignment}: feedback for {len(made)} students in {folder}")
    return 0


def cmd_export(course: Course, args: argparse.Namespace) -> int:
    names = _known(course, args.assignment) if args.assignment else course.assignments()
    target = _writable(Path(args.to))
    _graded_somewhere(course, names)
    if args.format == "canvas":
        return _export_canvas(course, names, args, target)
    if args.roster:
        raise ValueError("--roster is for --format canvas")
    from course_pkg.grading.report import export_csv

    rows = export_csv(course, names, target)
    print(f"wrote {rows} rows to {target}")
    return 0


def _graded_somewhere(course: Course, names: list[str]) -> None:
    from course_pkg.grading.pipeline import outcomes

    if not course.gradebook.exists():
        raise ValueError(f"{course.gradebook} does not exist: release and grade first")
    if not any(outcomes(course, name) for name in names):
        raise ValueError(f"the gradebook has no submission of {', '.join(names)}: run `course "
                         "autograde` first")


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

    _known(course, [args.assignment])
    folder = Path(args.to) if args.to else course.root / "reports" / args.assignment
    _writable(folder / "report.md")
    path = class_report(course, args.assignment, folder)
    print(path.read_text())
    print(f"wrote {path} and {folder / 'mistakes.png'}")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("course_pkg")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _globals(suppress: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name (git's convention)."""
    parent = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    parent.add_argument("--course-dir", default=default,
                        help="the nbgrader course directory (default: . if it has "
                             "nbgrader_config.py, else ./assignments)")
    return parent


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``course`` (one sub-command per step of the workflow)."""
    top = argparse.ArgumentParser(prog="course", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  parents=[_globals(False)])
    top.add_argument("--version", action="version", version=f"course {_version()}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_globals(True)]

    p = sub.add_parser("release", parents=common, help="generate the student version "
                       "(nbgrader generate_assignment)")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--all", action="store_true", help="every assignment under source/")
    p.add_argument("--force", action="store_true",
                   help="generate again an assignment that is already released")
    p.set_defaults(run=cmd_release)

    p = sub.add_parser("collect", parents=common,
                       help="file an LMS download of submissions under submitted/")
    p.add_argument("assignment")
    p.add_argument("downloads", help="Canvas's 'Download Submissions' zip or its unpacked "
                   "folder, a folder of per-student folders, or <student>_<nb>.ipynb files")
    p.add_argument("--pattern", help="a regular expression for another LMS's file names, "
                   "with the named groups student_id and file_id (and optionally user_id, "
                   "late), as nbgrader's ZipCollectApp.named_regexp")
    p.set_defaults(run=cmd_collect)

    p = sub.add_parser("autograde", parents=common,
                       help="grade every submission, sandboxed and in parallel")
    p.add_argument("assignment")
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes of the embedded cluster (default 2); one "
                        "submission, or --workers 1, is graded in this process, without a "
                        "cluster")
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
    p.add_argument("--progress", action="store_true",
                   help="draw the progress bar on standard error even when it is not a "
                        "terminal (a log file)")
    p.add_argument("--unsandboxed", action="store_true",
                   help="grade without the operating-system sandbox (where bubblewrap cannot "
                        "run); every report line then says UNSANDBOXED")
    p.set_defaults(run=cmd_autograde)

    p = sub.add_parser("feedback", parents=common,
                       help="HTML feedback (nbgrader generate_feedback)")
    p.add_argument("assignment")
    p.set_defaults(run=cmd_feedback)

    p = sub.add_parser("export", parents=common, help="grades to CSV, with a status column, "
                       "or into the gradebook CSV that Canvas exports (--format canvas)")
    p.add_argument("--format", choices=("csv", "canvas"), default="csv",
                   help="csv: one row per student and assignment (default); canvas: fill the "
                        "roster's assignment columns")
    p.add_argument("--roster", help="the gradebook CSV exported from Canvas (--format canvas)")
    p.add_argument("--match", default="SIS Login ID",
                   help="the roster column that identifies a student: ID (the Canvas user id "
                        "that collect recorded from Canvas's zip) or a column holding "
                        "nbgrader's student ids (default: SIS Login ID)")
    p.add_argument("--assignment", action="append", help="only this assignment (repeatable)")
    p.add_argument("--to", default="grades.csv", help="the CSV file (grades.csv)")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("report", parents=common,
                       help="class report and plot of the most common mistakes")
    p.add_argument("assignment")
    p.add_argument("--to", help="output folder (default <course>/reports/<assignment>)")
    p.set_defaults(run=cmd_report)
    return top


INTERRUPTED = 130
"""The exit status of a command stopped by Ctrl-C (128 + SIGINT), as a shell reports it."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``course`` console script."""
    args = parser().parse_args(argv)
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", message=".*not in session.*")
    try:
        return args.run(_course_dir(args.course_dir), args)
    except KeyboardInterrupt:
        _quiet_exit()
        print(f"course {args.command}: interrupted; every result printed above is recorded "
              "(run the same command again to go on)", file=sys.stderr, flush=True)
        return INTERRUPTED
    except (ValueError, RuntimeError) as err:
        print(f"course {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        where = f" {err.filename}" if err.filename else ""
        print(f"course {args.command}: error: cannot use{where}: "
              f"{err.strerror or err}", file=sys.stderr)
        return 2


def _quiet_exit() -> None:
    """After Ctrl-C: no second interrupt, and no log or traceback from threads that stop."""
    import logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.disable(logging.CRITICAL)


if __name__ == "__main__":
    raise SystemExit(main())
