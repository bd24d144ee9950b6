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
  unexecuted. After the build, each is replaced by its executed version from the cache.

``tests/test_book_build.py`` and ``tests/test_browser.py`` check all three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    for ipynb in Path(app.outdir, "_sources").rglob("*.ipynb"):
        notebook = nbformat.read(ipynb, as_version=4)
        try:
            _, executed = cache.merge_match_into_notebook(notebook)
        except KeyError:  # not in the cache (e.g. a notebook that is never executed)
            continue
        nbformat.write(executed, ipynb)


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", tidy_page_assets, priority=900)
    app.connect("build-finished", executed_downloads)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
