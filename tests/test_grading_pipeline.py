"""The instructor pipeline end to end, in a temporary copy of the course directory.

``course release --all`` generates every assignment; then one class of ps1 submissions is built
programmatically: the solution, the untouched stub, every known mistake of the checks' mistake
tables, and every bad case of issue #4 (an infinite loop, an exception at import, corrupted and
truncated JSON, a notebook of another assignment, deleted, edited, duplicated, re-typed and
forged test cells, huge output, a memory hog, code that redefines what the tests call, patches
NumPy before or during a test, reads or rewrites files outside its folder, or ships a
``numpy.py``). ``course autograde`` grades the class; the tests check every student's score
in the gradebook, the line the report gives each bad case, the feedback line of each mistake,
the exported CSV, the class report, and that a rerun (also after a crash) keeps every grade.
"""

from __future__ import annotations

import copy
import csv
import html
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from course_pkg.grading import identity_sigmoid as ps1_checks
from course_pkg.grading.course import Course
from course_pkg.grading.pipeline import outcomes

pytestmark = pytest.mark.grading

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


def mistake_source(answer: str, table: str, tag: str) -> str:
    return (f"from course_pkg.grading.identity_sigmoid import {table} as _table\n"
            f"{answer} = _table[{tag!r}]")


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
    case("redefines_check", 0.0, "redefines check_dE_dw", "put back before a cell ran: check_dE_dw",
         nb=replace_cell(solution, "dE_dw", wrong_gradient +
                         "\ndef check_dE_dw(*args, **kwargs):\n    return None"))
    case("patches_numpy", 0.0, "assigns np.isclose", "put back before a cell ran: numpy.isclose",
         nb=replace_cell(solution, "dE_dw", wrong_gradient +
                         "\nnp.isclose = lambda *args, **kwargs: True"
                         "\nnp.allclose = lambda *args, **kwargs: True"))
    case("patches_during_test", 0.0, "that test gets no credit", nb=replace_cell(
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
    case("reads_files", full, "refused at run time: open", "refused at run time: os.listdir",
         "refused at run time: os.system", nb=append_cell(solution, probe))
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


def test_release_generates_every_assignment(graded):
    course = graded["course"]
    for source in sorted((course / "source").iterdir()):
        released = course / "release" / source.name
        for notebook in source.glob("*.ipynb"):
            text = (released / notebook.name).read_text()
            assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert f"{source.name}: released" in graded["released"]


def test_every_student_gets_the_score_their_own_code_earned(graded):
    course, expected = graded["course"], graded["expected"]
    scores = gradebook_scores(course)
    for student, want in expected.items():
        if want["score"] is None:
            assert scores.get(student, 0.0) == 0.0, student
        else:
            assert scores[student] == pytest.approx(want["score"]), (
                student, report_block(graded["report"], student))


def test_each_submission_has_a_report_line_saying_what_happened(graded):
    for student, want in graded["expected"].items():
        block = report_block(graded["report"], student)
        if want["score"] is None:
            assert block.startswith(f"{student}: not graded: "), block
        else:
            assert "not graded" not in block.splitlines()[0], block
        for phrase in want["says"]:
            assert phrase in block, (phrase, block)


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


def test_class_report_counts_mistakes_and_draws_them(graded, tmp_path):
    course = graded["course"]
    course_cli(course, "report", "ps1", "--to", str(tmp_path))
    text = (tmp_path / "report.md").read_text()
    assert (tmp_path / "mistakes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "- test_dE_dw: " in text and "not implemented" in text
    not_graded = sum(w["score"] is None for w in graded["expected"].values())
    assert f"{not_graded} not graded" in text


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
    manifest = json.loads((course / "grading_manifest.json").read_text())
    assert set(late) <= set(manifest["ps1"])
