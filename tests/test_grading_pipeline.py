"""The instructor pipeline end to end, in a temporary copy of the course directory.

``course release --all`` generates every assignment; then one class of ps1 submissions is built
programmatically: the solution, the untouched stub, every known mistake of the checks' mistake
tables (written as a student would write it), and the bad cases (an infinite loop, an exception
at import, corrupted and truncated JSON, a notebook of another assignment, deleted, edited,
duplicated, re-typed and forged test cells, huge output, a memory hog, code that redefines what
the tests call, patches NumPy before or during a test, reads or rewrites files outside its
folder, or ships a ``numpy.py``). ``course autograde`` grades the class in the sandbox; the
tests check every student's score in the gradebook, the line the report gives each bad case,
the feedback line of each mistake, the exported CSV, the class report, and that a rerun (also
after a crash) keeps every grade. ``tests/test_redteam.py`` attacks the grader itself.
"""

from __future__ import annotations

import copy
import csv
import html
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_pkg.checks import identity_sigmoid as ps1_checks
from course_pkg.grading.course import Course, read_submission, write_submission
from course_pkg.grading.manifest import FILE_NAME, Manifest
from course_pkg.grading.pipeline import _Recorder, outcomes
from course_pkg.grading.preflight import assignment_spec

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "assignments"
BIN = Path(sys.executable).parent
CELL_TIMEOUT = 8

# ps1's answer cells, in order, with the test cell that checks each and its mistake table.
EXERCISES = [
    ("dE_dw", "test_dE_dw", "DE_DW_MISTAKES"),
    ("update", "test_update", "UPDATE_MISTAKES"),
    ("train", "test_train", "TRAIN_MISTAKES"),
]
MISTAKES = [(answer, test, table, tag) for answer, test, table in EXERCISES
            for tag in getattr(ps1_checks, table)]


