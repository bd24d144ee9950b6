"""Equation numbering: the book's equations per chapter, the seeds' equations by the seed's name.

The book's equations are numbered per chapter, (4.3), by Sphinx (``numbered`` toctrees in
``_toc.yml``, ``math_numfig`` and ``numfig_secnum_depth`` in ``_config.yml``), and cited with
``{eq}``. A seed's own equation is cited as "seed 001's (5.12)", so that it cannot be read as
the book's (5.12). The source checks run on the pages below; the check of the built site reads
the HTML of one build of the whole book (shared with ``tests/test_book_build.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["intro", "gradient_descent", "identity_sigmoid", "tanh_two_layer", "worked_example",
         "matrix_form", "output_and_saturation", "gradient_checking", "initialisation",
         "node_delta", "computational_graphs", "efficiency", "summary", "notation", "errata"]
"""The pages whose citations are checked (every chapter and the appendices on the seeds)."""

BARE_CITATION = re.compile(r"(?<![\w-])(eqs?\.?|equations?)\s*\(?\d", re.IGNORECASE)
DOTTED_NUMBER = re.compile(r"\((\d+\.\d+)\)")


def prose(text: str) -> str:
    """The text of a MyST page without code cells, code blocks and mathematics."""
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.DOTALL)
    text = re.sub(r"\$[^$]*\$", " ", text)
    return re.sub(r"`[^`]*`", " ", text)


def test_prose_strips_code_and_mathematics() -> None:
    page = "See (4.3) here. ```{code-cell}\nx = (1.1)\n``` and $a (2.2)$ and `(3.3)`."
    assert DOTTED_NUMBER.findall(prose(page)) == ["4.3"]


@pytest.mark.parametrize("page", PAGES)
def test_no_equation_is_cited_by_a_bare_number(page: str) -> None:
    """'eq. (6)' or 'equation 5.7' is ambiguous: book equations are cited with {eq}, and a
    seed's with its name, 'seed 000's (6)'."""
    text = (ROOT / "book" / f"{page}.md").read_text()
    assert BARE_CITATION.findall(text) == [], page


@pytest.mark.parametrize("page", PAGES)
def test_every_dotted_number_in_prose_names_its_seed(page: str) -> None:
    """A number such as (5.12) in the prose is a seed's, and its sentence names the seed."""
    sentences = re.split(r"(?<=[.!?])\s+", prose((ROOT / "book" / f"{page}.md").read_text()))
    orphans = [s for s in sentences if DOTTED_NUMBER.search(s)
               and not re.search(r"\bseed\s+00[0-3]", s, re.IGNORECASE)]
    assert orphans == [], orphans


def test_the_configuration_numbers_equations_per_chapter() -> None:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    # every part but "Start here" (book/get_started.md: no chapter of its own) is numbered
    assert all(part.get("numbered") for part in toc["parts"] if part.get("caption") != "Start here")
    assert config["math_numfig"] is True
    assert config["numfig_secnum_depth"] == 1


