"""Grading on Dask: a real cluster on loopback, a worker killed mid-batch, a lost scheduler,
the progress bar, and the Canvas export.

The cluster is started as an instructor would: ``dask scheduler`` and two ``dask worker``
processes, each in a working folder of its own (the tasks carry all their data; nothing of the
course directory is shared). The same class is graded by the embedded local cluster for
reference.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_pkg.grading.manifest import FILE_NAME, Manifest
from course_pkg.grading.progress import ProgressBar

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
pytestmark = pytest.mark.grading


def course_cli(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "course"), "--course-dir", str(course), *args],
                            env=ENV, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"course {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scores(course: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student.id: float(s.score) for s in gb.find_assignment("ps1").submissions}


def report_heads(report: str) -> list[str]:
    return [line.split(":")[0] for line in report.splitlines()
            if line and not line.startswith((" ", "ps1:", "sandbox:"))]


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A released course with a class of ps1: solutions, stubs and a wrong sign."""
    root = tmp_path_factory.mktemp("cluster") / "course"
    root.mkdir()
    shutil.copy(ROOT / "assignments/nbgrader_config.py", root)
    shutil.copytree(ROOT / "assignments/source/ps1", root / "source/ps1")
    course_cli(root, "release", "ps1")
    solution = nbformat.read(root / "source/ps1/ps1.ipynb", as_version=4)
    stub = nbformat.read(root / "release/ps1/ps1.ipynb", as_version=4)
    wrong = nbformat.read(root / "source/ps1/ps1.ipynb", as_version=4)
    for cell in wrong.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "update":
            cell.source = "def update(w, x, y, mu):\n    return w + mu * dE_dw(w, x, y)"
    for i in range(10):
        folder = root / "submitted" / f"s{i:02d}" / "ps1"
        folder.mkdir(parents=True)
        nbformat.write((solution, stub, wrong)[i % 3], folder / "ps1.ipynb")
    return root


@pytest.fixture(scope="module")
def local(course, tmp_path_factory) -> Path:
    """The class graded on the embedded local cluster: the reference."""
    copy = tmp_path_factory.mktemp("local") / "course"
    shutil.copytree(course, copy)
    course_cli(copy, "autograde", "ps1", "--workers", "2", "--cell-timeout", "20")
    return copy


@pytest.fixture(scope="module")
def local_scores(local) -> dict[str, float]:
    return scores(local)


