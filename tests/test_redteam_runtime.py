"""Red team against the runtime under a student's code (issue 14 items 3, 6, 8, 9; issue 15
item 7): where the Python environment lives, faults of the grader, identities, shared machines.

Every test grades tiny ps1 classes through the public ``course`` command, as an instructor
would: a scratch copy of the course with ps1 released once, submissions written under
``submitted/``, ``course autograde``. The attacks are notebooks a student could hand in; each
attack's source is written out here whole.

- An environment under ``/tmp`` inside a folder of mode 0700 (a clone there) grades the
  instructor's solution with full marks (item 6).
- A sandbox that cannot see the environment is "not graded: grader fault (what, how to fix
  it)" for every student, exits non-zero, and the next plain run grades exactly those; a
  student whose own code kills the kernel is graded, not a grader fault (item 6).
- On a hand-started Dask cluster: a worker without bubblewrap is a grader fault for what it
  was given; a worker with two threads grades one submission at a time, each sandbox under a
  user id of its own, so a submission holding 61 processes costs its classmates nothing; a
  submission that fills every writable file system it can find is stopped by each one's size
  (items 8, 5 of "what to build").
- Two unprivileged instructors grade two courses at once on one machine while a third user
  has planted folders and links where a grader might write; both get full marks, nothing of
  the third user's is written through, and each report line says which limits held (item 9;
  issue 15 item 7).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.grading

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CELL_TIMEOUT = "10"
FULL = 5.0  # ps1's points

# -- the notebooks ------------------------------------------------------------------------------
KILLS_ITS_KERNEL = """\
import os

def dE_dw(w, x, y):
    return 0.0

os.kill(os.getpid(), 9)  # a crash of my own making
"""

HOLDS_61_PROCESSES = """\
import subprocess

def dE_dw(w, x, y):
    return 0.0

sleepers = []
for _ in range(61):
    try:
        sleepers.append(subprocess.Popen(["sleep", "120"]))
    except OSError as err:
        print("refused after", len(sleepers), err)
        break
print("holding", len(sleepers), "processes")
"""

FILLS_EVERY_DISK = """\
import os

def dE_dw(w, x, y):
    return 0.0

def fill(path, chunk=b"x" * 2**20):
    written = 0
    try:
        with open(path, "wb") as out:
            for _ in range(600):
                out.write(chunk)
                out.flush()
                written += len(chunk)
    except OSError as err:
        return written, type(err).__name__
    return written, "no error"

for target in ["/big", "/opt/big", "/dev/big", "/dev/shm/big", "/tmp/big", "big",
               "/home/big"]:
    print("wrote", target, *fill(target))
"""


def solutions() -> dict[str, str]:
    """grade_id -> the instructor's solution, without the solution markers."""
    nb = json.loads((ROOT / "assignments/source/ps1/ps1.ipynb").read_text())
    found = {}
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            found[meta["grade_id"]] = "\n".join(
                line for line in "".join(cell["source"]).split("\n")
                if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)
    return found


def submit(course: Path, student: str, answers: dict[str, str] | None = None) -> None:
    """Hand in the released ps1 with ``answers`` (grade_id -> source); None: the solution."""
    answers = solutions() if answers is None else answers
    nb = json.loads((course / "release/ps1/ps1.ipynb").read_text())
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell["source"] = answers[gid]
    folder = course / "submitted" / student / "ps1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ps1.ipynb").write_text(json.dumps(nb))


