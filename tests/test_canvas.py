"""The LMS door, through the public ``course`` command: Canvas in and out, plain downloads.

One released course (ps1 and ps3). A Canvas "Download Submissions" zip of ps1, with a late
file, a re-upload (``-1``), a non-ASCII name, the test student and two hostile members, goes
through ``course collect``, ``course autograde`` and ``course export --format canvas --match
ID`` into a Canvas roster; plain downloads with a browser's ``x (1).ipynb`` copy and a ps2
notebook handed in for ps3 go through ``collect`` and pre-flight. The parts that need no
nbgrader (names, zips) are tested directly and fast.
"""

from __future__ import annotations

import csv
import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from course_pkg.grading.collect import CANVAS_NAME, Upload
from course_pkg.grading.course import STUDENT_ID, student_id

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
DAY = 86_400


def course_cli(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "course"), *args, "--course-dir", str(course)],
                            env=ENV, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"course {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course with every source assignment and ps1 and ps3 released."""
    root = tmp_path_factory.mktemp("canvas") / "course"
    root.mkdir()
    shutil.copy(ROOT / "assignments/nbgrader_config.py", root)
    shutil.copytree(ROOT / "assignments/source", root / "source")
    course_cli(root, "release", "ps1", "ps3")
    return root


def notebook_bytes(course: Path, folder: str, assignment: str) -> bytes:
    return (course / folder / assignment / f"{assignment}.ipynb").read_bytes()


def zip_member(archive: zipfile.ZipFile, name: str, data: bytes, days_ago: float) -> None:
    stamp = time.localtime(time.time() - days_ago * DAY)[:6]
    archive.writestr(zipfile.ZipInfo(name, date_time=stamp), data)


CANVAS_ROSTER = [
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "ps1 (1204)", "Notes (9)",
     "Current Score"],
    ["    Points Possible", "", "", "", "", "", "", "(read only)"],
    ["Smith, John", "101", "S101", "jsmith", "A", "", "keep me", "90"],
    ["Lopez, Hugo", "102", "S102", "hlopez", "A", "", "", "80"],
    ["Absent, Anna", "104", "S104", "aabsent", "B", "", "", ""],
    ["Müller, José", "103", "S103", "jmuller", "B", "", "", "70"],
    ["Student, Test", "199", "", "", "", "", "", ""],
]


@pytest.mark.grading
def test_a_canvas_zip_round_trip_fills_the_canvas_roster(course, tmp_path):
    solution = notebook_bytes(course, "source", "ps1")
    blank = notebook_bytes(course, "release", "ps1")
    download = tmp_path / "submissions.zip"
    with zipfile.ZipFile(download, "w") as archive:
        zip_member(archive, "smithjohn_101_5001_ps1.ipynb", blank, 3)
        zip_member(archive, "smithjohn_101_5001_ps1-1.ipynb", solution, 2)  # the re-upload
        zip_member(archive, "lopezhugo_LATE_102_5002_ps1.ipynb", solution, 1)
        zip_member(archive, "müllerjosé_103_5003_ps1.ipynb", blank, 2)
        zip_member(archive, "studenttest_199_5004_ps1.ipynb", solution, 2)
        zip_member(archive, "../escaped_105_5005_ps1.ipynb", solution, 2)
        link = zipfile.ZipInfo("linked_106_5006_ps1.ipynb")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    collected = course_cli(course, "collect", "ps1", str(download))
    out = collected.stdout
    assert "smithjohn: 2 copies of ps1.ipynb: kept smithjohn_101_5001_ps1-1.ipynb" in out, out
    assert "the newest by modification time" in out
    assert "lopezhugo: collected ps1, LATE" in out, out
    assert "mullerjose (müllerjosé): collected ps1" in out, out
    assert "../escaped_105_5005_ps1.ipynb: skipped, an unsafe path" in out, out
    assert "linked_106_5006_ps1.ipynb: skipped, a link" in out, out
    submitted = course / "submitted"
    assert sorted(p.name for p in submitted.iterdir() if (p / "ps1").is_dir()) == [
        "lopezhugo", "mullerjose", "smithjohn", "studenttest"]
    assert (submitted / "smithjohn/ps1/ps1.ipynb").read_bytes() == solution
    late = (submitted / "lopezhugo/ps1/timestamp.txt").read_text()
    early = (submitted / "smithjohn/ps1/timestamp.txt").read_text()
    assert late > early  # nbgrader's timestamp: the later upload's time
    assert not (course / "escaped_105_5005_ps1.ipynb").exists()

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        users = {s.id: (s.lms_user_id, s.last_name) for s in gb.students}
    assert users["mullerjose"] == ("103", "müllerjosé")
    assert users["smithjohn"][0] == "101"

    graded = course_cli(course, "autograde", "ps1", "--workers", "1", "--cell-timeout", "20",
                        "--student", "smithjohn", "--student", "lopezhugo", "--student",
                        "mullerjose", "--student", "studenttest")
    assert "4 submissions, 4 graded" in graded.stdout, graded.stdout

    roster = tmp_path / "canvas.csv"
    with open(roster, "w", newline="", encoding="utf-8-sig") as f:  # Canvas writes a BOM
        csv.writer(f).writerows(CANVAS_ROSTER)
    upload = tmp_path / "upload.csv"
    export = course_cli(course, "export", "--format", "canvas", "--roster", str(roster),
                        "--match", "ID", "--to", str(upload), "--assignment", "ps1")
    back = list(csv.reader(upload.open(encoding="utf-8")))
    assert back[0] == CANVAS_ROSTER[0]
    assert [row[:5] for row in back[1:]] == [row[:5] for row in CANVAS_ROSTER[1:]]
    assert [row[6:] for row in back] == [row[6:] for row in CANVAS_ROSTER]  # kept as it was
    full = float(back[1][5])
    ps1 = {row[1]: row[5] for row in back[2:]}
    assert full > 0 and float(ps1["101"]) == full and float(ps1["102"]) == full
    assert float(ps1["103"]) == 0.0 and float(ps1["199"]) == full and ps1["104"] == ""
    assert "4 scores filled in" in export.stdout
    assert "no submission from 1 roster students: 104" in export.stdout, export.stdout