class Cluster:
    """``dask scheduler`` and ``dask worker`` processes on loopback, each in its own folder."""

    def __init__(self, base: Path) -> None:
        self.base, self.port = base, free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler = self._start("scheduler", ["scheduler", "--host", "127.0.0.1",
                                                   "--port", str(self.port), "--no-dashboard"])
        self.workers: list[subprocess.Popen] = []

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        folder = self.base / name
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        env = {**ENV, "TMPDIR": str(folder / "tmp")}
        return subprocess.Popen([str(BIN / "dask"), *args], cwd=folder, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def add_worker(self, name: str) -> None:
        self.workers.append(self._start(name, [
            "worker", self.address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
            "--local-directory", str(self.base / name), "--name", name]))

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            client.wait_for_workers(count, timeout=120)

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            self.kill(process)


def graded_while(course: Path, cluster: Cluster, action) -> subprocess.CompletedProcess:
    """Run ``course autograde`` on the cluster; call ``action()`` after its first report line."""
    process = subprocess.Popen([str(BIN / "course"), "--course-dir", str(course), "autograde",
                                "ps1", "--scheduler", cluster.address, "--cell-timeout", "20"],
                               env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    lines = [process.stdout.readline()]
    action()
    out, err = process.communicate(timeout=900)
    return subprocess.CompletedProcess(process.args, process.returncode, lines[0] + out, err)


def graded_on_a_cluster(course: Path, base: Path, workers: int, fault: str
                        ) -> tuple[Path, subprocess.CompletedProcess]:
    """A copy of ``course`` graded on a new loopback cluster of ``workers`` workers, whose
    ``fault`` ("worker" or "scheduler") is killed after the first report line."""
    target = base / "course"
    shutil.copytree(course, target)
    cluster = Cluster(base / "cluster")
    try:
        for i in range(workers):
            cluster.add_worker(f"worker-{i}")
        cluster.wait_for_workers(workers)
        victim = cluster.workers[0] if fault == "worker" else cluster.scheduler
        return target, graded_while(target, cluster, lambda: cluster.kill(victim))
    finally:
        cluster.stop()


def test_a_real_cluster_survives_a_killed_worker(course, local_scores, tmp_path):
    target, run = graded_on_a_cluster(course, tmp_path, 2, "worker")
    assert run.returncode == 0, run.stdout + run.stderr
    heads = report_heads(run.stdout)
    assert sorted(heads) == sorted(local_scores), run.stdout  # every student exactly once
    assert scores(target) == local_scores
    manifest = Manifest(target / FILE_NAME).entries("ps1")
    assert sorted(manifest) == sorted(local_scores)
    assert not (tmp_path / "cluster" / "worker-1" / "gradebook.db").exists()


def test_a_lost_scheduler_stops_the_batch_and_a_rerun_resumes(course, local_scores, tmp_path):
    target, run = graded_on_a_cluster(course, tmp_path, 1, "scheduler")
    assert run.returncode != 0
    assert "lost the Dask scheduler" in run.stderr and "run the same command again" in (
        run.stderr), run.stderr
    recorded = Manifest(target / FILE_NAME).entries("ps1")
    assert 1 <= len(recorded) < len(local_scores)
    rerun = course_cli(target, "autograde", "ps1", "--cell-timeout", "20")
    assert rerun.stdout.count("unchanged since the last run: grade kept") >= len(recorded)
    assert scores(target) == local_scores


def test_the_progress_bar_counts_failures_and_estimates_the_time_left():
    stream = io.StringIO()
    bar = ProgressBar(stream, enabled=True)
    bar.start(4)

    class Outcome:
        def __init__(self, status: str) -> None:
            self.status = status

    bar.advance(Outcome("graded"))
    time.sleep(0.01)
    bar.advance(Outcome("not graded"))
    assert "2/4: 1 graded, 1 not graded" in bar.line() and "left" in bar.line()
    bar.advance(Outcome("graded"))
    bar.advance(Outcome("graded"))
    assert stream.getvalue().endswith("4/4: 3 graded, 1 not graded, done\n")
    quiet = io.StringIO()
    ProgressBar(quiet).start(3)  # a StringIO is not a terminal: nothing is drawn
    assert quiet.getvalue() == ""


def test_canvas_export_fills_the_roster_and_lists_who_does_not_match(local, local_scores,
                                                                      tmp_path):
    graded = local
    students = sorted(local_scores)
    roster = tmp_path / "canvas.csv"
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "ps1 (1204)",
              "ps9 (1277)", "Current Score"]
    rows = [header, ["    Points Possible", "", "", "", "", "", "10", "(read only)"]]
    for i, student in enumerate(students[1:]):  # the first student has no roster row
        rows.append([f"Student {i}", str(100 + i), f"U{i}", student, "Sec 1", "", "7", "88"])
    rows.append(["Nobody, Absent", "999", "U999", "absent", "Sec 1", "", "", ""])
    with open(roster, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    upload = tmp_path / "upload.csv"
    run = course_cli(graded, "export", "--format", "canvas", "--roster", str(roster),
                     "--match", "SIS Login ID", "--to", str(upload))
    back = list(csv.reader(upload.open()))
    assert back[0] == header
    assert back[1][5] == "5" and back[1][6] == "10"  # points possible: ps1 filled, ps9 kept
    filled = {row[3]: row[5] for row in back[2:]}
    for student in students[1:]:
        assert float(filled[student]) == local_scores[student]
    assert filled["absent"] == "" and all(row[6] == "7" for row in back[2:-1])
    assert f"not in the roster (no row whose SIS Login ID is this id): {students[0]}" in (
        run.stdout)
    assert "no submission from 1 roster students: absent" in run.stdout
    bad = course_cli(graded, "export", "--format", "canvas", "--roster", str(roster),
                     "--match", "Email", "--to", str(upload), check=False)
    assert bad.returncode == 2 and "no column 'Email'" in bad.stderr


def _parent_command() -> str:
    return Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _loaded(names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in sys.modules]


def test_the_embedded_workers_are_forked_from_a_server_that_imported_the_grader():
    """Each worker is forked from one fork server that imported Dask, nbgrader and the grader,
    instead of importing them itself (see ``course_pkg.grading.forkserver``)."""
    from course_pkg.grading.cluster import connect
    from course_pkg.grading.forkserver import PRELOAD

    with connect(None, 2) as client:
        parents = client.run(_parent_command)
        loaded = client.run(_loaded, PRELOAD)
    assert len(parents) == 2 and len(set(parents.values())) == 1, parents
    assert all("forkserver" in command for command in parents.values()), parents
    assert all(names == list(PRELOAD) for names in loaded.values()), loaded


def _environment() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in (
        "MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
        "PYTHONHASHSEED")}


def test_the_forked_workers_have_the_environment_that_dask_gives_its_workers():
    """A worker forked from the fork server has the environment that Dask's nanny gives a
    worker it spawns: its ``pre-spawn-environ``, and one hash seed for all workers."""
    import dask

    from course_pkg.grading.cluster import connect

    wanted = {k: str(v) for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()}
    with connect(None, 2) as client:
        found = list(client.run(_environment).values())
    assert len(found) == 2 and found[0] == found[1], found
    seed = found[0].pop("PYTHONHASHSEED")
    assert seed is not None and seed != "0"
    assert found[0] == wanted


def test_a_large_batch_waits_for_the_workers_and_a_small_one_is_graded_here_meanwhile(
        monkeypatch):
    """While the embedded cluster starts, a small batch is graded in the instructor's process
    (its first results come as fast as a single one); a larger one waits for the workers, since
    grading here slows their start (see ``cluster.HERE_WHILE_STARTING``)."""
    import threading

    from course_pkg.grading import cluster

    here, there = [], []

    class Starter:  # the cluster is up after the first submission graded here
        def __init__(self, workers: int) -> None:
            self.ready = threading.Event()

        def count(self) -> int:
            return 0

        def client(self) -> str:
            return "client"

        def close(self) -> None:
            pass

    def grade_here(job, submission):
        here.append(submission["student"])
        Starter.last.ready.set()
        return {"student": submission["student"]}

    def make(workers: int) -> Starter:
        Starter.last = Starter(workers)
        return Starter.last

    monkeypatch.setattr(cluster, "_Starter", make)
    monkeypatch.setattr(cluster, "grade_here", grade_here)
    monkeypatch.setattr(cluster, "grade_all", lambda client, job, queue, done: there.extend(
        s["student"] for s in queue))
    monkeypatch.setattr(cluster, "_forget_prepared", lambda: None)
    for size, graded_here in ((2 * cluster.HERE_WHILE_STARTING, 1),
                              (2 * cluster.HERE_WHILE_STARTING + 1, 0)):
        here.clear()
        there.clear()
        submissions = [{"student": f"s{i}"} for i in range(size)]
        cluster.grade_batch(None, 2, {}, submissions, lambda s, a: None)
        assert len(here) == graded_here and len(here) + len(there) == size, (size, here, there)


def _sigint_blocked(task: str = "self") -> bool:
    status = Path(f"/proc/self/task/{task}/status" if task != "self" else "/proc/self/status")
    mask = next(line for line in status.read_text().splitlines() if line.startswith("SigBlk"))
    return bool(int(mask.split()[1], 16) & (1 << (signal.SIGINT - 1)))


def test_ctrl_c_reaches_the_main_thread_while_the_cluster_runs():
    """The cluster's threads in the instructor's process block SIGINT, so that the kernel
    delivers Ctrl-C to the main thread (which handles it even while it waits); the main thread
    and the workers do not block it."""
    import threading

    from course_pkg.grading.cluster import _Starter

    starter = _Starter(2)
    try:
        workers = starter.client().run(_sigint_blocked)
        threads = {t.name: _sigint_blocked(str(t.native_id)) for t in threading.enumerate()}
    finally:
        starter.close()
    assert threads["cluster"] and threads["IO loop"], threads
    assert not threads["MainThread"] and not _sigint_blocked()
    assert len(workers) == 2 and not any(workers.values()), workers


def test_a_batch_stops_at_the_next_submission_even_where_the_interrupt_was_lost(monkeypatch):
    """Ctrl-C stops the batch at the next submission even when Python's handler did not raise
    (here a handler that swallows it): the signal's byte on the wakeup pipe is checked."""
    from course_pkg.grading import cluster

    graded = []
    monkeypatch.setattr(cluster, "grade_here", lambda job, s: {"student": s["student"]})
    monkeypatch.setattr(cluster, "_forget_prepared", lambda: None)

    def done(submission, answer):
        graded.append(submission["student"])
        if len(graded) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)  # the lost exception
    try:
        with pytest.raises(KeyboardInterrupt):
            cluster.grade_batch(None, 1, {}, [{"student": f"s{i}"} for i in range(5)], done)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert graded == ["s0", "s1"]
    assert signal.set_wakeup_fd(-1) == -1  # the batch left no wakeup pipe behind
