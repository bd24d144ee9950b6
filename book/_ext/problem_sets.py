"""The problem-sets page: each assignment's aim and points, and its student notebook.

At the start of every build the student version of each ``assignments/source/<ps>/<ps>.ipynb``
is made the way ``nbgrader generate_assignment`` makes it, with nbgrader's own preprocessors
(``LockCells``, ``ClearSolutions``, ``ClearOutput``, ``ComputeChecksums``, ``ClearHiddenTests``,
``ClearMarkScheme``, ``ComputeChecksums``, ``CheckCellMetadata``) and the course's
``assignments/nbgrader_config.py``: no solution, no hidden test, no output. Its first cell,
the check cell that every chapter and problem set starts with, gets the address of the wheel
the site serves (``site_package``). Nothing under ``assignments/`` is written. The notebooks
are copied to ``<site>/problem_sets/<ps>.ipynb`` when the build ends.

The directive ``{problem-sets}`` (in ``book/problem_sets.md``) writes one section per
assignment: its title and first paragraph (its aim), its points (the sum of the ``points`` of
its graded cells), the download link and how to validate it. The page is read again on every
build, so the points follow the notebooks.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENTS = ROOT / "assignments"
OUT_FOLDER = "problem_sets"


@dataclass(frozen=True)
class ProblemSet:
    name: str
    title: str
    aim: str
    points: float
    student: Path


def _preprocessors() -> list[Any]:
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearHiddenTests,
        ClearMarkScheme,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    course_config = ASSIGNMENTS / "nbgrader_config.py"
    if course_config.is_file():
        loader = PyFileConfigLoader(course_config.name, str(course_config.parent))
        config.merge(loader.load_config())
    steps = (LockCells, ClearSolutions, ClearOutput, CheckCellMetadata, ComputeChecksums,
             ClearHiddenTests, ClearMarkScheme, ComputeChecksums, CheckCellMetadata)
    return [step(config=config) for step in steps]


def student_version(source: Path) -> Any:
    """The released notebook of an nbgrader source notebook (solutions and hidden tests out)."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    resources: dict[str, Any] = {}
    for step in _preprocessors():
        nb, resources = step.preprocess(nb, resources)
    return nb


def points(notebook: Any) -> float:
    """The sum of the points of the notebook's graded cells (nbgrader metadata)."""
    total = 0.0
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and meta.get("points") is not None:
            total += float(meta["points"])
    return total


def title_and_aim(notebook: Any) -> tuple[str, str]:
    """The first heading of the first markdown cell and the paragraph that follows it."""
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        blocks = [b.strip() for b in re.split(r"\n\s*\n", cell.source) if b.strip()]
        if not blocks:
            continue
        title = blocks[0].lstrip("#").strip() if blocks[0].startswith("#") else ""
        aim = " ".join(next((b for b in blocks[1:] if not b.startswith(("#", "$$"))), "").split())
        # A paragraph that runs into a display equation ends at its last full sentence.
        if aim and not aim.endswith((".", "?", "!")):
            ends = [m.end() for m in re.finditer(r"[.?!](?=\s)", aim)]
            aim = aim[:ends[-1]] if ends else aim
        return title, aim
    return "", ""


def set_check_cell(notebook: Any, wheel_name: str, wheel_url: str = "") -> None:
    """Give the notebook's check cell (its first cell, tagged ``course-setup``) the site's
    wheel: the same cell as the chapters' (``student_notebooks.setup_source``). A notebook
    without one gets one (``tests/test_wheel.py`` asks every source notebook to have it)."""
    import nbformat
    import student_notebooks

    first = notebook.cells[0] if notebook.cells else None
    if first is None or student_notebooks.SETUP_TAG not in first.metadata.get("tags", []):
        first = nbformat.v4.new_code_cell()
        first.id = "course-check"
        first.metadata["tags"] = [student_notebooks.SETUP_TAG]
        notebook.cells.insert(0, first)
    first.source = student_notebooks.setup_source(wheel_name, wheel_url)
    # What the kernel reports when it starts: else JupyterLab marks the set modified then.
    if notebook.metadata.get("kernelspec", {}).get("name") == "python3":
        notebook.metadata["language_info"] = student_notebooks.language_info()


