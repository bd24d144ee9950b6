"""The nbgrader assignments end to end, in a temporary copy of the course directory.

For every assignment in ``assignments/source``: ``nbgrader generate_assignment`` releases it
without solutions or hidden tests; ``nbgrader validate`` passes on the source (the solution)
and ``--invert`` passes on the release (the stub fails every test, with teaching messages);
autograding gives the solution every automatic point and the stub none.
"""

from __future__ import annotations

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
COURSE = ROOT / "assignments"
ASSIGNMENTS = sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())
BIN = Path(sys.executable).parent


def nbgrader(course: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the nbgrader CLI in ``course`` with the venv first on PATH (alembic needs it)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env,
                            capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def notebooks(folder: Path) -> list[Path]:
    found = sorted(folder.glob("*.ipynb"))
    assert found, f"no notebook in {folder}"
    return found


def submit(course: Path, student: str, assignment: str, source: Path) -> None:
    target = course / "submitted" / student / assignment
    target.mkdir(parents=True, exist_ok=True)
    for nb in notebooks(source):
        shutil.copy(nb, target / nb.name)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A copy of the course directory with every assignment generated and two submissions
    each (the solution and the untouched stub), autograded."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy(COURSE / "nbgrader_config.py", course)
    shutil.copytree(COURSE / "source", course / "source")
    for assignment in ASSIGNMENTS:
        nbgrader(course, "generate_assignment", assignment, "--force")
        submit(course, "solution", assignment, course / "source" / assignment)
        submit(course, "stub", assignment, course / "release" / assignment)
        nbgrader(course, "autograde", assignment, "--force")
    return course


def scores(course: Path, assignment: str, student: str):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "backprop") as gb:
        sub = gb.find_submission(assignment, student)
        return sub.code_score, sub.max_code_score, sub.written_score, sub.max_written_score


def test_there_are_four_assignments():
    assert ASSIGNMENTS == ["ps1", "ps2", "ps3", "ps4"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_source_notebooks_are_clean(assignment):
    for path in notebooks(COURSE / "source" / assignment):
        nb = json.loads(path.read_text())
        ids, points = set(), 0
        for cell in nb["cells"]:
            assert cell.get("outputs", []) == [], f"{path.name}: committed with outputs"
            meta = cell["metadata"].get("nbgrader")
            if meta is None:
                continue
            assert meta["schema_version"] == 3
            assert meta["grade_id"] not in ids, f"duplicate grade id {meta['grade_id']}"
            ids.add(meta["grade_id"])
            if meta["grade"]:
                assert meta["points"] > 0
                points += meta["points"]
            if meta["solution"] and cell["cell_type"] == "code":
                assert "### BEGIN SOLUTION" in "".join(cell["source"])
                assert '"""' in "".join(cell["source"]), "each exercise has a docstring"
        assert points > 0


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_release_hides_solutions_and_hidden_tests(course, assignment):
    for path in notebooks(course / "release" / assignment):
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert "raise NotImplementedError()" in text
        assert "seed=seed" not in text  # the hidden calls with random sizes


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validate_passes_on_the_solution(course, assignment):
    for path in notebooks(course / "source" / assignment):
        out = nbgrader(course, "validate", str(path)).stdout
        assert "Success! Your notebook passes all the tests." in out, out


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validate_fails_on_the_stub_with_teaching_messages(course, assignment):
    for path in notebooks(course / "release" / assignment):
        inverted = nbgrader(course, "validate", "--invert", str(path)).stdout
        assert "Success! The notebook does not pass any tests." in inverted, inverted
        plain = nbgrader(course, "validate", str(path), check=False).stdout
        assert "[mistake: not implemented]" in plain, plain
        assert "Read again: book/" in plain


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_solution_gets_full_marks_and_the_stub_none(course, assignment):
    code, max_code, _, _ = scores(course, assignment, "solution")
    assert max_code > 0 and code == pytest.approx(max_code)
    code, _, written, _ = scores(course, assignment, "stub")
    assert code == 0 and written == 0


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_autograding_ran_the_hidden_tests(course, assignment):
    for path in notebooks(course / "autograded" / "solution" / assignment):
        assert "seed=seed" in path.read_text()


def test_partial_work_earns_partial_credit(course):
    """ps1 with a correct dE/dw and update but a training loop that runs one step short."""
    source = course / "source" / "ps1" / "ps1.ipynb"
    nb = json.loads(source.read_text())
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "train":
            text = "".join(cell["source"])
            cell["source"] = re.sub(r"range\(steps\)", "range(steps - 1)", text)
            assert cell["source"] != text
    target = course / "submitted" / "partial" / "ps1"
    target.mkdir(parents=True)
    (target / "ps1.ipynb").write_text(json.dumps(nb))
    nbgrader(course, "autograde", "ps1", "--student", "partial", "--force")
    code, max_code, _, _ = scores(course, "ps1", "partial")
    assert 0 < code < max_code
    assert code == pytest.approx(max_code - 2)  # the training loop's test cell is worth 2
    feedback = (course / "autograded" / "partial" / "ps1" / "ps1.ipynb").read_text()
    assert "[mistake: shape]" in feedback
