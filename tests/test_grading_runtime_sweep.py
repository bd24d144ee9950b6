"""A grading worker's prepared course lives in the grader's private runtime folder, never in
/tmp, and one left by a worker that was killed (SIGKILL: no atexit) is removed by the next
batch (issue 14, item 9; the closing note's leaked ``/tmp/course-grading-*`` folders).

Each test has a runtime folder of its own (``XDG_RUNTIME_DIR``), so that the sweep it runs
never meets another grader's folders.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from course_pkg.grading import task

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.grading

WORKER = """
import sys, time
from course_pkg.grading import task
root = task.claim_work_folder("ps1")
(root / "gradebook.db").write_bytes(b"a worker's private gradebook")
print(root, flush=True)
time.sleep(float(sys.argv[1]))
"""
"""A grading process as far as its prepared course: the folder claimed as ``_prepare``
claims it, then the process waits (to be killed, or to exit normally)."""


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    folder = tmp_path / "runtime"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    return {**os.environ, "XDG_RUNTIME_DIR": str(folder),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def start_worker(env: dict[str, str], seconds: float = 300) -> tuple[subprocess.Popen, Path]:
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(seconds)], env=env,
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    return worker, Path(worker.stdout.readline().strip())


def empty_course(base: Path) -> Path:
    """A course with the assignment ps1 and no submission: a batch that grades nothing."""
    from nbgrader.api import Gradebook

    (base / "source" / "ps1").mkdir(parents=True)
    with Gradebook(f"sqlite:///{base / 'gradebook.db'}") as gb:
        gb.add_assignment("ps1")
    return base


def test_a_killed_workers_course_is_swept_by_the_next_batch(runtime, tmp_path):
    killed, stale = start_worker(runtime)
    alive, live = start_worker(runtime)
    try:
        assert stale.parent == task.work_parent() == live.parent
        assert stale.is_relative_to(runtime["XDG_RUNTIME_DIR"])  # the private folder
        assert task.sweep() == []  # both hold their lock: nothing is touched
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert (stale / "gradebook.db").is_file()  # SIGKILL: its atexit never ran

        course = empty_course(tmp_path / "course")
        run = subprocess.run([str(BIN / "course"), "--course-dir", str(course), "autograde",
                              "ps1"], env=runtime, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert not stale.exists()
        assert live.is_dir()  # a grader still at work keeps its course
    finally:
        for process in (killed, alive):
            process.kill()
            process.wait()
    assert [p.name for p in task.sweep()] == [live.name]
    assert list(task.work_parent().iterdir()) == []


def test_a_worker_that_exits_removes_its_course_and_a_sweep_follows_no_link(runtime,
                                                                             tmp_path):
    worker, root = start_worker(runtime, seconds=0)
    assert worker.wait(timeout=60) == 0
    assert not root.exists()  # removed at its normal exit
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    (task.work_parent() / "ps1-link").symlink_to(victim)
    assert task.sweep() == []
    assert (victim / "keep.txt").read_text() == "keep"
