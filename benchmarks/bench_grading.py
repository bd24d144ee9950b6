"""Throughput of the grading pipeline against nbgrader's own ``nbgrader autograde``.

Makes a class of submissions of one assignment (default: 100 of ps3: the solution, and every
third student with one exercise wrong, its answer negated), then times

* the baseline: ``nbgrader autograde <ps>`` in a copy of the course, which grades one notebook
  at a time (on a sample of the class when ``--baseline-sample`` is smaller than the class, the
  time is extrapolated linearly, and the results say so);
* the pipeline: ``course autograde <ps> --workers N`` on the whole class, every submission in
  its own bubblewrap sandbox with the tests run by the trusted grader;
* the sandbox alone: starting and stopping one sandboxed kernel, against the same kernel
  started as a plain process, to give the sandbox's cost per submission.

Both must give the same score to every student they both graded; the script checks it. It
writes the table to ``benchmarks/grading_results.md``. Run from the repository root::

    .venv/bin/python benchmarks/bench_grading.py                # 100 x ps3, sample of 20
    .venv/bin/python benchmarks/bench_grading.py --baseline-sample 100
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "grading_results.md"


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (``/proc/stat``: user, nice, system, irq,
    softirq, steal, over every core).

    Not the children's ``getrusage``: a sandbox's processes live in a pid namespace of their
    own, whose processes are reaped by its init, so their time never reaches the grader's
    accounts. On a shared machine this counts the others' work too: the results say the load.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


NEGATE = """

