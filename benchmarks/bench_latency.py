"""Latency: how long one late submission, and the first result of a batch, take to come out.

What an instructor waits for, from the moment the command starts:

* ``course autograde <ps> --student <one>``: seconds until that student's report line is
  printed, and until the command exits;
* plain ``nbgrader autograde <ps> --student <one>`` (no sandbox, no pre-flight, no cluster)
  on a copy of the same course: seconds until it exits;
* ``course autograde <ps> --force`` on a small class (``--workers 2``): seconds until the first
  report line, and until the command exits.

Each contender runs in its own fresh process, the rounds are interleaved, and the table gives
medians with the load average before and after. ``--code DIR`` runs another copy of
``course_pkg`` (e.g. ``git archive <commit> course_pkg | tar -x -C DIR``: a frozen copy, since
a grading worker refuses a package that changed under it), and ``--before DIR`` a second copy
in the same interleaved rounds, to compare the code before and after a change.
Results go to ``benchmarks/latency_results.md`` under a section
named by ``--label`` (a section of the same label is replaced). Run from the repository root::

    git archive ce962e4 course_pkg | tar -x -C /tmp/before
    git archive HEAD course_pkg | tar -x -C /tmp/after
    .venv/bin/python benchmarks/bench_latency.py --code /tmp/after --before /tmp/before \
        --label "after, beside before" --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_grading import BIN, ROOT, load, make_class, released_course  # noqa: E402

RESULTS = ROOT / "benchmarks" / "latency_results.md"
REPORT_LINE = re.compile(r"^(\S+): ([0-9.]+/[0-9.]+|not graded)")


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds to the first report line, seconds to exit, all output) of one command."""
    started = time.monotonic()
    first = float("nan")
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if first != first and REPORT_LINE.match(line):  # the first report line (nan != nan)
            first = time.monotonic() - started
    process.wait()
    total = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n"
                           + "".join(lines[-20:]))
    return first, total, "".join(lines)


def environment(code: Path | None) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if code is not None:
        env["PYTHONPATH"] = str(code.resolve())
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="ps1")
    parser.add_argument("--students", type=int, default=6, help="size of the batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", type=Path, help="folder holding the course_pkg to measure")
    parser.add_argument("--before", type=Path,
                        help="folder holding an earlier course_pkg, measured in the same "
                             "interleaved rounds")
    parser.add_argument("--label", default="after")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    versions = {"this code": environment(args.code)}
    if args.before is not None:
        versions[f"before ({args.before})"] = environment(args.before)
    course_cmd = [str(BIN / "python"), "-c",
                  "from course_pkg.grading.cli import main; raise SystemExit(main())"]
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    loads = [load()]
    student = "student000"
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "course"
        done = released_course(base, args.assignment)
        if done.returncode != 0:
            print(done.stdout, done.stderr)
            return 1
        make_class(base, args.assignment, args.students)
        baseline = Path(tmp) / "baseline"
        shutil.copytree(base, baseline)
        one = ["autograde", args.assignment, "--student", student, "--force", "--quiet"]
        batch = ["autograde", args.assignment, "--force", "--quiet", "--workers", "2"]
        for _ in range(args.rounds):
            for name, env in versions.items():
                for what, words in (("one", one), ("batch", batch)):
                    first, total, _ = timed([*course_cmd, "--course-dir", str(base), *words],
                                            base, env)
                    times.setdefault((name, what), []).append((first, total))
            _, total, _ = timed([str(BIN / "nbgrader"), "autograde", args.assignment,
                                 "--student", student, "--force"], baseline,
                                versions["this code"])
            times.setdefault(("nbgrader", "one"), []).append((float("nan"), total))
    loads.append(load())
    section = table(args, times, loads, student)
    print(section)
    write_section(args.results, args.label, section)
    return 0


def table(args: argparse.Namespace, times: dict[tuple[str, str], list[tuple[float, float]]],
          loads: list[str], student: str) -> str:
    """The results as a Markdown section."""

    def med(values: list[float]) -> str:
        return "-" if all(v != v for v in values) else f"{statistics.median(values):.1f}"

    def row(what: str, pairs: list[tuple[float, float]]) -> str:
        firsts, totals = [a for a, _ in pairs], [b for _, b in pairs]
        rounds = ", ".join(f"{a:.1f}/{b:.1f}" if a == a else f"{b:.1f}" for a, b in pairs)
        return f"| {what} | {med(firsts)} | {med(totals)} | {rounds} |"

    code = f" --code {args.code}" if args.code else ""
    code += f" --before {args.before}" if args.before else ""
    lines = [
        f"## {args.label}",
        "",
        f"{args.assignment}, {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}, medians of {args.rounds} interleaved rounds, each "
        f"command a fresh process. Load average (1/5/15 min) before and after: "
        f"{', '.join(loads)}. Command: `.venv/bin/python benchmarks/bench_latency.py "
        f"--assignment {args.assignment} --students {args.students} --rounds {args.rounds} "
        f"--label {shlex.quote(args.label)}{code}`.",
        "",
        "| what | to the first grade (s) | to exit (s) | every round (grade/exit) |",
        "| --- | ---: | ---: | --- |",
    ]
    for (name, what), pairs in times.items():
        if name == "nbgrader":
            continue
        words = (f"`course autograde {args.assignment} --student {student}`" if what == "one"
                 else f"`course autograde {args.assignment} --workers 2`, {args.students} "
                      "submissions")
        lines.append(row(f"{words} ({name})", pairs))
    lines.append(row(f"plain `nbgrader autograde {args.assignment} --student {student}` "
                     "(unsandboxed)", times[("nbgrader", "one")]))
    return "\n".join(lines + [""])


def write_section(path: Path, label: str, section: str) -> None:
    """Put ``section`` into ``path``, replacing an earlier section of the same label."""
    head = ("# Latency of one submission\n\nWritten by `benchmarks/bench_latency.py`: seconds "
            "from the command's start to the grade, for one late submission and for the first "
            "result of a batch, beside plain nbgrader.\n\n")
    text = path.read_text() if path.exists() else head
    parts = re.split(r"(?m)^(?=## )", text)
    kept = [p for p in parts if not p.startswith(f"## {label}\n")]
    path.write_text("".join(kept).rstrip("\n") + "\n\n" + section)


if __name__ == "__main__":
    raise SystemExit(main())
