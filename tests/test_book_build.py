"""The whole book builds cleanly, offline, with every chapter downloadable as a notebook.

One clean build per test session is shared with ``tests/test_browser.py`` through
:func:`built_site`: under pytest-xdist the workers share a lock and the build's result, and both
modules also carry ``xdist_group("book")`` so that ``--dist loadgroup`` keeps them together.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.book, pytest.mark.xdist_group("book")]

# Sphinx warnings, as "<where>: WARNING: ..." or a bare "WARNING: ..." (colour codes aside);
# <where> may contain spaces ("path:docstring of course_pkg.f:3").
SPHINX_WARNING = re.compile(r"^(?:\x1b\[[0-9;]*m)*(?:.*?: )?(?:WARNING|ERROR|CRITICAL): ", re.M)


@dataclass(frozen=True)
class BuiltSite:
    """The result of one ``jupyter-book build`` of the repository."""

    html: Path
    returncode: int
    log: str
    seconds: float


def toc_files() -> list[str]:
    """Every document named in ``_toc.yml`` (root first), as paths without a suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []):
                    walk(child)

    walk(toc)
    return files


def chapter_files() -> list[str]:
    """The documents of the part captioned "Chapters" (all of ``_toc.yml`` if there is none)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for part in toc.get("parts", []):
        if part.get("caption", "").lower() == "chapters":
            return [entry["file"] for entry in part["chapters"]]
    return toc_files()[1:]


def source_of(docname: str) -> Path:
    for suffix in (".md", ".ipynb"):
        if (ROOT / docname).with_suffix(suffix).exists():
            return (ROOT / docname).with_suffix(suffix)
    raise FileNotFoundError(f"_toc.yml names {docname!r}, but there is no .md or .ipynb of it")


def is_notebook(docname: str) -> bool:
    """A .ipynb, or a MyST markdown file with a kernelspec in its front matter."""
    path = source_of(docname)
    if path.suffix == ".ipynb":
        return True
    text = path.read_text()
    return text.startswith("---") and "kernelspec:" in text.split("---", 2)[1]


def _run_build(out: Path) -> BuiltSite:
    env = dict(os.environ, COURSE_BOOK_BUILD="1", PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    command = [str(BIN / "jupyter-book"), "build", str(ROOT), "--path-output", str(out),
               "-W", "-n", "--keep-going"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    seconds = time.perf_counter() - start
    return BuiltSite(out / "_build" / "html", done.returncode, done.stdout + done.stderr,
                     seconds)


def built_site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """Build the book once per session (once across all xdist workers) and return the result."""
    reuse = os.environ.get("COURSE_BOOK_SITE")
    if reuse:  # a developer's shortcut: test an existing build (its html folder) as it is
        html = Path(reuse)
        log = html.parent.parent / "build.log"
        return BuiltSite(html, 0, log.read_text() if log.is_file() else "", 0.0)
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this session only
    out, record = base / "book-site", base / "book-site.json"
    with FileLock(str(base / "book-site.lock")):
        if record.exists():
            data = json.loads(record.read_text())
            return BuiltSite(Path(data["html"]), data["returncode"], data["log"],
                             data["seconds"])
        site = _run_build(out)
        record.write_text(json.dumps({"html": str(site.html), "returncode": site.returncode,
                                      "log": site.log, "seconds": site.seconds}))
        return site


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    return built_site(tmp_path_factory)


class ResourceLinks(HTMLParser):
    """Collects every URL that a page *loads* (scripts, styles, fonts, images, frames)."""

    LOADING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon",
                    "shortcut icon", "apple-touch-icon", "manifest"}

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[tuple[str, str]] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed", "track"):
            if a.get("src"):
                self.loaded.append((tag, a["src"]))
        if tag == "link" and a.get("href"):
            rels = set(a.get("rel", "").lower().split()) | {a.get("rel", "").lower()}
            if rels & self.LOADING_RELS:
                self.loaded.append((tag, a["href"]))
        if tag == "object" and a.get("data"):
            self.loaded.append((tag, a["data"]))
        if a.get("style"):
            self.loaded.extend(("style", u) for u in css_urls(a["style"]))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.loaded.extend(("style", u) for u in css_urls(data))


class Anchors(HTMLParser):
    """Collects the ids a page defines and the hrefs of its links."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])


def css_urls(css: str) -> list[str]:
    """The targets of ``url(...)`` and ``@import`` in a piece of CSS."""
    found = re.findall(r"url\(\s*['\"]?([^'\")\s]+)", css)
    found += re.findall(r"@import\s+['\"]([^'\"]+)['\"]", css)
    return found