def collect(tmp: Path, source_root: Path = ASSIGNMENTS / "source",
            wheel: tuple[str, str] | None = None) -> list[ProblemSet]:
    """Make the student notebook of every assignment into ``tmp``; describe each one.

    ``wheel`` is (file name, address) of the wheel the site serves: each notebook's check cell
    installs it (:func:`set_check_cell`).
    """
    import nbformat

    found = []
    for folder in sorted(p for p in source_root.iterdir() if p.is_dir()):
        notebooks = sorted(folder.glob("*.ipynb"))
        if not notebooks:
            continue
        source = notebooks[0]
        original = nbformat.read(source, as_version=4)
        student = student_version(source)
        if wheel is not None:
            set_check_cell(student, *wheel)
        target = tmp / f"{folder.name}.ipynb"
        nbformat.write(student, target)
        title, aim = title_and_aim(original)
        found.append(ProblemSet(folder.name, title or folder.name, aim, points(original), target))
    if not found:
        raise FileNotFoundError(f"no assignment notebook under {source_root}")
    return found


def make_student_notebooks(app: Any) -> None:
    """builder-inited: the student notebooks, into a temporary folder of this build."""
    tmp = Path(tempfile.mkdtemp(prefix="problem-sets-"))
    wheel = app.course_wheel
    app.course_problem_sets = collect(tmp, wheel=(wheel.name, wheel.url))
    app.course_problem_sets_tmp = tmp


def always_reread(app: Any, env: Any, added: set, changed: set, removed: set) -> list[str]:
    """env-get-outdated: the page that shows the points is read on every build."""
    return [doc for doc in env.found_docs if doc.endswith("problem_sets")]


def copy_student_notebooks(app: Any, exception: Exception | None) -> None:
    tmp = getattr(app, "course_problem_sets_tmp", None)
    if tmp is None:
        return
    if exception is None and app.builder.format == "html":
        target = Path(app.outdir, OUT_FOLDER)
        target.mkdir(parents=True, exist_ok=True)
        for ps in app.course_problem_sets:
            shutil.copy2(ps.student, target / ps.student.name)
    shutil.rmtree(tmp, ignore_errors=True)


def _format_points(value: float) -> str:
    return f"{value:g} point" + ("" if value == 1 else "s")


class ProblemSetsDirective(SphinxDirective):
    """``{problem-sets}``: one section per assignment (no arguments, no content)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        sets = getattr(self.env.app, "course_problem_sets", None)
        if not sets:
            raise self.error("no problem sets were collected from assignments/source")
        docdir = Path(self.env.docname).parent
        up = "../" * len(docdir.parts)
        lines: list[str] = []
        for ps in sets:
            href = f"{up}{OUT_FOLDER}/{ps.name}.ipynb"
            lines += [
                f"## {ps.title}",
                "",
                ps.aim,
                "",
                f"- **Points:** {_format_points(ps.points)}, given by the autograder "
                f"(read from the notebook's grading metadata).",
                f"- **Download:** <a class=\"problem-set-download\" href=\"{href}\" "
                f"download=\"{ps.name}.ipynb\">{ps.name}.ipynb</a> (the student version: no "
                f"solutions, no hidden tests).",
                f"- **Check your work:** restart the kernel and run all cells: every visible "
                f"test cell must finish without an error (with nbgrader installed, "
                f"`nbgrader validate {ps.name}.ipynb` does the same from a fresh kernel).",
                "",
            ]
        container = nodes.section()
        self.state.nested_parse(StringList(lines, source=self.env.docname), self.content_offset,
                                container, match_titles=True)
        return container.children


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("problem-sets", ProblemSetsDirective)
    app.connect("builder-inited", make_student_notebooks)
    app.connect("env-get-outdated", always_reread)
    app.connect("build-finished", copy_student_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
