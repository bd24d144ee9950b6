"""The grader's feedback names the student's earlier helper, as the notebook does (issue 16).

One scratch course: ``course release ps2``, one student whose ``hidden_deltas`` forgets the
derivative of tanh while every other answer is the instructor's, then ``course collect``,
``course autograde``, ``course feedback`` and ``course report``, as an instructor runs them.
The student's ``gradients`` is right on its own: it is wrong only through ``hidden_deltas``.
The failing ``gradients`` test must say so: its feedback page names ``hidden_deltas`` and
that helper's own mistake, and the report tags it ``earlier helper``. The test runs
in the grader, against the student's functions in the sandbox, so the helper is found and
called there (:meth:`course_pkg.grading.trusted.RemoteFunction.helper`).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.grading

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STUDENT = "wrong_helper"
WRONG_HIDDEN_DELTAS = ("def hidden_deltas(w2, z, delta_out):\n"
                       "    return w2.T @ delta_out\n")


def course_cli(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(BIN / "course"), "--course-dir", str(course), *args], env=env,
                          capture_output=True, text=True, timeout=600)


def answers(source: Path) -> dict[str, str]:
    """grade_id -> the instructor's answer with the solution markers taken out."""
    nb = json.loads(source.read_text())
    return {cell["metadata"]["nbgrader"]["grade_id"]:
            "".join(line for line in cell["source"] if "SOLUTION" not in line)
            for cell in nb["cells"]
            if cell["cell_type"] == "code"
            and cell.get("metadata", {}).get("nbgrader", {}).get("solution")}


def hand_in(course: Path, cells: dict[str, str]) -> Path:
    """The released ps2 with ``cells`` as its answers, in ``downloads/ps2/<student>/``."""
    nb = json.loads((course / "release" / "ps2" / "ps2.ipynb").read_text())
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in cells:
            cell["source"] = cells[grade_id]
    folder = course / "downloads" / "ps2" / STUDENT
    folder.mkdir(parents=True)
    (folder / "ps2.ipynb").write_text(json.dumps(nb))
    return folder.parent


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    """The course folder after release, collect, autograde, feedback and report of ps2."""
    course = tmp_path_factory.mktemp("feedback_grading") / "course"
    course.mkdir()
    shutil.copy(ROOT / "assignments" / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "assignments" / "source" / "ps2", course / "source" / "ps2")
    cells = answers(course / "source" / "ps2" / "ps2.ipynb")
    steps = [("release", "ps2")]
    for step in steps:
        run = course_cli(course, *step)
        assert run.returncode == 0, f"{step}: {run.stdout[-1500:]}{run.stderr[-1500:]}"
    downloads = hand_in(course, {**cells, "hidden_deltas": WRONG_HIDDEN_DELTAS})
    for step in [("collect", "ps2", str(downloads)),
                 ("autograde", "ps2", "--workers", "1", "--quiet"),
                 ("feedback", "ps2"), ("report", "ps2")]:
        run = course_cli(course, *step)
        assert run.returncode == 0, f"{step}: {run.stdout[-1500:]}{run.stderr[-1500:]}"
    return course


def page_text(course: Path) -> str:
    pages = list((course / "feedback").rglob("*.html"))
    assert len(pages) == 1, pages
    text = re.sub(r"<[^>]+>", " ", pages[0].read_text())
    return " ".join(html.unescape(text).split())


def test_the_feedback_page_names_the_helper_behind_the_failing_backward_pass(graded):
    text = page_text(graded)
    assert "Your hidden_deltas gives a wrong answer" in text
    # the backward pass's failure is the helper's, with the helper's own mistake named
    gradients_part = text[text.index("Grade cell: test_gradients"):]
    assert "[mistake: earlier helper]" in gradients_part
    assert "Your hidden_deltas" in gradients_part
    assert "S' missing" in gradients_part
    # and no other helper is blamed
    for other in ("output_deltas", "grad_w1", "grad_w2"):
        assert f"Your {other} gives" not in text


def test_the_report_tags_the_backward_pass_earlier_helper(graded):
    report = (graded / "reports" / "ps2" / "report.md").read_text()
    block = report[report.index(f"{STUDENT}: "):].split("```")[0]
    assert "test_gradients failed: [mistake: earlier helper]" in block
    assert "test_hidden_deltas failed: [mistake: S' missing]" in block
