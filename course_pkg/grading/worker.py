"""One grading worker: a long-lived process that autogrades submissions one at a time.

The pipeline starts a few of these (:class:`WorkerHandle`), one per core. Each worker owns a
private nbgrader course directory (a copy of the gradebook, the assignment's non-notebook
source files, its own ``submitted/`` and ``autograded/``), so workers never share an SQLite
file; the pipeline alone writes the instructor's gradebook, from the grades each worker reports.

Protocol: the pipeline writes one JSON task per line on the worker's stdin; the worker answers
one JSON line per task on a separate pipe (the kernels' stdout and stderr go to a log file, so
nothing a student prints can reach the protocol). ``python -m course_pkg.grading.worker``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from course_pkg.grading import sandbox
from course_pkg.grading.course import Course, load_config, read_submission

WORKER_MEMORY_BYTES = 6 * 2**30
"""Address-space cap of the worker itself (a runaway output stream cannot take the machine)."""


STARTUP_SECONDS = 20.0
"""Added to the first deadline of a fresh worker, which imports nbgrader before it grades."""

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class WorkerError(RuntimeError):
    """The worker died or ran past its wall-clock limit; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WorkerHandle:
    """The pipeline's side of one worker process (start, send a task, wait, kill, restart)."""

    def __init__(self, root: Path, course: Course, assignment: str,
                 limits: sandbox.Limits, job: Path) -> None:
        self.root, self.course, self.assignment, self.limits = root, course, assignment, limits
        self.job = job
        self.process: subprocess.Popen[bytes] | None = None
        self.reader: int | None = None
        self.buffer = b""
        self.startup_seconds = STARTUP_SECONDS

    def command(self, result_fd: int) -> list[str]:
        """The worker's command line; it answers on the pipe ``result_fd``."""
        command = [sys.executable, "-m", "course_pkg.grading.worker", "--root", str(self.root),
                   "--course", str(self.course.root), "--assignment", self.assignment,
                   "--limits", json.dumps(self.limits.to_json()), "--result-fd", str(result_fd)]
        return [*command, "--job", str(self.job)]

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "worker.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(self.command(write_fd), stdin=subprocess.PIPE,
                                        stdout=log, stderr=log, pass_fds=(write_fd,),
                                        start_new_session=True)
        log.close()
        os.close(write_fd)
        self.reader, self.buffer = read_fd, b""

    def grade(self, task: dict[str, Any]) -> dict[str, Any]:
        """Send one task and wait for its answer, at most ``limits.wall_seconds``."""
        allowance = 0.0
        if self.process is None or self.process.poll() is not None:
            self.start()
            allowance = self.startup_seconds
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write((json.dumps(task) + "\n").encode())
        self.process.stdin.flush()
        deadline = time.monotonic() + self.limits.wall_seconds + allowance
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise WorkerError(f"ran past the wall-clock limit of {self.limits.wall_seconds} s"
                                  " and was stopped")
            ready, _, _ = select.select([self.reader], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(self.reader, 1 << 16)
                if not chunk:
                    code = self.process.wait()
                    self.kill()
                    raise WorkerError(f"the grading process died (exit status {code}; out of "
                                      "memory?)")
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def kill(self) -> None:
        """Stop the worker and every process it started (the kernels included)."""
        if self.process is None:
            return
        import psutil

        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(self.process.pid)
            for child in parent.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        if self.reader is not None:
            os.close(self.reader)
        self.process, self.reader = None, None

    def stop(self) -> None:
        """Close the worker's stdin (it exits after its current task) and wait for it."""
        if self.process is None:
            return
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


class Worker:
    """The worker process's side: a private course directory and nbgrader's autograde."""

    def __init__(self, root: Path, main: Course, assignment: str, limits: sandbox.Limits,
                 job: dict[str, Any]) -> None:
        self.root, self.main, self.assignment, self.limits = root, main, assignment, limits
        self.job = job
        os.environ.update({name: "1" for name in THREAD_VARIABLES})
        self.course = Course(root / "course")
        self._build_course()
        self.api = self._api()

    def _build_course(self) -> None:
        course = self.course.root
        if course.exists():
            shutil.rmtree(course)
        course.mkdir(parents=True)
        shutil.copy2(self.main.gradebook, self.course.gradebook)
        source = self.main.root / "source" / self.assignment
        shutil.copytree(source, course / "source" / self.assignment,
                        ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))

    def _api(self) -> Any:
        from nbgrader.apps import NbGraderAPI
        from nbgrader.converters import Autograde
        from nbgrader.coursedir import CourseDirectory
        from nbgrader.preprocessors import Execute

        from course_pkg.grading.trusted import TrustedExecute

        config = load_config(self.main.root)
        config.CourseDirectory.root = str(self.course.root)
        config.CourseDirectory.db_url = self.course.db_url
        config.LimitOutput.max_lines = self.limits.max_output_lines
        config.OverwriteCells.add_missing_cells = True
        config.TrustedExecute.package = self.job["package"]
        config.TrustedExecute.spec = self.job["spec"]
        config.TrustedExecute.limits = self.limits.to_json()
        config.TrustedExecute.sandboxed = self.job["sandboxed"]
        config.TrustedExecute.slot = self.job["slot"]
        config.TrustedExecute.workdir = "" if self.job["sandboxed"] else str(self.root / "plain")
        config.Autograde.autograde_preprocessors = [
            TrustedExecute if p is Execute else p
            for p in Autograde.class_traits()["autograde_preprocessors"].default()]
        coursedir = CourseDirectory(config=config)
        return NbGraderAPI(coursedir=coursedir, config=config)

    def run(self, task: dict[str, Any]) -> dict[str, Any]:
        from course_pkg.grading.trusted import TrustedExecute

        student = task["student"]
        submitted = self.course.root / "submitted" / student
        autograded = self.course.root / "autograded" / student
        for folder in (submitted, autograded, self.root / "plain"):
            if folder.exists():
                shutil.rmtree(folder)
        shutil.copytree(task["staging"], submitted / self.assignment)
        TrustedExecute.events.clear()
        started = time.monotonic()
        outcome = self.api.autograde(self.assignment, student, force=True, create=True)
        answer: dict[str, Any] = {
            "student": student,
            "success": bool(outcome.get("success")),
            "seconds": round(time.monotonic() - started, 3),
            "error": (outcome.get("error") or "")[-2000:],
            "log": (outcome.get("log") or "")[-4000:],
            "events": list(TrustedExecute.events),
            "autograded": str(autograded / self.assignment),
        }
        if answer["success"]:
            answer["grades"] = read_submission(self.course.db_url, self.assignment, student)
        return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--course", type=Path, required=True)
    parser.add_argument("--assignment", required=True)
    parser.add_argument("--limits", required=True)
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("--job", type=Path, required=True,
                        help="JSON: the withheld package, the assignment's cells, sandboxing")
    args = parser.parse_args(argv)
    # `python -m` put the launching folder (often the course directory) first on sys.path;
    # the kernels' own sys.path must not see it either.
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.getcwd():
        sys.path.pop(0)
    args.root.mkdir(parents=True, exist_ok=True)
    os.chdir(args.root)
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    limits = sandbox.Limits(**json.loads(args.limits))
    job = json.loads(args.job.read_text())
    worker = Worker(args.root, Course(args.course), args.assignment, limits, job)
    with os.fdopen(args.result_fd, "w", buffering=1) as results:
        for line in sys.stdin:
            task = json.loads(line)
            try:
                answer = worker.run(task)
            except Exception:  # noqa: BLE001 - reported to the pipeline, the batch goes on
                answer = {"student": task.get("student"), "success": False,
                          "error": traceback.format_exc()[-2000:], "events": []}
            results.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
