"""Grading on Dask: throughput with 1 and 2 workers, the scheduler's cost per task, and a
projection for a large class on a cluster.

* Throughput: ``course autograde <ps> --workers W`` (the embedded local cluster) on the same
  class, for W = 1 and 2, wall clock and CPU time of every process involved.
* Scheduler overhead: 2,000 empty tasks through the same kind of local cluster, timed from the
  first submit to the last result (what Dask adds per task, beside the grading itself).
* Projection for 10,000 submissions on 50 workers of 4 cores: from the measured CPU seconds
  per submission, assuming one worker process per core (200 processes) and tasks that use
  their core fully, plus the scheduler's per-task cost paid serially (an upper bound), plus
  one worker's start-up (importing nbgrader and building its private course folder).

Writes ``benchmarks/cluster_results.md``. Run from the repository root::

    .venv/bin/python benchmarks/bench_cluster.py                 # 24 x ps3
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_grading import (  # noqa: E402
    BIN,
    ROOT,
    cpu_seconds,
    load,
    make_class,
    released_course,
    run,
)

RESULTS = ROOT / "benchmarks" / "cluster_results.md"


def _noop(i: int) -> int:
    return i


def scheduler_overhead(tasks: int = 2000) -> float:
    """Seconds per empty task through a local cluster of 2 worker processes."""
    from course_pkg.grading.cluster import connect

    with connect(None, 2) as client:
        client.gather(client.map(_noop, range(50), pure=False))  # warm up
        started = time.monotonic()
        client.gather(client.map(_noop, range(tasks), pure=False))
        return (time.monotonic() - started) / tasks


def startup_seconds() -> float:
    """Wall seconds for a fresh embedded cluster to grade nothing but start its workers."""
    from course_pkg.grading.cluster import connect

    started = time.monotonic()
    with connect(None, 1) as client:
        client.submit(_noop, 0).result()
    return time.monotonic() - started


def record_seconds(course: Path, assignment: str, count: int = 200) -> float:
    """Seconds for the instructor's process to record one result: the gradebook row, the
    graded notebook and the manifest entry, measured on ``count`` copies of a real result."""
    import nbformat
    from nbgrader.api import Gradebook

    from course_pkg.grading.course import Course, read_submission, write_submission
    from course_pkg.grading.manifest import FILE_NAME, Manifest

    course = Course(course)
    student = sorted(p.name for p in (course.root / "autograded").iterdir())[0]
    grades = read_submission(course.db_url, assignment, student)
    notebook = nbformat.read(next(course.folder("autograded", assignment, student).glob(
        "*.ipynb")), as_version=4)
    manifest = Manifest(course.root / FILE_NAME)
    entry = manifest.get(assignment, student)
    with Gradebook(course.db_url) as gb:      # one for the batch, as the pipeline opens it
        started = time.monotonic()
        for i in range(count):
            name = f"copy{i:05d}"
            write_submission(gb, assignment, name, grades)
            target = course.folder("autograded", assignment, name)
            target.mkdir(parents=True)
            nbformat.write(notebook, target / f"{assignment}.ipynb")
            manifest.put(assignment, name, entry)
        return (time.monotonic() - started) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="ps3")
    parser.add_argument("--students", type=int, default=24)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "course"
        released_course(base, args.assignment)
        make_class(base, args.assignment, args.students)
        for workers in (1, 2):
            course = Path(tmp) / f"w{workers}"
            shutil.copytree(base, course)
            before, started, cpu = load(), time.monotonic(), cpu_seconds()
            done = run([str(BIN / "course"), "--course-dir", str(course), "autograde",
                        args.assignment, "--workers", str(workers), "--quiet"], course)
            wall, used = time.monotonic() - started, cpu_seconds() - cpu
            if done.returncode != 0:
                print(done.stdout, done.stderr)
                return 1
            rows.append((workers, wall, used, before))
        recording = record_seconds(Path(tmp) / "w2", args.assignment)
    overhead = scheduler_overhead()
    startup = startup_seconds()
    cpu_each = rows[0][2] / args.students
    big, cores = 10_000, 50 * 4
    grading = big * cpu_each / cores + big * overhead
    projected = max(grading, big * recording) + startup
    bottleneck = ("the instructor's process, which records the results one at a time"
                  if big * recording > grading else "the workers")
    lines = [
        "# Grading on Dask",
        "",
        f"{args.students} submissions of {args.assignment} (every third with one answer "
        f"wrong), on {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}, each submission in its own bubblewrap sandbox. Command: "
        f"`.venv/bin/python benchmarks/bench_cluster.py --students {args.students}`. The "
        "machine is shared: wall times grow with its load; CPU times much less.",
        "",
        "| workers | wall s | submissions per minute | CPU s per submission | load before |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]
    for workers, wall, used, before in rows:
        lines.append(f"| {workers} | {wall:.1f} | {60 * args.students / wall:.1f} | "
                     f"{used / args.students:.2f} | {before} |")
    lines += [
        "",
        f"Speed-up from 1 to 2 workers: {rows[0][1] / rows[1][1]:.2f}x. The wall times include "
        f"starting the embedded cluster and, in each worker, importing nbgrader and building "
        f"its private course folder: {startup:.1f} s for a cluster of one worker to start and "
        "run one empty task.",
        "",
        f"Scheduler overhead: {overhead * 1000:.2f} ms per task (2,000 empty tasks through a "
        "local cluster of 2 worker processes, submit to last result).",
        "",
        f"Projection for {big:,} submissions on 50 workers of 4 cores: {big:,} x "
        f"{cpu_each:.2f} CPU s per submission / {cores} cores = {big * cpu_each / cores:.0f} s "
        f"of grading, plus {big:,} x {overhead * 1000:.2f} ms of scheduler time if it were "
        f"paid serially = {big * overhead:.0f} s: {grading:.0f} s on the workers. The "
        f"instructor's process records each result as it arrives ({recording * 1000:.0f} ms "
        f"each, measured on 200 copies of a real result: gradebook row, graded notebook, "
        f"manifest entry), {big * recording:.0f} s for {big:,}, overlapping the grading. The "
        f"batch takes the longer of the two plus {startup:.0f} s of start-up: about "
        f"{projected / 60:.0f} minutes, set by {bottleneck}. It assumes one worker process per "
        "core and CPU-bound tasks, as measured here; it does not model a slower network, which "
        "only carries the notebooks (tens of kB each).",
    ]
    args.results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
