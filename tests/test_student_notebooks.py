"""The build-time hooks of book/_ext: the cache key on course_pkg, the student's downloads, the
student versions of the problem sets and the placeholder check, without building the book.

The end-to-end checks on a built site are in ``tests/test_book_build.py`` and
``tests/test_site_links.py``.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import problem_sets  # noqa: E402
import site_links  # noqa: E402
import student_notebooks as sn  # noqa: E402

CHAPTER = ROOT / "book" / "identity_sigmoid.md"


def read_as_sphinx_does(text: str, fingerprint: str) -> nbformat.NotebookNode:
    """The notebook myst-nb executes: the chapter text after the source-read hook."""
    return jupytext.reads(sn.inject_fingerprint(text, fingerprint), fmt="myst")


def test_a_change_to_course_pkg_changes_the_execution_cache_key(tmp_path: Path) -> None:
    """A chapter executed with one version of course_pkg is not reused for another: the cache
    (jupyter-cache, as myst-nb calls it) misses after any edit of a package source file."""
    package = tmp_path / "course_pkg"
    shutil.copytree(ROOT / "course_pkg", package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    before = sn.package_fingerprint(package)
    text = CHAPTER.read_text()
    cache = get_cache(str(tmp_path / "cache"))
    executed = read_as_sphinx_does(text, before)
    bundle_uri = str(tmp_path / "chapter.ipynb")
    from jupyter_cache.base import CacheBundleIn

    cache.cache_notebook_bundle(CacheBundleIn(executed, bundle_uri), check_validity=False)
    assert cache.match_cache_notebook(read_as_sphinx_does(text, before)) is not None

    module = package / "activations.py"
    module.write_text(module.read_text() + "\n# a changed line\n")
    after = sn.package_fingerprint(package)
    assert after != before
    with pytest.raises(KeyError):
        cache.match_cache_notebook(read_as_sphinx_does(text, after))
    # Without the fingerprint the cache would have matched the stale outputs.
    plain = jupytext.reads(text, fmt="myst")
    cache.cache_notebook_bundle(CacheBundleIn(plain, bundle_uri), check_validity=False,
                                overwrite=True)
    assert cache.match_cache_notebook(jupytext.reads(text, fmt="myst")) is not None


def test_only_chapters_that_use_course_pkg_carry_the_fingerprint() -> None:
    text = CHAPTER.read_text()
    injected = sn.inject_fingerprint(text, "abc123")
    assert jupytext.reads(injected, fmt="myst").metadata["kernelspec"][sn.FINGERPRINT_KEY] == \
        "abc123"
    plain = "---\nkernelspec:\n  name: python3\n  display_name: Python 3\n---\n\n# x\n"
    assert sn.inject_fingerprint(plain, "abc123") == plain
    assert sn.inject_fingerprint("# no front matter, course_pkg\n", "a") == \
        "# no front matter, course_pkg\n"


def test_the_fingerprint_sees_every_source_file(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    first = sn.package_fingerprint(package)
    (package / "sub" / "b.py").write_text("y = 3\n")
    assert sn.package_fingerprint(package) != first
    with pytest.raises(FileNotFoundError, match="expected course_pkg"):
        sn.package_fingerprint(tmp_path / "empty")


def test_a_download_starts_with_the_check_cell_and_folds_solutions() -> None:
    source = jupytext.read(CHAPTER)
    nb = sn.student_notebook(source, sn.Export(page="book/identity_sigmoid",
                                               wheel_name="course_pkg-0.1.0-py3-none-any.whl"))
    first = nb.cells[0]
    assert first.cell_type == "code" and sn.SETUP_TAG in first.metadata["tags"]
    assert first.source == sn.setup_source("course_pkg-0.1.0-py3-none-any.whl", "")
    solutions = [c for c in nb.cells if sn.SOLUTION_TAG in c.metadata.get("tags", [])]
    assert len(solutions) == CHAPTER.read_text().count("{solution}")
    for cell in solutions:
        assert cell.cell_type == "markdown"
        assert cell.source.startswith("<details>\n<summary>Solution</summary>\n\n")
        assert cell.source.endswith("\n\n</details>")
        assert "{solution}" not in cell.source and ":label:" not in cell.source
        assert "jupyter" not in cell.metadata  # not a folded source: one click on the title
    assert not [c for c in nb.cells if "{solution}" in c.source], "a raw solution directive"
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert [c.id for c in nb.cells] == [f"cell-{i}" for i in range(len(nb.cells))]
    assert "jupytext" not in nb.metadata
    # The check cell runs: course_pkg is importable here.
    namespace: dict = {}
    exec(compile(first.source, "setup", "exec"), namespace)  # noqa: S102


EXPORT = sn.Export(
    page="book/matrix_form", address="https://course.test/",
    chapters={"book/matrix_form": ("5", "Back-propagation in matrix form"),
              "book/node_delta": ("7", "Back-propagation is gradient descent"),
              "book/notation": ("B", "Notation")},
    equations={"mf-delta": ("book/matrix_form", "5.4"), "nd-update": ("book/node_delta", "7.5"),
               "n-table": ("book/notation", "B.1")},
    targets={"nd-thm-descent": ("book/node_delta", "nd-thm-descent", "Theorem 7.1"),
             "mf-thm": ("book/matrix_form", "mf-thm", "Theorem 5.1")},
)


def test_references_into_other_chapters_become_numbered_links() -> None:
    text = ("By {eq}`mf-delta` and {eq}`nd-update`, see {doc}`node_delta`, "
            "{prf:ref}`nd-thm-descent`, {prf:ref}`mf-thm`, {doc}`the table <notation>` and "
            "{eq}`n-table`.")
    out = sn.resolve_references(text, EXPORT, own_labels={"mf-delta"})
    assert "{eq}`mf-delta`" in out  # an equation of this notebook: JupyterLab numbers it
    assert "[(7.5) in chapter 7](https://course.test/book/node_delta.html#equation-nd-update)" \
        in out
    assert "[chapter 7, *Back-propagation is gradient descent*]" \
           "(https://course.test/book/node_delta.html)" in out
    assert "[Theorem 7.1 (chapter 7, *Back-propagation is gradient descent*)]" \
           "(https://course.test/book/node_delta.html#nd-thm-descent)" in out
    assert "[Theorem 5.1](https://course.test/book/matrix_form.html#mf-thm)" in out
    assert "[the table](https://course.test/book/notation.html)" in out
    assert "(B.1) in appendix B" in out
    assert out.count("{") == 1


def test_without_an_address_references_are_plain_text() -> None:
    plain = sn.Export(**{**EXPORT.__dict__, "address": ""})
    out = sn.resolve_references("{eq}`nd-update` of {doc}`node_delta`", plain, set())
    assert out == "(7.5) in chapter 7 of chapter 7, *Back-propagation is gradient descent*"
    assert "http" not in out and "[" not in out


def test_included_code_is_inlined() -> None:
    text = ("Here is the code:\n\n```{literalinclude} ../course_pkg/network.py\n"
            ":language: python\n:pyobject: back_propagate\n```\n\nAfter.")
    out = sn.inline_directives(text, sn.Export(page="book/matrix_form"))
    assert "{literalinclude}" not in out
    assert "```python\ndef back_propagate(" in out and out.endswith("```\n\nAfter.")
    import inspect

    from course_pkg.network import back_propagate

    assert inspect.getsource(back_propagate).strip() in out


@pytest.mark.parametrize("md", sorted((ROOT / "book").glob("*.md")), ids=lambda p: p.stem)
def test_every_chapter_download_has_nothing_left_to_resolve(md: Path) -> None:
    """The chapters as their downloads are written (without the build's numbers: plain text):
    no include, no role or directive that only Sphinx resolves, no reference it cannot follow."""
    if "kernelspec:" not in md.read_text():
        pytest.skip("not a notebook page")
    page = f"book/{md.stem}"
    nb = sn.student_notebook(jupytext.read(md), sn.book_export(page))
    own = {m.group("label") for c in nb.cells if c.cell_type == "markdown"
           for m in sn.EQUATION_LABEL.finditer(c.source)}
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for bad in ("{literalinclude}", "{eval-rst}", "{tableofcontents}", "{doc}", "{ref}",
                    "{prf:ref}", "{numref}", "{solution}"):
            assert bad not in cell.source, (page, bad, cell.source[:200])
        for label in re.findall(r"\{eq\}`([^`]+)`", cell.source):
            assert label in own, (page, label)


def test_explorer_outputs_keep_their_static_figure_only() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("explorer(...)")])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2},
            "text/plain": "VBox(...)"}
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data=view),
                           nbformat.v4.new_output("display_data",
                                                  data={"image/png": "iVBORw0KGgo=",
                                                        "text/plain": "<Figure>"})]
    out = sn.student_notebook(nb)
    assert "widgets" not in out.metadata
    assert "widget-view" not in nbformat.writes(out)
    assert [list(o.data) for o in out.cells[0].outputs] == [["image/png", "text/plain"]]


def test_solution_blocks_are_cut_out_with_their_fences() -> None:
    text = ("Before.\n\n````{solution} a\n:class: dropdown\n\n```python\nx = 1\n```\n````\n\n"
            "Between.\n\n:::{solution} b\nB\n:::\nAfter.")
    pieces = sn.split_solutions(text)
    assert [s for _, s in pieces] == [False, True, False, True, False]
    assert pieces[1][0].endswith("```\n````") and "x = 1" in pieces[1][0]
    assert pieces[3][0] == ":::{solution} b\nB\n:::"


def solution_lines(source_nb: nbformat.NotebookNode) -> list[str]:
    """The code lines inside every BEGIN/END SOLUTION region of a source notebook."""
    lines, inside = [], False
    for cell in source_nb.cells:
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
            elif inside and len(line.strip()) > 6 and not line.strip().startswith("#"):
                lines.append(line.strip())
    return lines


@pytest.mark.parametrize("source", sorted((ROOT / "assignments" / "source").glob("*/*.ipynb")),
                         ids=lambda p: p.stem)
def test_the_student_version_has_no_solution_and_no_hidden_test(source: Path) -> None:
    original = nbformat.read(source, as_version=4)
    answers = solution_lines(original)
    assert answers, f"{source.name}: no solution region to check against"
    student = nbformat.writes(problem_sets.student_version(source))
    assert "BEGIN SOLUTION" not in student and "BEGIN HIDDEN TESTS" not in student
    leaked = [line for line in answers if line in student]
    assert not leaked, f"solution code left in the student version: {leaked[:3]}"
    assert "NotImplementedError" in student
    assert problem_sets.points(original) > 0


@pytest.mark.parametrize("url", [
    "https://hub.example.org", "https://example.com/x", "http://www.example.net",
    "https://github.com/backprop-course/backprop-course",
    "https://github.com/executablebooks/jupyter-book/issues",
])
def test_placeholders_are_recognised(url: str) -> None:
    assert site_links.is_placeholder(url)


def test_a_real_repository_is_accepted_and_a_placeholder_refused() -> None:
    assert site_links.repository("https://github.com/some-university/backprop") == \
        ("some-university", "backprop")
    assert site_links.repository("") is None
    from sphinx.errors import ConfigError

    with pytest.raises(ConfigError, match="placeholder"):
        site_links.repository("https://github.com/backprop-course/backprop-course")
    with pytest.raises(ConfigError, match="GitHub repository"):
        site_links.repository("https://gitlab.example.org/a/b")


def test_notebook_links_download_instead_of_opening_their_json() -> None:
    import offline_site

    page = ('<li><a href="../_sources/book/gradient_descent.ipynb" target="_blank"\n'
            '   class="btn btn-download-notebook-button" title="Download notebook file"\n>'
            '<a href="../_sources/book/gradient_descent.md" target="_blank">')
    out = offline_site.download_notebook_links(page)
    assert 'download="gradient_descent.ipynb"' in out
    assert 'target="_blank"' in out  # only the .md link keeps it
    assert out.count('target="_blank"') == 1


def test_equation_labels_in_code_read_as_the_sites_numbers() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "x = np.sum(a)  # (mf-delta)\nprint('(nd-update) holds')")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                  text="(nd-update) holds\n")]
    out = sn.student_notebook(nb, EXPORT)
    assert out.cells[-1].source == "x = np.sum(a)  # (5.4)\nprint('(7.5) holds')"
    assert out.cells[-1].outputs[0]["text"] == "(7.5) holds\n"
    plain = sn.student_notebook(nb, sn.book_export("book/matrix_form"))  # no numbers: kept
    assert "(mf-delta)" in plain.cells[-1].source


def test_the_binder_notebooks_are_run_as_the_site_runs_them(tmp_path: Path) -> None:
    """``python book/_ext/student_notebooks.py book/*.md`` (``.binder/postBuild``) writes each
    chapter beside its source after running it as the site build does: its outputs are there,
    and its explorers' widget state with them (a notebook never run has none, and a default
    JupyterLab shows "model not found" once it is run, saved and reopened)."""
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(CHAPTER, book / CHAPTER.name)
    assert sn.main([str(book / CHAPTER.name)]) == 0
    nb = nbformat.read(book / f"{CHAPTER.stem}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and "course-setup" not in
            c.metadata.get("tags", [])]
    assert code and all(c.execution_count for c in code)
    assert any(c.outputs for c in code)
    views = [o for c in code for o in c.outputs if sn.WIDGET_VIEW in o.get("data", {})]
    assert views, "the chapter's explorer shows its sliders"
    state = nb.metadata["widgets"][sn.WIDGET_STATE]["state"]
    assert all(o["data"][sn.WIDGET_VIEW]["model_id"] in state for o in views)