def _negate(value):
    if isinstance(value, dict):
        return {key: _negate(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_negate(item) for item in value)
    return -np.asarray(value)


def {name}(*args, **kwargs):
    return _negate(_right_{name}(*args, **kwargs))
"""


def mistake_cells(notebook) -> list[tuple[str, str]]:
    """(answer grade_id, replacement source): each answer function made wrong by negating
    what it returns (a student's wrong sign, written as a student would)."""
    found = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        defined = re.search(r"^def (\w+)\(", cell.source, re.MULTILINE)
        if meta.get("solution") and cell.cell_type == "code" and defined:
            name = defined.group(1)
            source = cell.source.replace(f"def {name}(", f"def _right_{name}(", 1)
            found.append((meta["grade_id"], source + NEGATE.replace("{name}", name)))
    return found


def sandbox_cost(repeats: int = 20) -> tuple[float, float, float, float]:
    """Median wall seconds and mean CPU seconds to start and stop one kernel, sandboxed and
    plain (the same kernel, without bubblewrap)."""
    import statistics

    from course_pkg.grading.sandbox import Limits, SandboxedKernel
    from course_pkg.grading.withheld import build

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        package = build(Path(tmp) / "package", [])
        for sandboxed in (True, False):
            walls, cpu = [], cpu_seconds()
            for i in range(repeats):
                started = time.monotonic()
                kernel = SandboxedKernel(package, {"a.ipynb": b"{}"}, Limits(),
                                         sandboxed=sandboxed, workdir=Path(tmp) / f"plain{i}")
                kernel.execute("import numpy")
                kernel.close()
                walls.append(time.monotonic() - started)
            results += [statistics.median(walls), (cpu_seconds() - cpu) / repeats]
    return tuple(results)  # type: ignore[return-value]


def make_class(course: Path, assignment: str, size: int) -> int:
    """Write ``size`` submissions (every third one a mistake); return how many are mistakes."""
    sources = sorted((course / "source" / assignment).glob("*.ipynb"))
    mistakes = 0
    for i in range(size):
        folder = course / "submitted" / f"student{i:03d}" / assignment
        folder.mkdir(parents=True)
        for path in sources:
            notebook = nbformat.read(path, as_version=4)
            variants = mistake_cells(notebook)
            if i % 3 == 2 and variants:
                gid, source = variants[(i // 3) % len(variants)]
                notebook = copy.deepcopy(notebook)
                for cell in notebook.cells:
                    if cell.metadata.get("nbgrader", {}).get("grade_id") == gid:
                        cell.source = source
                mistakes += 1
            nbformat.write(notebook, folder / path.name)
    return mistakes


def scores(course: Path, assignment: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student.id: float(s.score) for s in gb.find_assignment(assignment).submissions}


def released_course(base: Path, assignment: str) -> subprocess.CompletedProcess:
    """A course folder at ``base`` holding ``assignment``, released (``course release``)."""
    base.mkdir()
    shutil.copy(ROOT / "assignments" / "nbgrader_config.py", base)
    shutil.copytree(ROOT / "assignments" / "source" / assignment, base / "source" / assignment)
    return run([str(BIN / "course"), "--course-dir", str(base), "release", assignment], base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="ps3")
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--baseline-sample", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "course"
        done = released_course(base, args.assignment)
        if done.returncode != 0:
            print(done.stdout, done.stderr)
            return 1
        mistakes = make_class(base, args.assignment, args.students)
        baseline = Path(tmp) / "baseline"
        shutil.copytree(base, baseline)
        sample = sorted((baseline / "submitted").iterdir())[args.baseline_sample:]
        for folder in sample:
            shutil.rmtree(folder)

        loads = [load()]
        started, cpu = time.monotonic(), cpu_seconds()
        nb_run = run([str(BIN / "nbgrader"), "autograde", args.assignment], baseline)
        nb_seconds, nb_cpu = time.monotonic() - started, cpu_seconds() - cpu
        loads.append(load())
        started, cpu = time.monotonic(), cpu_seconds()
        ours = run([str(BIN / "course"), "--course-dir", str(base), "autograde",
                    args.assignment, "--workers", str(args.workers)], base)
        our_seconds, our_cpu = time.monotonic() - started, cpu_seconds() - cpu
        loads.append(load())
        if ours.returncode != 0:
            print(ours.stdout, ours.stderr)
            return 1
        nb_scores, our_scores = scores(baseline, args.assignment), scores(base, args.assignment)
        disagree = {s: (v, our_scores.get(s)) for s, v in nb_scores.items()
                    if our_scores.get(s) != v}
        graded = sum(1 for line in ours.stdout.splitlines()
                     if re.match(r"^\S+: [0-9.]+/[0-9.]+", line))
    box_wall, box_cpu, plain_wall, plain_cpu = sandbox_cost()

    n_base = min(args.baseline_sample, args.students)
    per_nb = nb_seconds / n_base
    extrapolated = n_base < args.students
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Grading throughput",
        "",
        f"{args.students} submissions of {args.assignment} ({mistakes} with a known mistake, "
        f"the rest the solution), on {os.cpu_count()} cores ({cpu}), Python "
        f"{platform.python_version()}. Command: `.venv/bin/python benchmarks/bench_grading.py "
        f"--assignment {args.assignment} --students {args.students} --baseline-sample "
        f"{args.baseline_sample} --workers {args.workers}`.",
        "",
        "| grader | submissions timed | wall s | wall s per submission | "
        f"wall s for {args.students} | CPU s per submission (whole machine) |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| `nbgrader autograde {args.assignment}` (baseline, one at a time) | {n_base} | "
        f"{nb_seconds:.1f} | {per_nb:.2f} | {per_nb * args.students:.1f}"
        f"{' (extrapolated)' if extrapolated else ''} | {nb_cpu / n_base:.2f} |",
        f"| `course autograde {args.assignment} --workers {args.workers}` (sandboxed) | "
        f"{args.students} | "
        f"{our_seconds:.1f} | {our_seconds / args.students:.2f} | {our_seconds:.1f} | "
        f"{our_cpu / args.students:.2f} |",
        "",
        f"Load average (1/5/15 min) before the baseline, between, and after the pipeline: "
        f"{', '.join(loads)} (the machine is shared; wall times grow with the load, CPU "
        f"times much less). On {os.cpu_count()} idle cores the pipeline needs at least "
        f"{our_cpu / (os.cpu_count() or 1):.0f} s of wall time for this class (its CPU time "
        f"divided by the cores).",
        "",
        f"Speed-up: {per_nb * args.students / our_seconds:.2f}x. The pipeline graded "
        f"{graded} of {args.students}; nbgrader exited with status {nb_run.returncode}. "
        f"Scores that differ between the two on the students both graded: "
        f"{len(disagree)}{' ' + str(disagree) if disagree else ''}.",
        "",
        f"The sandbox's cost per submission (start a kernel, import NumPy, stop it; median of "
        f"20 wall, mean CPU of the whole machine): {box_wall * 1000:.0f} ms wall and "
        f"{box_cpu * 1000:.0f} ms CPU under bubblewrap, against {plain_wall * 1000:.0f} ms wall "
        f"and {plain_cpu * 1000:.0f} ms CPU for the same kernel as a plain process: "
        f"{(box_wall - plain_wall) * 1000:+.0f} ms wall and {(box_cpu - plain_cpu) * 1000:+.0f} "
        "ms CPU per submission. Besides the sandbox, the pipeline runs pre-flight and the tests "
        "in the trusted grader (each call into the kernel is a round trip of plain data), "
        "which the baseline does not.",
    ]
    if extrapolated:
        lines += ["", f"The baseline was timed on {n_base} submissions and extrapolated "
                      f"linearly to {args.students} (nbgrader grades one notebook at a time)."]
    args.results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if not disagree else 1


if __name__ == "__main__":
    raise SystemExit(main())
