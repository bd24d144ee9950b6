"""A Sphinx extension of the course's book: each page's scripts, once, and none from a CDN.

- sphinx-thebe (added by Jupyter Book 1) registers its inline configuration script, which
  declares ``const THEBE_JS_URL``, once per read phase; on a fresh build the page receives it
  twice and the browser reports "Identifier 'THEBE_JS_URL' has already been declared". Every
  page keeps one copy of each script.
- With live code (thebe) switched off in ``_config.yml`` (``launch_buttons.thebe: false``), the
  thebe loader and its configuration, which names the thebe bundle on unpkg.com, serve no
  purpose: they are left out, so that no page refers to a CDN at all.
- The ``.ipynb`` downloads (``_sources/<page>.ipynb``) are copies of the notebook that myst-nb
  writes *before* it merges in the outputs from the execution cache, so they would download
  unexecuted. After the build, each is replaced by its executed version from the cache, made
  into the student's notebook (``student_notebooks.student_notebook``: the check cell, included
  code inlined, references into other chapters as links to the site with their numbers,
  solutions folded in ``<details>``, no widget state, stable cell ids).
- Each link to a notebook (the theme's ``.ipynb`` download button) downloads it
  (``download`` attribute) instead of opening its JSON in a new tab.
- ``site_package``: the wheel of course_pkg published with the site, its address
  (``html.baseurl``) and the ``{course-install}`` directive of the page "Get started".
- The execution cache is keyed on course_pkg's sources as well as on each chapter's code
  (``student_notebooks.inject_fingerprint``, on Sphinx's ``source-read``).
- ``site_links``: the launch, repository and issue buttons exist only once ``repository.url``
  is set, and then lead to notebooks; ``problem_sets``: the problem-sets page and its student
  notebooks; ``course.css``: wide tables, equations and code scroll inside their own box;
  ``parallel_execution``: outdated notebooks run two at a time before Sphinx reads them.

``tests/test_book_build.py``, ``tests/test_browser.py``, ``tests/test_site_links.py`` and
``tests/test_student_notebooks.py`` check them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import parallel_execution  # noqa: E402
import problem_sets  # noqa: E402
import site_links  # noqa: E402
import site_package  # noqa: E402
import student_notebooks  # noqa: E402

THEBE_FILES = ("sphinx-thebe.js", "sphinx-thebe.css")


def _script_key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
    return (str(filename), tuple(sorted(attributes.items())))


def _is_thebe(asset: Any) -> bool:
    filename = str(getattr(asset, "filename", asset) or "")
    body = str((getattr(asset, "attributes", {}) or {}).get("body", ""))
    return filename.endswith(THEBE_FILES) or "THEBE_JS_URL" in body


def thebe_enabled(app: Any) -> bool:
    options = app.config.html_theme_options or {}
    return bool((options.get("launch_buttons") or {}).get("thebe"))


def tidy_page_assets(app: Any, pagename: str, templatename: str,
                     context: dict[str, Any], doctree: Any) -> None:
    """Keep the first of identical ``<script>`` entries; drop thebe's when it is off."""
    drop_thebe = not thebe_enabled(app)
    if context.get("script_files"):
        seen: set[tuple] = set()
        unique = []
        for script in context["script_files"]:
            key = _script_key(script)
            if key not in seen and not (drop_thebe and _is_thebe(script)):
                seen.add(key)
                unique.append(script)
        context["script_files"] = unique
    if drop_thebe and context.get("css_files"):
        context["css_files"] = [css for css in context["css_files"] if not _is_thebe(css)]


def executed_downloads(app: Any, exception: Exception | None) -> None:
    """Merge the cached outputs into every downloadable ``_sources/**/*.ipynb``."""
    config = getattr(app.env, "mystnb_config", None)
    if exception is not None or app.builder.format != "html" or config is None:
        return
    if config.execution_mode != "cache":
        return
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(config.execution_cache_path)
    found = site_package.site_map(app.env, getattr(app, "course_site_address", ""))
    wheel = app.course_wheel
    sources = Path(app.outdir, "_sources")
    for ipynb in sources.rglob("*.ipynb"):
        notebook = nbformat.read(ipynb, as_version=4)
        try:
            _, notebook = cache.merge_match_into_notebook(notebook)
        except KeyError:  # not in the cache (e.g. a notebook that is never executed)
            pass
        export = student_notebooks.Export(
            page=ipynb.relative_to(sources).with_suffix("").as_posix(), address=found.address,
            wheel_name=wheel.name, wheel_url=wheel.url, chapters=found.chapters,
            equations=found.equations, targets=found.targets)
        nbformat.write(student_notebooks.student_notebook(notebook, export), ipynb)


NOTEBOOK_LINK = re.compile(r'<a href="(?P<href>[^"]+\.ipynb)"(?P<rest>[^>]*?)\s+target="_blank"')


def download_notebook_links(html: str) -> str:
    """Make each link to a notebook download it (``download``), rather than open its JSON in
    a new tab, as it does from a site opened from disk (``file://``)."""
    def replace(match: re.Match) -> str:
        name = match.group("href").rsplit("/", 1)[-1]
        return f'<a href="{match.group("href")}"{match.group("rest")} download="{name}"'

    return NOTEBOOK_LINK.sub(replace, html)


def notebook_links_download(app: Any, exception: Exception | None) -> None:
    """build-finished: :func:`download_notebook_links` on every page."""
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        changed = download_notebook_links(text)
        if changed != text:
            page.write_text(changed, encoding="utf-8")


def fingerprint_package(app: Any) -> None:
    """builder-inited: one fingerprint of course_pkg for the whole build (taken before any
    notebook runs, so that the parallel execution and myst-nb key the cache alike even if a
    file changes during the build)."""
    app.course_pkg_fingerprint = student_notebooks.package_fingerprint()


def key_cache_on_package(app: Any, docname: str, source: list[str]) -> None:
    """source-read: chapters that import course_pkg carry the package's fingerprint."""
    if not hasattr(app, "course_pkg_fingerprint"):
        fingerprint_package(app)
    source[0] = student_notebooks.inject_fingerprint(source[0], app.course_pkg_fingerprint)


def serve_course_css(app: Any, config: Any) -> None:
    """config-inited: serve book/_css/ (course.css) from _static/ as well."""
    css = str(Path(__file__).resolve().parents[1] / "_css")
    if css not in config.html_static_path:
        config.html_static_path = [*config.html_static_path, css]


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", tidy_page_assets, priority=900)
    app.connect("build-finished", executed_downloads)
    app.connect("build-finished", notebook_links_download)
    app.connect("builder-inited", fingerprint_package, priority=100)
    app.connect("source-read", key_cache_on_package)
    app.connect("config-inited", serve_course_css)
    app.add_css_file("course.css")
    site_links.setup(app)
    site_package.setup(app)
    problem_sets.setup(app)
    parallel_execution.setup(app)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