def chapter_numbers() -> dict[str, str]:
    """Page -> the number its title shows: 1, 2, ... for the chapters, A, B, ... for the
    appendices (book/_ext/numbering.py letters the part captioned "Appendices"); the pages of
    an unnumbered part have none."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    numbers, count = {}, 0
    for part in toc["parts"]:
        pages = [Path(entry["file"]).name for entry in part["chapters"]]
        if not part.get("numbered"):
            continue
        if part.get("caption") == "Appendices":
            numbers.update({page: chr(ord("A") + i) for i, page in enumerate(pages)})
        else:
            for page in pages:
                count += 1
                numbers[page] = str(count)
    return numbers


LABELLED = re.compile(r"^\$\$\s*\(([\w-]+)\)\s*$|^:label:\s*([\w-]+)\s*$", re.MULTILINE)


def equation_numbers() -> dict[str, str]:
    """Label -> '5.2', from the sources: the k-th labelled display equation of a page (a
    ``$$ ... $$ (label)`` or a ``{math}`` block with ``:label:``) is number k of its chapter."""
    numbers = {}
    for page, chapter in chapter_numbers().items():
        text = (ROOT / "book" / f"{page}.md").read_text()
        labels, k = [], 0
        for match in LABELLED.finditer(text):
            if match.group(1):
                labels.append(match.group(1))
            else:                                        # a :label: of a {math} block only
                opening = text.rfind("```{", 0, match.start())
                if text.startswith("```{math}", opening):
                    labels.append(match.group(2))
        for label in labels:
            k += 1
            numbers[label] = f"{chapter}.{k}"
    return numbers


def test_equation_numbers_from_the_sources() -> None:
    numbers = equation_numbers()
    assert numbers["gd-landscape"].startswith(chapter_numbers()["gradient_descent"] + ".")
    assert numbers["mf-forward"] == chapter_numbers()["matrix_form"] + ".1"
    assert all(re.fullmatch(r"(\d+|[A-Z])\.\d+", n) for n in numbers.values())


def test_no_plot_legend_names_a_label() -> None:
    """book/_ext/numbering.py writes numbers for labels in code and text outputs, but a legend
    is drawn into a picture: it must not contain a label."""
    labels = set(equation_numbers())
    for page in PAGES:
        text = (ROOT / "book" / f"{page}.md").read_text()
        for legend in re.findall(r"label\s*=\s*r?f?[\"']([^\"']*)[\"']", text):
            assert not {s for s in re.findall(r"\(([\w-]+)\)", legend) if s in labels}, (
                page, legend)


def test_the_built_site_shows_numbers_not_labels(tmp_path_factory) -> None:
    """Every equation's number in the built pages is the one the sources give; no page shows a
    label in parentheses (code cells and outputs included); appendices are lettered."""
    from test_book_build import built_site

    site = built_site(tmp_path_factory)
    expected = equation_numbers()
    by_id = {label.lower(): number for label, number in expected.items()}   # ids: lower case
    chapters = chapter_numbers()
    labels = re.compile(r"\((" + "|".join(map(re.escape, expected)) + r")\)")
    for page, chapter in chapters.items():
        html = (site.html / "book" / f"{page}.html").read_text()
        title = re.search(r'<h1><span class="section-number">([^<]*?)\.', html)
        assert title is not None and title.group(1) == chapter, (page, title)
        for number, label in re.findall(
                r'<span class="eqno">\(([^)]*)\)<a class="headerlink" href="#equation-([\w-]+)"',
                html):
            assert by_id[label] == number, (page, label, number)
        visible = re.sub(r"<[^>]+>", "", html)
        assert labels.findall(visible) == [], (page, labels.findall(visible)[:5])


def test_built_equation_numbers_restart_in_every_chapter(tmp_path_factory) -> None:
    """In the built site, the k-th numbered equation of chapter C reads (C.k)."""
    from test_book_build import built_site

    site = built_site(tmp_path_factory)  # whether it built without warnings: test_book_build
    checked = 0
    for page in PAGES:
        html = (site.html / "book" / f"{page}.html").read_text()
        chapter = re.search(r'<h1><span class="section-number">(\d+|[A-Z])\.', html)
        numbers = re.findall(r'class="eqno">\((\d+|[A-Z])\.(\d+)\)', html)
        if chapter is None:
            assert numbers == [], page             # an unnumbered page numbers nothing
            continue
        assert {c for c, _ in numbers} <= {chapter.group(1)}, page
        assert [int(k) for _, k in numbers] == list(range(1, len(numbers) + 1)), page
        checked += len(numbers)
    assert checked > 50


MY_CHAPTERS = ["gradient_descent", "identity_sigmoid", "tanh_two_layer", "worked_example",
               "matrix_form", "output_and_saturation", "node_delta", "summary"]


@pytest.mark.parametrize("page", MY_CHAPTERS)
def test_every_chapter_has_three_exercises_with_solutions(page: str) -> None:
    text = (ROOT / "book" / f"{page}.md").read_text()
    exercises = re.findall(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)", text)
    solutions = re.findall(r"```\{solution\} ([\w-]+)", text)
    assert len(exercises) >= 3, (page, exercises)
    assert sorted(exercises) == sorted(solutions), page


def test_the_numbering_extension_on_a_small_project(tmp_path: Path) -> None:
    """book/_ext/numbering.py on a two-page project: the appendix is lettered (title, navigation,
    equations, references) and a label in a code block and its comment reads as its number."""
    import subprocess
    import sys

    (tmp_path / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'book' / '_ext')!r})\n"
        "extensions = ['myst_parser', 'numbering', 'sphinx_multitoc_numbering']\n"
        "myst_enable_extensions = ['dollarmath', 'amsmath']\n"
        "numfig = True\nmath_numfig = True\nnumfig_secnum_depth = 1\nmath_numsep = '.'\n")
    (tmp_path / "index.md").write_text(
        "# Root\n\n```{toctree}\n:numbered: 1\n:caption: Chapters\none\n```\n\n"
        "```{toctree}\n:numbered: 1\n:caption: Appendices\napp\n```\n")
    (tmp_path / "one.md").write_text(
        "# One\n\n$$\na = b\n$$ (one-a)\n\n```python\nx = 1   # (one-a), (app-b)\n"
        "print('(one-a) =', x)\n```\n")
    (tmp_path / "app.md").write_text(
        "# App\n\n$$\nc = d\n$$ (app-b)\n\nSee {eq}`one-a` and {eq}`app-b`.\n")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html",
                           str(tmp_path), str(tmp_path / "_build")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    one = (tmp_path / "_build" / "one.html").read_text()
    app = (tmp_path / "_build" / "app.html").read_text()
    index = (tmp_path / "_build" / "index.html").read_text()
    assert '<span class="section-number">A. </span>App' in app
    assert '<span class="eqno">(A.1)' in app and '<span class="eqno">(1.1)' in one
    assert ">(1.1)</a> and <" in app and ">(A.1)</a>." in app
    assert 'href="app.html">A. App' in index and 'href="one.html">1. One' in index
    code = re.sub(r"<[^>]+>", "", one[one.index('<div class="highlight'):])
    assert "# (1.1), (A.1)" in code and "'(1.1) ='" in code.replace("&#39;", "'")
    assert "(one-a)" not in code and "(app-b)" not in code