CDN_HOSTS = ("unpkg.com", "cdn.jsdelivr.net", "cdnjs.cloudflare.com", "fonts.googleapis.com")
"""Not even named in a page: the CDN URLs of myst-nb, Sphinx and sphinx-thebe are replaced."""


def is_external(url: str) -> bool:
    return bool(re.match(r"^(?:https?:)?//", url.strip(), re.I))


def build_warnings(log: str) -> list[str]:
    """The lines of a build log that are Sphinx warnings or errors."""
    return [line for line in log.splitlines() if SPHINX_WARNING.match(line)]


def test_the_book_builds_without_warnings(site: BuiltSite) -> None:
    warnings = build_warnings(site.log)
    assert site.returncode == 0, ("jupyter-book build failed:\n" + "\n".join(warnings)
                                  + "\n...\n" + site.log[-3000:])
    assert not warnings, "the build warned:\n" + "\n".join(warnings)
    assert "build succeeded" in site.log
    print(f"clean build of the book: {site.seconds:.1f} s")


def test_notebooks_run_in_parallel_and_myst_nb_reuses_them(site: BuiltSite) -> None:
    """book/_ext/parallel_execution.py executes the clean build's notebooks two at a time;
    myst-nb must then find every one of them in the cache (same reader, same key), so that
    none is executed a second time."""
    if (os.cpu_count() or 1) < 2 and not os.environ.get("COURSE_BOOK_JOBS"):
        pytest.skip("one core: the notebooks run one at a time, inside myst-nb")
    started = re.search(r"executing (\d+) notebooks, (\d+) at a time", site.log)
    assert started, "the notebooks were not executed ahead of Sphinx"
    assert int(started.group(1)) >= len([d for d in toc_files() if is_notebook(d)]) - 1
    again = re.findall(r"(\S+\.md): Executing notebook", site.log)
    assert not again, f"executed twice (the cache key did not match): {again}"
    reused = re.findall(r"(\S+\.md): Using cached notebook", site.log)
    assert len(reused) >= int(started.group(1))


def test_the_warning_filter_sees_sphinx_warnings_only() -> None:
    log = ("\x1b[91m/work/book/a.md:3: WARNING: undefined label: 'x'\x1b[39;49;00m\n"
           "WARNING: unknown config value 'y' in override, ignoring\n"
           "/work/book/b.md: ERROR: Unknown directive type\n"
           "/work/x.py:docstring of course_pkg.f:3: ERROR: Undefined substitution referenced\n"
           "[IPKernelApp] WARNING | Kernel is running over TCP without encryption.\n"
           "build succeeded.\n")
    assert len(build_warnings(log)) == 4


def test_every_toc_document_has_a_page(site: BuiltSite) -> None:
    missing = [d for d in toc_files() if not (site.html / d).with_suffix(".html").is_file()]
    assert not missing, f"no HTML page for {missing}"
    assert (site.html / "index.html").is_file()