@pytest.mark.grading
def test_plain_duplicates_keep_the_newest_and_a_wrong_notebook_is_named(course, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    blank, solved = downloads / "alice_ps3.ipynb", downloads / "alice_ps3 (1).ipynb"
    blank.write_bytes(notebook_bytes(course, "release", "ps3"))
    solved.write_bytes(notebook_bytes(course, "source", "ps3"))
    now = time.time()
    os.utime(blank, (now - DAY, now - DAY))
    os.utime(solved, (now - 60, now - 60))
    wrong = downloads / "bob_ps3.ipynb"
    wrong.write_bytes(notebook_bytes(course, "source", "ps2"))
    out = course_cli(course, "collect", "ps3", str(downloads)).stdout
    assert "alice: 2 copies of ps3.ipynb: kept alice_ps3 (1).ipynb" in out, out
    assert "set aside alice_ps3.ipynb" in out and "newest by modification time" in out
    assert (course / "submitted/alice/ps3/ps3.ipynb").read_bytes() == solved.read_bytes()

    run = course_cli(course, "autograde", "ps3", "--student", "bob")
    line = next(x for x in run.stdout.splitlines() if x.startswith("bob:"))
    assert "not graded: ps3.ipynb is ps2's notebook, not ps3's" in line, run.stdout
    assert "KeyError" not in run.stdout and "    - " not in run.stdout  # no misleading notes


# -- the parts, without nbgrader (fast) -------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("José Müller", "jose-muller"), ("müllerjosé", "mullerjose"), ("alice", "alice"),
    ("Ørsted, Søren", "orsted-soren"), ("=1+1", "1-1"), ("王伟", "u738b-u4f1f"),
    ("ß", "ss")])
def test_every_display_name_gives_a_valid_student_id(name, expected):
    assert student_id(name) == expected
    assert STUDENT_ID.fullmatch(student_id(name))


def test_names_with_nothing_to_keep_still_give_distinct_ids():
    first, second = student_id("!!!"), student_id("???")
    assert STUDENT_ID.fullmatch(first) and STUDENT_ID.fullmatch(second) and first != second


def test_canvas_file_names_and_re_upload_suffixes():
    found = CANVAS_NAME.match("lopezhugo_LATE_12346_6789013_ps3-2.ipynb")
    assert found and found["student_id"] == "lopezhugo" and found["late"]
    assert found["user_id"] == "12346" and found["file_id"] == "ps3-2.ipynb"
    upload = Upload("x", "lopezhugo", found["file_id"], 0.0, bytes)
    assert upload.copy_number() == ("ps3", 2)
    assert Upload("x", "a", "ps3 (1).ipynb", 0.0, bytes).copy_number() == ("ps3", 1)
    assert Upload("x", "a", "ps3.ipynb", 0.0, bytes).copy_number() == ("ps3", 0)


def _tiny_course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    (root / "release" / "ps1").mkdir(parents=True)
    (root / "source").mkdir()
    (root / "release" / "ps1" / "ps1.ipynb").write_text("{}")
    return root


