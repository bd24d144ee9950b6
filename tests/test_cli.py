"""The ``course`` command follows nbgrader's and git's conventions.

Exit status 2 on every error (an unknown assignment included) with one clean line and no
traceback; global options before or after the sub-command; ``--version``; plain text in
``--help``; ``release`` over a release asks for ``--force``; Ctrl-C (SIGINT to a running
``course autograde``) prints one line, exits 130 and keeps every finished result; the progress
bar's counts are the summary's, it says "starting N workers" while the cluster starts, and its
estimate grows when a worker dies.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_pkg.grading.progress import ProgressBar

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def course(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "course"), *args], env=ENV, capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def clean_error(result: subprocess.CompletedProcess, *says: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    for words in says:
        assert words in result.stderr, result.stderr


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """A course with ps1 released and a class of four: three solutions and a stub."""
    root = tmp_path_factory.mktemp("cli") / "course"
    root.mkdir()
    shutil.copy(ROOT / "assignments/nbgrader_config.py", root)
    shutil.copytree(ROOT / "assignments/source/ps1", root / "source/ps1")
    done = course("release", "ps1", "--course-dir", str(root))
    assert done.returncode == 0, done.stderr
    solution = nbformat.read(root / "source/ps1/ps1.ipynb", as_version=4)
    stub = nbformat.read(root / "release/ps1/ps1.ipynb", as_version=4)
    for i, notebook in enumerate((solution, solution, solution, stub)):
        folder = root / "submitted" / f"s{i}" / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / "ps1.ipynb")
    return root


def test_version_and_plain_help():
    version = course("--version")
    assert version.returncode == 0 and re.fullmatch(r"course \S+\n", version.stdout)
    for args in (("--help",), ("autograde", "--help"), ("collect", "--help")):
        shown = course(*args)
        assert shown.returncode == 0
        assert "``" not in shown.stdout and ":func:" not in shown.stdout, shown.stdout
    assert "--course-dir" in course("autograde", "--help").stdout


def test_usage_errors_exit_2(tmp_path):
    clean_error(course("no-such-command"))
    clean_error(course("autograde"))
    clean_error(course("export", "--course-dir", str(tmp_path)), "no source/ folder")


@pytest.mark.grading
def test_unknown_assignments_unwritable_paths_and_release_exit_2(released, tmp_path):
    where = ("--course-dir", str(released))
    for args in (("export", "--assignment", "ps33"), ("autograde", "ps33"),
                 ("feedback", "ps33"), ("report", "ps33"), ("collect", "ps33", str(tmp_path)),
                 ("export", "--format", "canvas", "--assignment", "ps33", "--roster", "r.csv")):
        clean_error(course(*args, *where), "no assignment 'ps33'")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    clean_error(course("export", "--to", str(blocker / "grades.csv"), *where),
                "cannot write", "is not a folder")
    clean_error(course("release", "ps1", *where), "already released", "--force")
    again = course("release", "ps1", "--force", *where)
    assert again.returncode == 0 and "ps1: released ps1.ipynb" in again.stdout, again.stderr


@pytest.mark.grading
def test_global_options_go_before_or_after_the_command(released):
    before = course("--course-dir", str(released), "autograde", "ps1", "--student", "s3")
    after = course("autograde", "ps1", "--student", "s3", "--course-dir", str(released))
    assert before.returncode == 0, before.stderr
    assert after.returncode == 0, after.stderr
    assert "s3: 0/" in before.stdout and "s3: 0/" in after.stdout
    assert "unchanged since the last run: grade kept" in after.stdout


@pytest.mark.grading
def test_ctrl_c_prints_one_line_exits_130_and_keeps_what_was_graded(released, tmp_path):
    copy = tmp_path / "course"
    shutil.copytree(released, copy)
    # a classmate whose first answer sleeps keeps the batch running when the interrupt comes
    # (four quick submissions may all be graded before it arrives)
    slow = nbformat.read(copy / "submitted" / "s0" / "ps1" / "ps1.ipynb", as_version=4)
    answer = next(c for c in slow.cells if c.metadata.get("nbgrader", {}).get("solution"))
    answer.source = "import time\ntime.sleep(120)\n" + answer.source
    (copy / "submitted" / "s9" / "ps1").mkdir(parents=True)
    nbformat.write(slow, copy / "submitted" / "s9" / "ps1" / "ps1.ipynb")
    # as from a terminal: a suite started as a background job passes SIGINT ignored to its
    # children (POSIX shells do so for asynchronous commands), and Ctrl-C would not reach it
    process = subprocess.Popen([str(BIN / "course"), "autograde", "ps1", "--workers", "2",
                                "--force", "--course-dir", str(copy)], env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stdout is not None
    first = process.stdout.readline()
    assert re.match(r"^s[0-3]: ", first), first
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, (out, err)
    assert err.strip().count("\n") == 0 and "interrupted" in err, err
    assert "Traceback" not in out + err
    student = first.split(":")[0]
    rerun = course("autograde", "ps1", "--student", student, "--course-dir", str(copy))
    assert "unchanged since the last run: grade kept" in rerun.stdout, rerun.stdout


@pytest.mark.grading
def test_the_progress_bar_counts_what_the_summary_counts(released, tmp_path):
    copy = tmp_path / "course"
    shutil.copytree(released, copy)
    broken = copy / "submitted" / "s4" / "ps1"
    broken.mkdir(parents=True)
    (broken / "ps1.ipynb").write_text("{not json")
    run = subprocess.run([str(BIN / "course"), "autograde", "ps1", "--workers", "2",
                          "--progress", "--course-dir", str(copy)], env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    summary = re.search(r"ps1: (\d+) submissions, (\d+) graded, (\d+) not graded", run.stdout)
    assert summary, run.stdout
    total, graded, failed = summary.groups()
    frames = [f for f in re.split(r"[\r\n]", run.stderr) if f.startswith("\x1b[2K[")]
    assert frames, run.stderr
    assert frames[-1].endswith(f"] {total}/{total}: {graded} graded, {failed} not graded, "
                               "done"), frames[-1]
    assert any("starting 2 workers" in f for f in frames), frames
    counts = [tuple(map(int, re.search(r"(\d+)/(\d+): (\d+) graded, (\d+) not", f).groups()))
              for f in frames]
    assert all(n == int(total) for _, n, _, _ in counts)  # the total never changes
    assert all(done == g + f for done, _, g, f in counts)
    assert [done for done, *_ in counts] == sorted(done for done, *_ in counts)


@pytest.mark.grading
def test_export_reads_the_gradebook_and_a_lost_grade_is_regraded(released, tmp_path):
    import csv

    from nbgrader.api import Gradebook

    copy = tmp_path / "course"
    shutil.copytree(released, copy)
    where = ("--course-dir", str(copy))
    first = course("autograde", "ps1", "--student", "s0", "--student", "s3", "--force", *where)
    assert first.returncode == 0, first.stderr
    with Gradebook(f"sqlite:///{copy / 'gradebook.db'}") as gb:
        gb.remove_submission("ps1", "s0")  # the journal still says "graded"
    export = course("export", "--to", str(tmp_path / "grades.csv"), *where)
    assert export.returncode == 0, export.stderr
    rows = {r["student_id"]: r for r in csv.DictReader((tmp_path / "grades.csv").open())}
    assert rows["s0"]["status"] == "not graded", rows["s0"]
    assert "no longer in the gradebook" in rows["s0"]["reason"]
    assert rows["s3"]["status"] == "graded" and float(rows["s3"]["score"]) == 0.0
    again = course("autograde", "ps1", "--student", "s0", *where)
    line = next(x for x in again.stdout.splitlines() if x.startswith("s0:"))
    assert "unchanged" not in line and re.match(r"s0: [1-9][0-9.]*/", line), again.stdout
    (copy / "gradebook.db").unlink()
    clean_error(course("export", "--to", str(tmp_path / "g2.csv"), *where), "does not exist")


def test_the_estimate_grows_when_a_worker_dies():
    bar = ProgressBar(io.StringIO(), enabled=True)
    alive = [2]
    bar.workers(lambda: alive[0])
    bar.start(10)
    bar.started -= 20.0  # two results in 20 s with two workers: 20 s per result and worker

    class Graded:
        status, unchanged = "graded", False

    bar.advance(Graded())
    bar.advance(Graded())
    both = bar.left()
    alive[0] = 1
    one = bar.left()
    bar.stop()
    assert both is not None and one is not None
    assert 70 < both < 90 and 150 < one < 170, (both, one)  # 8 left: 80 s, then 160 s
    assert "2/10: 2 graded, 0 not graded, 2:" in bar.line()


def test_the_bar_says_what_happens_before_the_first_result():
    bar = ProgressBar(io.StringIO(), enabled=True)
    bar.start(3)
    bar.stage("starting 2 workers")
    assert bar.line().endswith("0/3: 0 graded, 0 not graded, starting 2 workers")
    bar.stop()
    time.sleep(0)