def course_cli(course: Path, *args: str, python: Path = Path(sys.executable),
               env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
               timeout: float = 600) -> subprocess.CompletedProcess:
    """``course --course-dir COURSE ARGS`` run by ``python`` (its environment's ``course``)."""
    bin_dir = python.parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           **(env or {})}
    return subprocess.run([*prefix, str(python), str(bin_dir / "course"), "--course-dir",
                           str(course), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def scores(course: Path) -> dict[str, float]:
    with sqlite3.connect(course / "gradebook.db") as db:
        rows = db.execute(
            "SELECT student.id, COALESCE(SUM(grade.auto_score), 0) FROM submitted_assignment "
            "JOIN student ON student.id = submitted_assignment.student_id "
            "JOIN submitted_notebook ON submitted_notebook.assignment_id = "
            "submitted_assignment.id "
            "JOIN grade ON grade.notebook_id = submitted_notebook.id GROUP BY student.id")
        return {student: float(score) for student, score in rows}


def line_of(report: str, student: str) -> str:
    return next(line for line in report.splitlines() if line.startswith(f"{student}:"))


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """A course with ps1 released (copied for each test)."""
    course = tmp_path_factory.mktemp("released") / "course"
    (course / "source").mkdir(parents=True)
    shutil.copy(ROOT / "assignments/nbgrader_config.py", course)
    shutil.copytree(ROOT / "assignments/source/ps1", course / "source/ps1")
    done = course_cli(course, "release", "ps1")
    assert done.returncode == 0, done.stdout + done.stderr
    return course


def fresh(released: Path, where: Path) -> Path:
    shutil.copytree(released, where)
    return where


# -- item 6: the environment may be anywhere ---------------------------------------------------
def test_an_environment_under_tmp_in_a_private_folder_grades_full_marks(released, tmp_path):
    assert str(tmp_path).startswith(("/tmp/", "/var/tmp/")) or os.environ.get("TMPDIR")
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    clone_env = private / "clone" / ".venv"
    clone_env.parent.mkdir()
    copied = subprocess.run(["cp", "-al", sys.prefix, str(clone_env)], capture_output=True)
    if copied.returncode != 0:  # another file system: a real copy
        shutil.copytree(sys.prefix, clone_env, symlinks=True)
    course = fresh(released, tmp_path / "course")
    submit(course, "solution")
    python = clone_env / "bin" / "python"
    run = course_cli(course, "autograde", "ps1", "--cell-timeout", CELL_TIMEOUT, python=python)
    assert run.returncode == 0, run.stdout + run.stderr
    assert line_of(run.stdout, "solution").startswith(f"solution: {FULL:g}/{FULL:g}"), run.stdout
    assert scores(course) == {"solution": FULL}


# -- item 6: a grader fault is never a student's grade -----------------------------------------
def hiding_bwrap(folder: Path, hidden: str) -> Path:
    """A ``bwrap`` that drops the bind of ``hidden``: a sandbox that cannot see the environment,
    as the old mount order made of an environment under /tmp."""
    folder.mkdir(mode=0o755)  # the sandbox's own user runs it when the grader is root
    script = folder / "bwrap"
    script.write_text(f"""#!/bin/bash
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--ro-bind" ] && [ "$3" = "{hidden}" ]; then shift 3; continue; fi
  args+=("$1"); shift
done
exec {shutil.which("bwrap")} "${{args[@]}}"
""")
    script.chmod(0o755)
    return folder


@pytest.fixture
def reachable():
    """A scratch folder that other users may enter (pytest's own are 0700, and reset so by
    every pytest that starts): for what the sandbox's or another instructor's user runs."""
    folder = Path(tempfile.mkdtemp(prefix="course-redteam-runtime-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_sandbox_blind_to_the_environment_is_a_grader_fault_and_the_rerun_regrades_it(
        released, tmp_path, reachable):
    course = fresh(released, tmp_path / "course")
    submit(course, "solution")
    submit(course, "crasher", {"dE_dw": KILLS_ITS_KERNEL})
    blind = hiding_bwrap(reachable / "blind", sys.prefix)
    first = course_cli(course, "autograde", "ps1", "--workers", "1", "--cell-timeout",
                       CELL_TIMEOUT, env={"PATH": f"{blind}:{BIN}:{os.environ['PATH']}"})
    assert first.returncode == 1, first.stdout + first.stderr
    for student in ("solution", "crasher"):
        line = line_of(first.stdout, student)
        assert line.startswith(f"{student}: not graded: grader fault"), first.stdout
        assert f"the Python interpreter {sys.executable} is not visible inside the sandbox" in (
            line), line
        assert "make the interpreter's installation readable" in line  # how to fix it
    assert "grader fault" in first.stderr and "run the same command again" in first.stderr
    assert scores(course) == {}

    again = course_cli(course, "autograde", "ps1", "--workers", "1", "--cell-timeout",
                       CELL_TIMEOUT)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "grade kept" not in again.stdout  # neither is "unchanged"
    assert line_of(again.stdout, "solution").startswith(f"solution: {FULL:g}/{FULL:g}")
    crashed = again.stdout[again.stdout.index("crasher:"):]
    assert crashed.startswith("crasher: 0/5") and "grader fault" not in crashed, again.stdout
    assert "kernel died" in crashed or "kernel was stopped" in crashed, crashed
    assert scores(course) == {"solution": FULL, "crasher": 0.0}
    third = course_cli(course, "autograde", "ps1", "--workers", "1")
    assert third.returncode == 0 and third.stdout.count("grade kept") == 2, third.stdout


# -- items 8, 5, 6 on a hand-started Dask cluster ---------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*command: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(count, timeout=60)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_workers_refusing_then_two_threads_one_identity_per_sandbox_and_sized_disks(
        released, tmp_path):
    course = fresh(released, tmp_path / "course")
    submit(course, "honest_a")
    submit(course, "honest_b")
    submit(course, "forker", {"dE_dw": HOLDS_61_PROCESSES})
    submit(course, "filler", {"dE_dw": FILLS_EVERY_DISK})
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DASK_LOGGING__DISTRIBUTED":
           "error"}
    no_bwrap = tmp_path / "no-bwrap"
    no_bwrap.mkdir()
    scheduler = start(str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                      str(port), "--no-dashboard", env=env)
    workers: list[subprocess.Popen] = []
    try:
        # a worker without bubblewrap on its PATH: every task it runs is the grader's fault
        workers.append(start(str(BIN / "dask"), "worker", address, "--nthreads", "2",
                             "--no-dashboard", "--nworkers", "1",
                             env={**env, "PATH": f"{BIN}:{no_bwrap}"}))
        wait_for_workers(address, 1)
        refused = course_cli(course, "autograde", "ps1", "--scheduler", address,
                             "--cell-timeout", CELL_TIMEOUT)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        for student in ("honest_a", "honest_b", "forker", "filler"):
            line = line_of(refused.stdout, student)
            assert "not graded: grader fault" in line and "bwrap" in line, line
        stop(workers.pop())

        # a default-looking worker: one process, two threads
        workers.append(start(str(BIN / "dask"), "worker", address, "--nthreads", "2",
                             "--no-dashboard", "--nworkers", "1", env=env))
        wait_for_workers(address, 1)
        graded = course_cli(course, "autograde", "ps1", "--scheduler", address,
                            "--cell-timeout", CELL_TIMEOUT)
    finally:
        for process in [*workers, scheduler]:
            stop(process)
    report = graded.stdout
    assert graded.returncode == 0, report + graded.stderr
    assert "grade kept" not in report
    assert "one submission at a time per worker process" in report, report
    got = scores(course)
    assert got["honest_a"] == got["honest_b"] == FULL, report
    assert got["forker"] == got["filler"] == 0.0, report

    notebook = json.loads((course / "autograded/forker/ps1/ps1.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in notebook["cells"]
                      for o in c.get("outputs", []))
    assert "holding" in printed or "refused after" in printed, printed

    notebook = json.loads((course / "autograded/filler/ps1/ps1.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in notebook["cells"]
                      for o in c.get("outputs", []))
    written = {}
    for line in printed.splitlines():
        if line.startswith("wrote "):
            _, target, amount, error = line.split(" ", 3)
            written[target] = (int(amount), error)
    assert set(written) == {"/big", "/opt/big", "/dev/big", "/dev/shm/big", "/tmp/big", "big",
                            "/home/big"}, printed
    for target in ("/big", "/opt/big", "/dev/big", "/home/big"):
        assert written[target] == (0, "OSError"), (target, written[target])  # read-only
    assert written["/dev/shm/big"][0] <= 16 * 2**20 and written["/dev/shm/big"][1] == "OSError"
    for target in ("/tmp/big", "big"):  # 128 MiB each (the file-size limit, 64 MiB, first)
        assert 0 < written[target][0] <= 128 * 2**20 and written[target][1] == "OSError"


# -- item 9 and issue 15 item 7: two instructors and a hostile third user ----------------------
ENTER = """#!/bin/sh
# enter UID CMD...: run CMD as UID. The interpreter's installation may live under root's 0700
# home (as on the machine these tests were written on): in a private mount namespace, root's
# home is replaced by an empty one that holds only that installation.
set -e
exec unshare -m --propagation private sh -c '
set -e
uid=$1; shift
base=@BASE@
case "$base" in
  /root/*)
    mount --bind "$base" @STAGE@
    mount -t tmpfs -o mode=0755,size=1m tmpfs /root
    mkdir -p "$base"
    mount --bind @STAGE@ "$base";;
esac
exec setpriv --reuid "$uid" --regid "$uid" --clear-groups --inh-caps=-all "$@"
' sh "$@"
"""


def unused_uid(start: int) -> int:
    uid = start
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def test_two_instructors_grade_at_once_beside_a_hostile_user(released, reachable):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.skip("needs root to act as three users (unshare, setpriv)")
    tmp_path = reachable
    shared_tmp = tmp_path / "shared-tmp"  # the machine's world-writable /tmp, for these users
    shared_tmp.mkdir()
    shared_tmp.chmod(0o1777)
    stage = tmp_path / "stage"
    stage.mkdir()
    enter = tmp_path / "enter"
    enter.write_text(ENTER.replace("@BASE@", os.path.realpath(sys.base_prefix))
                     .replace("@STAGE@", str(stage)))
    enter.chmod(0o755)
    alice, bob, mallory = (unused_uid(23_000), unused_uid(23_100), unused_uid(23_200))

    victim = tmp_path / "victim.txt"  # a file of root's that a grader must never write through
    victim.write_text("root's own\n")
    as_mallory = [str(enter), str(mallory)]
    plant = ("set -e; cd " + str(shared_tmp) + "; mkdir -m 0777 dask-scratch-space; "
             f"ln -s {victim} dask-scratch-space/global.lock; "
             f"ln -s {victim} dask-scratch-space/purge.lock; "
             f"ln -s {victim} course-sandbox-slots; mkdir -m 0777 runtime-alice runtime-bob; "
             f"ln -s {victim} runtime-alice/course-grading; mkdir runtime-bob/course-grading")
    old_fixed_path = Path("/tmp/course-sandbox-slots")  # where the grader once kept its locks
    if not os.path.lexists(old_fixed_path):
        plant += f"; ln -s {victim} {old_fixed_path}"
    planted = subprocess.run([*as_mallory, "sh", "-c", plant], capture_output=True, text=True)
    assert planted.returncode == 0, planted.stderr

    runs = {}
    for name, uid, workers in (("alice", alice, "2"), ("bob", bob, "1")):
        home = tmp_path / f"home-{name}"
        home.mkdir(mode=0o700)
        course = fresh(released, home / "course")
        submit(course, "solution")
        submit(course, "solution_again")
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(home)], check=True)
        env = {"HOME": str(home), "USER": name, "LOGNAME": name, "TMPDIR": str(shared_tmp),
               # a runtime folder another user made: the grader must not use it
               "XDG_RUNTIME_DIR": str(shared_tmp / f"runtime-{name}")}
        command = [str(enter), str(uid), sys.executable, str(BIN / "course"),
                   "--course-dir", str(course), "autograde", "ps1", "--workers", workers,
                   "--cell-timeout", CELL_TIMEOUT]
        runs[name] = (course, subprocess.Popen(
            command, env={**env, "PATH": f"{BIN}:/usr/bin:/bin"}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    try:
        outputs = {name: process.communicate(timeout=600) for name, (_, process) in runs.items()}
    finally:
        if old_fixed_path.is_symlink() and os.readlink(old_fixed_path) == str(victim):
            old_fixed_path.unlink()
    for name, (course, process) in runs.items():
        out, err = outputs[name]
        assert process.returncode == 0, f"{name}:\n{out}\n{err}"
        assert scores(course) == {"solution": FULL, "solution_again": FULL}, out
        line = line_of(out, "solution")
        assert "limits per process only" in line or "control group" in out, out
    assert victim.read_text() == "root's own\n"
    assert (shared_tmp / "course-sandbox-slots").is_symlink()
    assert sorted(p.name for p in (shared_tmp / "dask-scratch-space").iterdir()) == [
        "global.lock", "purge.lock"]
    assert list((shared_tmp / "runtime-bob/course-grading").iterdir()) == []


def test_a_link_planted_as_the_batch_lock_is_refused(released, tmp_path):
    course = fresh(released, tmp_path / "course")
    submit(course, "solution")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    (course / ".grading" / "ps1").mkdir(parents=True)
    (course / ".grading" / "ps1" / "lock").symlink_to(victim)
    run = course_cli(course, "autograde", "ps1", "--workers", "1")
    assert run.returncode == 2 and "refusing the batch's lock file" in run.stderr, run.stderr
    assert victim.read_text() == "keep\n"
