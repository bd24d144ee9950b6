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
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
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
def released(tmp_path_factory) -> Path:
    """A copy of the course directory with every assignment generated."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy(COURSE / "nbgrader_config.py", course)
    shutil.copytree(COURSE / "source", course / "source")
    for assignment in ASSIGNMENTS:
        nbgrader(course, "generate_assignment", assignment, "--force")
    return course


@pytest.fixture(scope="module")
def course(released) -> Path:
    """The released course with two submissions of each assignment (the solution and the
    untouched stub), autograded."""
    course = released
    for assignment in ASSIGNMENTS:
        submit(course, "solution", assignment, course / "source" / assignment)
        submit(course, "stub", assignment, course / "release" / assignment)
        nbgrader(course, "autograde", assignment, "--force")
    return course


def scores(course: Path, assignment: str, student: str):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "backprop") as gb:
        sub = gb.find_submission(assignment, student)
        return sub.code_score, sub.max_code_score, sub.written_score, sub.max_written_score


def test_there_are_the_assignments_of_the_course():
    assert ASSIGNMENTS == ["ps1", "ps2", "ps3", "ps4", "ps5", "ps6"]


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
def test_the_release_hides_solutions_and_hidden_tests(released, assignment):
    course = released
    for path in notebooks(course / "release" / assignment):
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert "raise NotImplementedError()" in text
        assert "seed=seed" not in text  # the hidden calls with random sizes


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validate_passes_on_the_solution(released, assignment):
    course = released
    for path in notebooks(course / "source" / assignment):
        out = nbgrader(course, "validate", str(path)).stdout
        assert "Success! Your notebook passes all the tests." in out, out


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validate_fails_on_the_stub_with_teaching_messages(released, assignment):
    course = released
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


# -- the student's view: the released notebooks open in JupyterLab 4 and Notebook 7 -----------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "course-test-token"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def jupyter_server(released, tmp_path_factory) -> Iterator[str]:
    """A Jupyter server (JupyterLab and Notebook 7 front ends) on the released notebooks."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / ".jupyter")}
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={released / 'release'}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate", *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.5)
        else:
            pytest.fail("the Jupyter server did not start")
        if server.poll() is not None:
            pytest.fail("the Jupyter server exited:\n" + (home / "server.log").read_text())
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run `make chromium` (Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.mark.browser
@pytest.mark.parametrize("front_end", ["lab/tree", "notebooks"])
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_release_opens_in_jupyterlab_and_notebook7(jupyter_server, browser, released,
                                                     assignment, front_end):
    notebook = notebooks(released / "release" / assignment)[0]
    cells = json.loads(notebook.read_text())["cells"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        # ?reset: JupyterLab opens this notebook alone, not the tabs of an earlier test too.
        reset = "reset&" if front_end.startswith("lab") else ""
        page.goto(f"{jupyter_server}/{front_end}/{assignment}/{notebook.name}?{reset}"
                  f"token={TOKEN}")
        page.wait_for_selector(".jp-Notebook:visible .jp-Cell", timeout=90_000)
        page.wait_for_function(
            "n => [...document.querySelectorAll('.jp-Notebook .jp-Cell')]"
            ".filter(c => c.offsetParent !== null).length >= n", arg=len(cells),
            timeout=30_000)
        first_text = next(c for c in cells if c["cell_type"] == "markdown")  # after the check
        title = "".join(first_text["source"]).splitlines()[0].lstrip("# ")
        # Markdown is rendered by JupyterLab's own renderer, or by jupyterlab-myst where the
        # student environment installs it.
        heading = page.locator(".jp-Notebook:visible .jp-RenderedMarkdown h1, "
                               ".jp-Notebook:visible .myst h1", has_text=title).first
        heading.wait_for(timeout=30_000)
        assert title in heading.inner_text()
        assert page.locator(".jp-Notebook:visible .jp-Cell").count() == len(cells)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"{assignment}-{front_end.split('/')[0]}.png")
        page.close()