def test_a_zip_is_read_as_hostile_data(tmp_path):
    from course_pkg.grading import collect as module
    from course_pkg.grading.course import Course

    root = _tiny_course(tmp_path)
    download = tmp_path / "d.zip"
    with zipfile.ZipFile(download, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        zip_member(archive, "/abs_1_2_ps1.ipynb", b"x", 1)
        zip_member(archive, "a/b/c_1_2_ps1.ipynb", b"x", 1)
        zip_member(archive, "bomb_7_8_ps1.ipynb", b"0" * 4096, 1)
        zip_member(archive, "fine_9_10_ps1.ipynb", b"{}", 1)
    old = module.MAX_BYTES
    module.MAX_BYTES = 1000
    try:
        lines = module.collect(Course(root), "ps1", download)
    finally:
        module.MAX_BYTES = old
    text = "\n".join(lines)
    assert "/abs_1_2_ps1.ipynb: skipped, an unsafe path" in text
    assert "a/b/c_1_2_ps1.ipynb: skipped, an unsafe path" in text
    assert "bomb_7_8_ps1.ipynb: skipped, 4096 bytes, over the limit" in text
    assert (root / "submitted/fine/ps1/ps1.ipynb").read_text() == "{}"
    assert not (root / "submitted/bomb").exists()
    with pytest.raises(ValueError, match="not a folder or a zip"):
        module.collect(Course(root), "ps1", tmp_path / "missing.zip")


def test_a_pattern_reads_another_lms_names(tmp_path):
    from course_pkg.grading.collect import collect
    from course_pkg.grading.course import Course

    root = _tiny_course(tmp_path)
    downloads = tmp_path / "bb"
    downloads.mkdir()
    (downloads / "ps1_alice.b_attempt_2026-01-02-10-00_ps1.ipynb").write_text("A")
    (downloads / "readme.ipynb").write_text("?")
    lines = collect(Course(root), "ps1", downloads,
                    pattern=r".*?_(?P<student_id>[\w.]+)_attempt_[0-9-]+_(?P<file_id>.*)")
    assert (root / "submitted/alice.b/ps1/ps1.ipynb").read_text() == "A"
    assert any(line.startswith("readme.ipynb: skipped") for line in lines)
    with pytest.raises(ValueError, match="named groups"):
        collect(Course(root), "ps1", downloads, pattern=r"(?P<student_id>\w+)")


def test_a_notebook_of_another_assignment_is_named_in_pre_flight(tmp_path):
    from course_pkg.grading.preflight import cell_ids_by_assignment, check_submission

    source = ROOT / "assignments" / "source"
    ids = cell_ids_by_assignment(source)
    ps3 = nbformat.read(source / "ps3" / "ps3.ipynb", as_version=4)
    spec = {"ps3": {"cells": {}, "order": []}}
    for cell in ps3.cells:
        meta = cell.metadata.get("nbgrader")
        if meta:
            spec["ps3"]["cells"][meta["grade_id"]] = {
                "source": cell.source, "released": cell.source, "cell_type": cell.cell_type,
                "locked": meta.get("locked", False), "grade": meta.get("grade", False),
                "points": meta.get("points", 0), "solution": meta.get("solution", False)}
    folder = tmp_path / "bob"
    folder.mkdir()
    shutil.copy(source / "ps2" / "ps2.ipynb", folder / "ps3.ipynb")
    others = {k: v for k, v in ids.items() if k != "ps3"}
    checked = check_submission(folder, spec, 10 * 2**20, others, "ps3")
    assert checked.reason and checked.reason.startswith(
        "ps3.ipynb is ps2's notebook, not ps3's"), checked.reason
    assert "shares only gradients, test_gradients with ps3" in checked.reason
    shutil.copy(source / "ps3" / "ps3.ipynb", folder / "ps3.ipynb")
    assert check_submission(folder, spec, 10 * 2**20, others, "ps3").gradable


def test_a_canvas_user_keeps_their_id_and_a_namesake_gets_another(tmp_path):
    from nbgrader.api import Gradebook

    from course_pkg.grading.collect import collect
    from course_pkg.grading.course import Course, ensure_tools_on_path

    ensure_tools_on_path()  # nbgrader creates a gradebook with the `alembic` command
    root = _tiny_course(tmp_path)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.update_or_create_student("smithjohn", lms_user_id="101")
    downloads = tmp_path / "canvas"
    downloads.mkdir()
    (downloads / "smithjohnny_101_7001_ps1.ipynb").write_text("renamed in Canvas")
    (downloads / "smithjohn_555_7002_ps1.ipynb").write_text("a namesake")
    (downloads / "alice_ps1.ipynb").write_text("plain")
    collect(Course(root), "ps1", downloads)
    submitted = root / "submitted"
    assert (submitted / "smithjohn/ps1/ps1.ipynb").read_text() == "renamed in Canvas"
    assert (submitted / "smithjohn-555/ps1/ps1.ipynb").read_text() == "a namesake"
    assert (submitted / "alice/ps1/ps1.ipynb").read_text() == "plain"
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assert gb.find_student("smithjohn-555").lms_user_id == "555"


def test_a_slug_never_lands_on_a_classmate():
    from course_pkg.grading.collect import assign_ids

    ids = assign_ids(None, [("José", None), ("jose", None), ("hon_plain\n", None),
                            ("hon_plain", None), ("=1+1", None)])
    assert ids[("jose", None)] == "jose" and ids[("José", None)] == "jose-2"
    assert ids[("hon_plain", None)] == "hon_plain" and ids[("hon_plain\n", None)] != "hon_plain"
    assert len(set(ids.values())) == 5 and all(STUDENT_ID.fullmatch(v) for v in ids.values())