def test_no_page_loads_anything_from_the_network(site: BuiltSite) -> None:
    offenders = []
    pages = sorted(site.html.rglob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text(errors="replace")
        parser = ResourceLinks()
        parser.feed(text)
        offenders += [f"{page.relative_to(site.html)}: <{tag}> {url}"
                      for tag, url in parser.loaded if is_external(url)]
        offenders += [f"{page.relative_to(site.html)}: mentions {host}"
                      for host in CDN_HOSTS if host in text]
    for sheet in (site.html / "_static").rglob("*.css"):
        offenders += [f"{sheet.relative_to(site.html)}: {url}"
                      for url in css_urls(sheet.read_text(errors="replace")) if is_external(url)]
    assert not offenders, "resources loaded from the network:\n" + "\n".join(offenders)


def test_the_resource_scanner_sees_external_loads() -> None:
    """The scanner above would catch a CDN script, stylesheet, font or image."""
    parser = ResourceLinks()
    parser.feed('<script src="https://cdn.example/x.js"></script>'
                '<link rel="stylesheet" href="//cdn.example/x.css">'
                '<link rel="preload" as="font" href="http://cdn.example/f.woff2">'
                '<style>@import "https://fonts.example/css"; p{background:url(https://i/x.png)}'
                '</style><a href="https://example.org/paper">a citation</a>'
                '<script src="../_static/local.js"></script>')
    external = [url for _, url in parser.loaded if is_external(url)]
    assert len(external) == 5
    assert "https://example.org/paper" not in external


def test_math_and_widgets_are_served_by_the_site(site: BuiltSite) -> None:
    static = site.html / "_static"
    assert (static / "mathjax" / "tex-chtml.js").is_file()
    assert any((static / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert (static / "widgets" / "require.js").is_file()
    assert (static / "widgets" / "embed-amd.js").is_file()
    math_pages = [p for p in site.html.rglob("*.html") if 'class="math' in p.read_text()]
    assert math_pages, "no page of the book has any math"
    for page in math_pages:
        assert "_static/mathjax/tex-chtml.js" in page.read_text(), f"{page}: MathJax not local"
    # The vendored bundles must not be forced onto every page (the _static pitfall).
    plain = [p for p in site.html.rglob("*.html")
             if "application/vnd.jupyter.widget-state+json" not in p.read_text()]
    assert plain
    assert not [p for p in plain if "widgets/embed-amd.js" in p.read_text()]


def test_internal_links_and_equation_references_resolve(site: BuiltSite) -> None:
    """Every link inside the site reaches an existing file and, with a #fragment, an id there;
    equation references ({eq}`label`) are among them."""
    pages = {}
    for page in site.html.rglob("*.html"):
        parser = Anchors()
        parser.feed(page.read_text(errors="replace"))
        pages[page.resolve()] = parser
    broken, equation_links = [], 0
    for page, parser in pages.items():
        for href in parser.hrefs:
            url = urlsplit(href)
            if url.scheme or href.startswith("//"):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if not target.exists():
                broken.append(f"{page.name}: {href}")
            elif url.fragment and target.suffix == ".html":
                equation_links += url.fragment.startswith("equation-")
                if url.fragment not in pages[target].ids:
                    broken.append(f"{page.name}: {href}")
    assert not broken, "broken links:\n" + "\n".join(broken)
    assert equation_links > 0, "no equation cross-reference in the whole book"


DIRECTIVE = re.compile(r"^\s*(?:`{3,}|:{3,})\{(prf:\w+|exercise|solution)\}", re.M)


def rendered_marker(directive: str) -> str:
    """The start of the class attribute sphinx-proof / sphinx-exercise give a directive."""
    kind = directive.removeprefix("prf:")
    if kind == "proof":
        return 'class="proof admonition'
    if directive.startswith("prf:"):
        return f'class="proof {kind} admonition'
    return f'class="{kind}'


def test_theorem_proof_algorithm_exercise_directives_render(site: BuiltSite) -> None:
    """Each {prf:...}, {exercise} and {solution} block of a source becomes its HTML box."""
    missing = []
    for docname in toc_files():
        used = DIRECTIVE.findall(source_of(docname).read_text())
        page = (site.html / docname).with_suffix(".html").read_text()
        for directive in set(used):
            if page.count(rendered_marker(directive)) < used.count(directive):
                missing.append(f"{docname}: {directive}")
    assert not missing, "directives not rendered:\n" + "\n".join(missing)


@pytest.mark.parametrize("docname", chapter_files())
def test_every_chapter_downloads_as_a_notebook(site: BuiltSite, docname: str) -> None:
    assert is_notebook(docname), f"{docname} is not a MyST notebook (no kernelspec)"
    ipynb = (site.html / "_sources" / docname).with_suffix(".ipynb")
    assert ipynb.is_file(), f"no downloadable {ipynb.name} in the built site"
    notebook = json.loads(ipynb.read_text())
    assert notebook["nbformat"] == 4 and notebook["cells"]
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert not code or any(cell["outputs"] for cell in code), "the download is not executed"
    page = (site.html / docname).with_suffix(".html").read_text()
    assert f"_sources/{docname}.ipynb" in page, "no download link to the .ipynb"


def configured_repository() -> str:
    return ((yaml.safe_load((ROOT / "_config.yml").read_text()).get("repository") or {})
            .get("url") or "").strip()


@pytest.mark.parametrize("docname", chapter_files())
def test_no_launch_or_repository_button_while_no_repository_is_set(site: BuiltSite,
                                                                   docname: str) -> None:
    """With ``repository.url`` empty, no button leads nowhere (book/_ext/site_links.py);
    tests/test_site_links.py builds the book with a repository set."""
    if configured_repository():
        pytest.skip("_config.yml names a repository: tests/test_site_links.py checks buttons")
    page = (site.html / docname).with_suffix(".html").read_text()
    for name in ("mybinder.org", "colab.research.google.com", "launch-buttons",
                 "repository-button", "issues-button", "/issues/new"):
        assert name not in page, f"{docname}: {name} on a site with no repository"


def test_the_student_download_is_ready_for_jupyterlab(site: BuiltSite) -> None:
    """Each chapter's .ipynb: setup cell first (if it uses course_pkg), solutions folded, cell
    ids and nbformat 4.5 (JupyterLab adds nothing), no build-only metadata."""
    for docname in chapter_files():
        ipynb = (site.html / "_sources" / docname).with_suffix(".ipynb")
        notebook = json.loads(ipynb.read_text())
        assert (notebook["nbformat"], notebook["nbformat_minor"]) == (4, 5), docname
        assert all(cell.get("id") for cell in notebook["cells"]), docname
        assert "course_pkg_sources" not in json.dumps(notebook["metadata"]), docname
        assert "jupytext" not in notebook["metadata"], docname
        code = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
        if "course_pkg" in code:
            first = notebook["cells"][0]
            assert first["cell_type"] == "code", docname
            assert "course-setup" in first["metadata"].get("tags", []), docname
            assert "pip install" in "".join(first["source"]), docname
        for cell in notebook["cells"]:
            text = "".join(cell["source"])
            if "{solution}" in text:
                assert cell["metadata"].get("jupyter", {}).get("source_hidden"), \
                    f"{docname}: a solution in plain view"


URL = re.compile(r"""(?:https?:)?//[^\s"'<>)\\]+""")


def test_no_link_leads_into_a_placeholder_or_example_domain(site: BuiltSite) -> None:
    """No href, src or URL in any page, stylesheet or download points at example.org/.com/.net
    or a placeholder repository (book/_ext/site_links.py names them)."""
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from site_links import is_placeholder

    offenders = []
    files = [*site.html.rglob("*.html"), *site.html.rglob("*.ipynb")]
    assert files
    for path in files:
        text = path.read_text(errors="replace")
        links = []
        if path.suffix == ".html":
            parser = Anchors()
            parser.feed(text)
            resources = ResourceLinks()
            resources.feed(text)
            links = parser.hrefs + [url for _, url in resources.loaded]
        links += URL.findall(text)
        offenders += [f"{path.relative_to(site.html)}: {url}"
                      for url in set(links) if is_external(url) and is_placeholder(url)]
    assert not offenders, "links into placeholders:\n" + "\n".join(sorted(offenders))


def test_the_placeholder_scan_would_fail_on_the_old_buttons() -> None:
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from site_links import is_placeholder

    old = ('<a href="https://hub.example.org/hub/user-redirect/git-pull?repo=x">JupyterHub</a>'
           '<a href="https://mybinder.org/v2/gh/backprop-course/backprop-course/main">B</a>')
    parser = Anchors()
    parser.feed(old)
    assert [is_placeholder(url) for url in parser.hrefs] == [True, True]


def problem_set_sources() -> list[Path]:
    return sorted((ROOT / "assignments" / "source").glob("*/*.ipynb"))


def solution_code(notebook: dict) -> list[str]:
    """The non-comment lines inside every BEGIN/END SOLUTION region of a source notebook."""
    found, inside = [], False
    for cell in notebook["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
            elif inside and len(line.strip()) > 6 and not line.strip().startswith("#"):
                found.append(line.strip())
    return found


def test_the_problem_sets_page_offers_each_student_notebook(site: BuiltSite) -> None:
    """Each assignment is on the problem-sets page with its points (summed here from the
    source's nbgrader metadata) and a download that has no solution and no hidden test."""
    page = (site.html / "book" / "problem_sets.html").read_text()
    text = re.sub(r"<[^>]+>", "", page)
    sources = problem_set_sources()
    assert sources
    for source in sources:
        original = json.loads(source.read_text())
        points = sum(float(c["metadata"]["nbgrader"]["points"]) for c in original["cells"]
                     if c["metadata"].get("nbgrader", {}).get("grade"))
        name = source.stem
        assert f"{points:g} points" in text, f"{name}: {points:g} points not on the page"
        assert f'href="../problem_sets/{name}.ipynb"' in page, f"{name}: no download link"
        assert f"nbgrader validate {name}.ipynb" in text
        download = (site.html / "problem_sets" / f"{name}.ipynb").read_text()
        student = json.loads(download)
        assert student["cells"], name
        assert "### BEGIN SOLUTION" not in download and "BEGIN SOLUTION" not in download
        assert "BEGIN HIDDEN TESTS" not in download
        answers = solution_code(original)
        assert answers, f"{name}: the source has no solution to compare with"
        leaked = [line for line in answers if line in download]
        assert not leaked, f"{name}: solution code in the download: {leaked[:3]}"
        assert "NotImplementedError" in download
        outputs = [c for c in student["cells"] if c["cell_type"] == "code" and c["outputs"]]
        assert not outputs, f"{name}: the download carries outputs"