def course_cli(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([str(BIN / "course"), "--course-dir", str(course), *args], env=env,
                            capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"course {' '.join(args)} failed:\n{result.stdout}\n"
                             f"{result.stderr}")
    return result


# -- building submissions ---------------------------------------------------------------------
def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def replace_cell(nb, gid: str, source: str):
    nb = copy.deepcopy(nb)
    [cell] = [c for c in nb.cells if grade_id(c) == gid]
    cell.source = source
    return nb


# Each wrong dE/dw of ps1's mistake table, as a student would write it (the checks, which hold
# the table, are not in the sandbox).
WRONG_GRADIENTS = {
    "S' missing": "(A(w * x) - y) * x",
    "S' of a instead of z": "(A(w * x) - y) * x * A(A(w * x)) * (1 - A(A(w * x)))",
    "sign flipped": "-(A(w * x) - y) * x * A(w * x) * (1 - A(w * x))",
    "input missing": "(A(w * x) - y) * A(w * x) * (1 - A(w * x))",
}


def mistake_source(answer: str, table: str, tag: str) -> str:
    """The answer cell ``answer`` written with the mistake ``tag`` (every table of ps1 is a
    wrong gradient, used by the update and the training loop built on it)."""
    gradient = f"def _gradient(w, x, y):\n    return {WRONG_GRADIENTS[tag]}\n"
    step = "def _step(w, x, y, mu):\n    return w - mu * _gradient(w, x, y)\n"
    return gradient + {
        "dE_dw": "dE_dw = _gradient",
        "update": step + "update = _step",
        "train": step + ("def train(w0, mu, steps, xs=(0.0, 1.0)):\n    path = [float(w0)]\n"
                         "    for i in range(steps):\n        x = xs[i % len(xs)]\n"
                         "        path.append(_step(path[-1], x, x, mu))\n"
                         "    return np.array(path)"),
    }[answer]


def append_cell(nb, source: str, **metadata):
    nb = copy.deepcopy(nb)
    nb.cells.append(nbformat.v4.new_code_cell(source, metadata=metadata))
    return nb


def write(course: Path, student: str, nb=None, raw: bytes | None = None,
          name: str = "ps1.ipynb", extra: dict[str, str] | None = None) -> None:
    folder = course / "submitted" / student / "ps1"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if raw is not None:
        (folder / name).write_bytes(raw)
    elif nb is not None:
        nbformat.write(nb, folder / name)
    for filename, text in (extra or {}).items():
        (folder / filename).write_text(text)


def build_class(course: Path) -> dict[str, dict]:
    """Write every submission; return what each must get: ``score`` (None: not graded),
    and the substrings its report line must contain."""
    solution = nbformat.read(course / "source/ps1/ps1.ipynb", as_version=4)
    stub = nbformat.read(course / "release/ps1/ps1.ipynb", as_version=4)
    points = {test: 0.0 for _, test, _ in EXERCISES}
    for cell in solution.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and grade_id(cell) in points:
            points[grade_id(cell)] = float(meta["points"])
    full = sum(points.values())
    before = {test: sum(list(points.values())[:i]) for i, (_, test, _) in enumerate(EXERCISES)}
    wrong_gradient = mistake_source("dE_dw", "DE_DW_MISTAKES", "S' missing")
    main = course.resolve()
    expected: dict[str, dict] = {}

    def case(student, score, *says, nb=None, **kw):
        write(course, student, nb, **kw)
        expected[student] = {"score": score, "says": says}

    case("solution", full, nb=solution)
    case("solution_again", full, nb=solution)
    case("stub", 0.0, "[mistake: not implemented]", nb=stub)
    for answer, test, table, tag in MISTAKES:
        slug = "".join(ch if ch.isalnum() else "_" for ch in tag).strip("_")
        case(f"mistake_{answer}_{slug}", before[test], f"{test} failed: [mistake: {tag}]",
             nb=replace_cell(solution, answer, mistake_source(answer, table, tag)))
        expected[f"mistake_{answer}_{slug}"]["mistake"] = (test, tag)

    case("infinite_loop", full - points["test_train"], "stopped at the time limit",
         nb=replace_cell(solution, "train", "while True:\n    pass"))
    import_error = copy.deepcopy(solution)
    import_error.cells.insert(0, nbformat.v4.new_code_cell("import a_module_that_does_not_exist"))
    import_error = replace_cell(import_error, "dE_dw", "import another_missing_module\n" +
                                next(c.source for c in solution.cells if grade_id(c) == "dE_dw"))
    case("exception_at_import", 0.0, "test_dE_dw failed", nb=import_error)
    good_bytes = (course / "submitted/solution/ps1/ps1.ipynb").read_bytes()
    case("corrupted_json", None, "corrupted notebook ps1.ipynb", raw=b"\x89PNG\x00\xff not json")
    case("truncated_json", None, "invalid JSON", raw=good_bytes[: len(good_bytes) // 2])
    other = nbformat.read(course / "release/ps2/ps2.ipynb", as_version=4)
    case("other_assignment", None, "none of the assignment's cells", nb=other)
    case("no_notebook", None, "no notebook named ps1.ipynb", raw=b"my answers", name="a.txt")

    deleted = copy.deepcopy(solution)
    deleted.cells = [c for c in deleted.cells if grade_id(c) != "test_update"]
    case("deleted_test", full, "test_update was deleted: restored", nb=deleted)
    case("edited_test", 0.0, "test_dE_dw was edited", nb=replace_cell(
        replace_cell(solution, "dE_dw", wrong_gradient), "test_dE_dw", "pass  # all good"))
    duplicated = copy.deepcopy(solution)
    [test_cell] = [c for c in duplicated.cells if grade_id(c) == "test_train"]
    duplicated.cells.append(copy.deepcopy(test_cell))
    duplicated.cells[-1]["id"] = "copy-of-test-train"  # Jupyter gives a copy a new cell id
    case("duplicated_test", full, "test_train appears 2 times", nb=duplicated)
    retyped = replace_cell(solution, "update", mistake_source("update", "UPDATE_MISTAKES",
                                                              "sign flipped"))
    [test_cell] = [c for c in retyped.cells if grade_id(c) == "test_update"]
    test_cell.cell_type = "markdown"
    del test_cell["outputs"], test_cell["execution_count"]
    case("retyped_test", before["test_update"], "test_update was changed to markdown",
         nb=retyped)
    forged = append_cell(solution, "pass", nbgrader={
        "grade": True, "solution": False, "locked": True, "points": 50, "grade_id": "test_bonus",
        "schema_version": 3})
    case("forged_test", full, "not in the assignment: test_bonus", nb=forged)

    case("huge_output", full, "output cut",
         nb=append_cell(solution, "for _ in range(200):\n    print('x' * 50_000)"))
    case("memory_hog", full, "ran out of memory",
         nb=append_cell(solution, "hog = bytearray(8 * 2**30)"))
    case("redefines_check", 0.0, "test_dE_dw failed: [mistake: S' missing]",
         nb=replace_cell(solution, "dE_dw", wrong_gradient +
                         "\ndef check_dE_dw(*args, **kwargs):\n    return None"))
    case("patches_numpy", 0.0, "test_dE_dw failed: [mistake: S' missing]",
         nb=replace_cell(solution, "dE_dw", wrong_gradient +
                         "\nnp.isclose = lambda *args, **kwargs: True"
                         "\nnp.allclose = lambda *args, **kwargs: True"))
    case("patches_during_test", 0.0, "test_dE_dw failed: [mistake: unknown]", nb=replace_cell(
        solution, "dE_dw", "def dE_dw(w, x, y):\n    import numpy\n"
        "    numpy.isclose = lambda *args, **kwargs: numpy.True_\n"
        "    numpy.allclose = lambda *args, **kwargs: True\n    return 0.0"))
    probe = "\n".join([
        "import os",
        f"for target in ['../../../../gradebook.db', {str(main / 'gradebook.db')!r},",
        f"               {str(main / 'source/ps1/ps1.ipynb')!r}]:",
        "    try:",
        "        print(open(target, 'rb').read(4))",
        "    except OSError as err:",
        "        print('refused', err)",
        "for action in (lambda: os.listdir(" + repr(str(main / "submitted")) + "),",
        "               lambda: open(" + repr(str(main / "gradebook.db")) + ", 'ab'),",
        "               lambda: os.remove(" + repr(str(main / "nbgrader_config.py")) + "),",
        "               lambda: os.system('ls /')):",
        "    try:",
        "        action()",
        "    except OSError as err:",
        "        print('refused', err)",
    ])
    case("reads_files", full, nb=append_cell(solution, probe))
    case("ships_numpy", full, "ignored files that are not part of the assignment: numpy.py",
         nb=solution, extra={"numpy.py": "raise SystemExit('shadowed numpy')\n"})
    return expected


# -- the class ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("grading") / "course"
    course.mkdir()
    shutil.copy(COURSE / "nbgrader_config.py", course)
    shutil.copytree(COURSE / "source", course / "source")
    released = course_cli(course, "release", "--all")
    expected = build_class(course)
    started = time.monotonic()
    run = course_cli(course, "autograde", "ps1", "--workers", "2", "--cell-timeout",
                     str(CELL_TIMEOUT), "--memory-mb", "1024")
    seconds = time.monotonic() - started
    return {"course": course, "expected": expected, "released": released.stdout,
            "report": run.stdout, "seconds": seconds}


def gradebook_scores(course: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student.id: float(s.score) for s in gb.find_assignment("ps1").submissions}


def report_block(report: str, student: str) -> str:
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{student}:"))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith("    - "):
            break
        block.append(line)
    return "\n".join(block)


@pytest.mark.grading
def test_release_generates_every_assignment(graded):
    course = graded["course"]
    for source in sorted((course / "source").iterdir()):
        released = course / "release" / source.name
        for notebook in source.glob("*.ipynb"):
            text = (released / notebook.name).read_text()
            assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert f"{source.name}: released" in graded["released"]


@pytest.mark.grading
def test_every_student_gets_the_score_their_own_code_earned(graded):
    course, expected = graded["course"], graded["expected"]
    scores = gradebook_scores(course)
    for student, want in expected.items():
        if want["score"] is None:
            assert scores.get(student, 0.0) == 0.0, student
        else:
            assert scores[student] == pytest.approx(want["score"]), (
                student, report_block(graded["report"], student))


@pytest.mark.grading
def test_each_submission_has_a_report_line_saying_what_happened(graded):
    for student, want in graded["expected"].items():
        block = report_block(graded["report"], student)
        if want["score"] is None:
            assert block.startswith(f"{student}: not graded: "), block
        else:
            assert "not graded" not in block.splitlines()[0], block
        for phrase in want["says"]:
            assert phrase in block, (phrase, block)


@pytest.mark.grading
def test_each_mistake_is_named_in_the_outcome_and_the_feedback(graded):
    course = graded["course"]
    assert course_cli(course, "feedback", "ps1").returncode == 0
    recorded = {o.student: o for o in outcomes(Course(course), "ps1")}
    for student, want in graded["expected"].items():
        if "mistake" not in want:
            continue
        test, tag = want["mistake"]
        assert recorded[student].mistakes[test] == tag, (student, recorded[student].mistakes)
        page = html.unescape((course / "feedback" / student / "ps1" / "ps1.html").read_text())
        assert f"[mistake: {tag}]" in page, student


@pytest.mark.grading
def test_export_writes_scores_and_why_a_submission_was_not_graded(graded, tmp_path):
    course = graded["course"]
    target = tmp_path / "grades.csv"
    course_cli(course, "export", "--assignment", "ps1", "--to", str(target))
    rows = {row["student_id"]: row for row in csv.DictReader(target.open())}
    assert set(rows) == set(graded["expected"])
    for student, want in graded["expected"].items():
        row = rows[student]
        if want["score"] is None:
            assert row["status"] == "not graded" and row["reason"], row
        else:
            assert row["status"] == "graded" and float(row["score"]) == want["score"], row


@pytest.mark.grading
def test_class_report_counts_mistakes_and_draws_them(graded, tmp_path):
    course = graded["course"]
    course_cli(course, "report", "ps1", "--to", str(tmp_path))
    text = (tmp_path / "report.md").read_text()
    assert (tmp_path / "mistakes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "- test_dE_dw: " in text and "not implemented" in text
    not_graded = sum(w["score"] is None for w in graded["expected"].values())
    assert f"{not_graded} not graded" in text


@pytest.mark.grading
def test_a_rerun_keeps_every_grade_and_regrades_only_what_changed(graded):
    course = graded["course"]
    before = gradebook_scores(course)
    rerun = course_cli(course, "autograde", "ps1", "--cell-timeout", str(CELL_TIMEOUT))
    total = len(graded["expected"])
    assert f"{total} unchanged since the last run" in rerun.stdout, rerun.stdout
    assert gradebook_scores(course) == before
    stub = nbformat.read(course / "release/ps1/ps1.ipynb", as_version=4)
    write(course, "solution_again", stub)
    rerun = course_cli(course, "autograde", "ps1", "--cell-timeout", str(CELL_TIMEOUT))
    assert f"{total - 1} unchanged since the last run" in rerun.stdout, rerun.stdout
    after = gradebook_scores(course)
    assert after.pop("solution_again") == 0.0
    before.pop("solution_again")
    assert after == before


@pytest.mark.grading
def test_a_crash_mid_batch_loses_nothing(graded):
    course = graded["course"]
    solution = nbformat.read(course / "source/ps1/ps1.ipynb", as_version=4)
    late = [f"late_{i}" for i in range(4)]
    for student in late:
        write(course, student, solution)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    process = subprocess.Popen([str(BIN / "course"), "--course-dir", str(course), "autograde",
                                "ps1", "--workers", "1"], stdout=subprocess.PIPE, text=True,
                               env=env, start_new_session=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("late_0:"):
            break
    os.killpg(process.pid, signal.SIGKILL)  # the pipeline dies mid-batch
    process.wait()
    first = {o.student for o in outcomes(Course(course), "ps1")}
    assert "late_0" in first and not set(late) <= first
    rerun = course_cli(course, "autograde", "ps1", "--cell-timeout", str(CELL_TIMEOUT))
    assert "late_0: " in rerun.stdout and "unchanged since the last run" in report_block(
        rerun.stdout, "late_0")
    scores = gradebook_scores(course)
    full = graded["expected"]["solution"]["score"]
    assert all(scores[s] == full for s in late), scores
    manifest = Manifest(course / FILE_NAME).data
    assert set(late) <= set(manifest["ps1"])



@pytest.mark.grading
def test_a_refused_record_writes_no_score_and_the_gradebook_goes_on(graded, tmp_path):
    """The batch records through one open gradebook: a score outside [0, points] (a tampered
    worker gradebook) is refused, none of its scores is stored, and the next record goes in."""
    from nbgrader.api import Gradebook

    shutil.copy(graded["course"] / "gradebook.db", tmp_path / "gradebook.db")
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    data = read_submission(url, "ps1", "solution")
    bad = copy.deepcopy(data)
    record = next(iter(bad["notebooks"].values()))
    cell = next(name for name, g in record["grades"].items() if g["auto_score"] is not None)
    record["grades"][cell]["auto_score"] = 1e9
    with Gradebook(url) as gb:
        with pytest.raises(ValueError, match=f"score 1000000000.0 of {cell} is outside"):
            write_submission(gb, "ps1", "newcomer", bad)
        assert float(gb.find_submission("ps1", "newcomer").score) == 0.0
        full = write_submission(gb, "ps1", "newcomer", data)
    assert full == graded["expected"]["solution"]["score"] > 0
    with Gradebook(url) as gb:
        assert float(gb.find_submission("ps1", "newcomer").score) == full
    # in the batch, the refused record makes the submission "not graded", and the batch goes on
    course = Course(tmp_path / "course")
    shutil.copytree(graded["course"], course.root)
    notebook = (course.folder("autograded", "ps1", "solution") / "ps1.ipynb").read_text()
    job = {"spec": assignment_spec(course.db_url, "ps1"), "sandboxed": True}
    answer = {"success": True, "autograded": {"ps1": notebook}, "grades": bad, "events": []}
    with Gradebook(course.db_url) as gb:
        recorder = _Recorder(course, "ps1", Manifest(course.root / FILE_NAME), job, None, gb)
        recorder.graded({"submission": {"student": "solution"}, "notes": [], "hash": "h"}, answer)
        recorder.graded({"submission": {"student": "solution2"}, "notes": [], "hash": "h"},
                        {**answer, "grades": data})
    refused, fine = recorder.outcomes["solution"], recorder.outcomes["solution2"]
    assert refused.status == "not graded" and "its grades were refused" in refused.reason
    assert fine.status == "graded" and fine.score == full


@pytest.mark.grading
def test_a_cell_that_swallows_interrupts_costs_only_the_tests_after_it(graded):
    course = graded["course"]
    solution = nbformat.read(course / "source/ps1/ps1.ipynb", as_version=4)
    train = next(c.source for c in solution.cells if grade_id(c) == "train")
    write(course, "stubborn", replace_cell(solution, "train", train + (
        "\nwhile True:\n    try:\n        while True:\n            pass\n"
        "    except BaseException:\n        pass")))
    write(course, "neighbour", solution)
    run = course_cli(course, "autograde", "ps1", "--student", "stubborn", "--student",
                     "neighbour", "--cell-timeout", "2", "--wall-seconds", "60")
    block = report_block(run.stdout, "stubborn")
    full = graded["expected"]["solution"]["score"]
    scores = gradebook_scores(course)
    assert scores["neighbour"] == full
    assert "ignored the interrupt at the time limit per cell" in block, block
    assert "test_train failed: not run" in block, block
    assert "tests not run because the kernel had stopped (they score 0): test_train" in block
    without_train = next(want["score"] for student, want in graded["expected"].items()
                         if student.startswith("mistake_train_"))
    assert scores["stubborn"] == without_train  # only test_train could not run


@pytest.mark.grading
def test_every_other_assignment_grades_its_solution_fully_and_its_stub_zero(graded):
    """The sandbox refuses nothing that a correct solution of any assignment needs."""
    from course_pkg.grading.preflight import assignment_spec

    course = graded["course"]
    others = sorted(p.name for p in (course / "source").iterdir() if p.name != "ps1")
    assert others, "only ps1 exists"
    for assignment in others:
        for student, folder in (("solution", "source"), ("stub", "release")):
            target = course / "submitted" / student / assignment
            target.mkdir(parents=True)
            for notebook in (course / folder / assignment).glob("*.ipynb"):
                shutil.copy(notebook, target / notebook.name)
        run = course_cli(course, "autograde", assignment, "--student", "solution",
                         "--student", "stub")
        spec = assignment_spec(f"sqlite:///{course / 'gradebook.db'}", assignment)
        automatic = sum(c["points"] for nb in spec.values() for c in nb["cells"].values()
                        if c["grade"] and c["cell_type"] == "code")
        recorded = {o.student: o for o in outcomes(Course(course), assignment)}
        assert recorded["solution"].score == automatic, run.stdout
        assert not recorded["solution"].mistakes, run.stdout
        assert recorded["stub"].score == 0.0, run.stdout
        assert set(recorded["stub"].mistakes.values()) == {"not implemented"}, run.stdout

@pytest.mark.grading
def test_files_outside_the_sandbox_are_out_of_reach(graded):
    course = graded["course"]
    notebook = nbformat.read(course / "autograded/reads_files/ps1/ps1.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    assert printed.count("refused") == 6, printed
    assert (course / "nbgrader_config.py").exists()
    assert b"SQLite" in (course / "gradebook.db").read_bytes()[:16]


@pytest.mark.grading
def test_without_a_sandbox_autograde_refuses_unless_told_unsandboxed(graded):
    course = graded["course"]
    env = {**os.environ, "PATH": str(BIN)}  # no bwrap on PATH
    refused = subprocess.run([str(BIN / "course"), "--course-dir", str(course), "autograde",
                              "ps1", "--student", "solution", "--force"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    assert "bubblewrap (`bwrap`) is not installed" in refused.stderr
    assert "apt-get install bubblewrap" in refused.stderr and "--unsandboxed" in refused.stderr
    graded_anyway = subprocess.run([str(BIN / "course"), "--course-dir", str(course),
                                    "autograde", "ps1", "--student", "solution", "--force",
                                    "--unsandboxed"], env=env, capture_output=True, text=True,
                                   timeout=300)
    block = report_block(graded_anyway.stdout, "solution")
    assert "[UNSANDBOXED" in block.splitlines()[0], graded_anyway.stdout + graded_anyway.stderr
    assert gradebook_scores(course)["solution"] == graded["expected"]["solution"]["score"]


# -- the parts, without nbgrader (fast) -------------------------------------------------------
TINY_SPEC = {"tiny": {"order": ["setup", "answer", "test_answer"], "cells": {
    "setup": {"source": "from math import sqrt", "released": "from math import sqrt",
              "cell_type": "code", "locked": True, "grade": False, "points": 0.0,
              "solution": False},
    "answer": {"source": "def f(x):\n    return 2 * x", "released": "def f(x):\n    return 2 * x",
               "cell_type": "code", "locked": False, "grade": False, "points": 0.0,
               "solution": True},
    "test_answer": {"source": "assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n"
                              "### END HIDDEN TESTS", "released": "assert f(1) == 2\n",
                    "cell_type": "code", "locked": True, "grade": True, "points": 1.0,
                    "solution": False},
}}}


def tiny_notebook(answer: str = "def f(x):\n    return 2 * x", test: str = "assert f(1) == 2"):
    def meta(gid, **flags):
        return {"nbgrader": {"grade_id": gid, "grade": False, "solution": False,
                             "locked": False, "schema_version": 3, **flags}}
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from math import sqrt", metadata=meta("setup", locked=True)),
        nbformat.v4.new_code_cell(answer, metadata=meta("answer", solution=True)),
        nbformat.v4.new_code_cell(test, metadata=meta("test_answer", grade=True, locked=True,
                                                      points=1.0)),
    ])


def preflight(tmp_path: Path, nb=None, raw: bytes | None = None):
    from course_pkg.grading.preflight import check_submission

    folder = tmp_path / "sub"
    folder.mkdir(exist_ok=True)
    if raw is not None:
        (folder / "tiny.ipynb").write_bytes(raw)
    else:
        nbformat.write(nb, folder / "tiny.ipynb")
    return check_submission(folder, TINY_SPEC, max_bytes=10_000)


def test_preflight_refuses_what_is_not_a_notebook_of_the_assignment(tmp_path):
    text = nbformat.writes(tiny_notebook()).encode()
    assert preflight(tmp_path, raw=text).gradable
    assert "invalid JSON" in preflight(tmp_path, raw=text[: len(text) // 2]).reason
    assert "not UTF-8" in preflight(tmp_path, raw=b"\xff\xfe\x00").reason
    assert "no cell list" in preflight(tmp_path, raw=b'{"cells": 3}').reason
    assert "over the limit of 10000 bytes" in preflight(tmp_path, raw=b" " * 20_000).reason
    other = tiny_notebook()
    for cell in other.cells:
        cell.metadata["nbgrader"]["grade_id"] += "_of_ps9"
    assert "none of the assignment's cells" in preflight(tmp_path, other).reason


def test_preflight_notes_restored_cells_and_strips_forged_ones(tmp_path):
    assert preflight(tmp_path, tiny_notebook()).notes == []
    edited = preflight(tmp_path, tiny_notebook(test="pass"))
    assert edited.gradable and "test_answer was edited" in edited.notes[0]
    nb = tiny_notebook()
    nb.cells.append(copy.deepcopy(nb.cells[2]))
    nb.cells[-1]["id"] = "copy"
    forged = copy.deepcopy(nb.cells[2])
    forged["id"], forged.metadata["nbgrader"]["grade_id"] = "forged", "test_bonus"
    nb.cells.append(forged)
    checked = preflight(tmp_path, nb)
    cells = checked.notebooks["tiny"].cells
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in cells] == [
        "setup", "answer", None, "test_answer", None]
    assert any("appears 2 times" in n for n in checked.notes)
    assert any("not in the assignment: test_bonus" in n for n in checked.notes)


def test_limits_must_be_positive():
    from course_pkg.grading.sandbox import Limits

    assert Limits().cell_timeout > 0
    with pytest.raises(ValueError, match="cell_timeout must be a positive integer"):
        Limits(cell_timeout=0)


def test_manifest_hash_follows_content_and_the_journal_survives_a_torn_line(tmp_path):
    from course_pkg.grading.manifest import Manifest, hash_folder

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.ipynb").write_text("1")
    first = hash_folder(tmp_path / "a", "spec")
    assert hash_folder(tmp_path / "a", "spec") == first != hash_folder(tmp_path / "a", "other")
    (tmp_path / "a" / "x.ipynb").write_text("2")
    assert hash_folder(tmp_path / "a", "spec") != first
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")  # never followed
    assert hash_folder(tmp_path / "a", "spec") != first
    path = tmp_path / "m.jsonl"
    manifest = Manifest(path)
    manifest.put("ps1", "alice", {"hash": first, "score": 1.0})
    manifest.put("ps1", "alice", {"hash": first, "score": 2.0})
    assert Manifest(path).get("ps1", "alice") == {"hash": first, "score": 2.0}
    with open(path, "a") as f:
        f.write('{"assignment": "ps1", "stud')  # a crash mid-write
    assert Manifest(path).entries("ps1") == {"alice": {"hash": first, "score": 2.0}}
    path.write_text("{broken\n" + path.read_text())
    with pytest.raises(ValueError, match="line 1 of the grading manifest"):
        Manifest(path)
    path.unlink()
    many = Manifest(path)
    for i in range(300):
        many.put("ps1", "bob", {"score": float(i)})
    assert len(path.read_text().splitlines()) == 300
    assert Manifest(path).get("ps1", "bob") == {"score": 299.0}
    assert len(path.read_text().splitlines()) == 1  # rewritten without superseded lines


def test_collect_files_folders_and_flat_downloads(tmp_path):
    from course_pkg.grading.collect import collect

    course = tmp_path / "course"
    (course / "release" / "ps1").mkdir(parents=True)
    (course / "source").mkdir()
    (course / "release" / "ps1" / "ps1.ipynb").write_text("{}")
    downloads = tmp_path / "downloads"
    (downloads / "alice").mkdir(parents=True)
    (downloads / "alice" / "ps1.ipynb").write_text("A")
    (downloads / "bob").mkdir()
    (downloads / "bob" / "my answers.ipynb").write_text("B")
    (downloads / "carol_ps1 (1).ipynb").write_text("C")
    (downloads / "notes.ipynb").write_text("?")
    lines = collect(Course(course), "ps1", downloads)
    for student, text in (("alice", "A"), ("bob", "B"), ("carol", "C")):
        folder = course / "submitted" / student / "ps1"
        assert (folder / "ps1.ipynb").read_text() == text
        assert (folder / "timestamp.txt").read_text().startswith("20")
    assert any("bob: filed my answers.ipynb as ps1.ipynb" in line for line in lines)
    assert any(line.startswith("notes.ipynb: skipped") for line in lines)
    with pytest.raises(ValueError, match="not a folder"):
        collect(Course(course), "ps1", tmp_path / "missing")


def test_only_real_folders_named_like_student_ids_are_students(tmp_path):
    course = tmp_path / "course"
    for name in ("alice", "bob.smith-2", "eve\n", "=1+1", "_hidden"):
        (course / "submitted" / name / "ps1").mkdir(parents=True)
    (course / "elsewhere" / "ps1").mkdir(parents=True)
    (course / "submitted" / "linked").symlink_to(course / "elsewhere")
    assert Course(course).students("ps1") == ["alice", "bob.smith-2"]
    assert Course(course).invalid_folders("ps1") == ["=1+1", "_hidden", "eve\n"]


def test_a_worker_with_another_course_pkg_refuses_as_a_grader_fault():
    """A worker whose course_pkg is not the instructor's (another version's sources) grades
    nothing: the task answers with a grader fault, which the next run grades again."""
    from course_pkg.grading.task import grade
    from course_pkg.grading.withheld import package_hash

    answer = grade({"package_hash": "0" * 64}, {"student": "ada"})
    assert answer["fault"].startswith("grader fault: the grading worker refused")
    assert "differs from the instructor's" in answer["fault"] and not answer["success"]
    assert package_hash() == package_hash() != "0" * 64
