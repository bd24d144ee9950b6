"""A Sphinx extension of the course's book: keep each page's scripts free of duplicates.

sphinx-thebe (added by Jupyter Book 1) registers its inline configuration script, which
declares ``const THEBE_JS_URL``, once per read phase; on a fresh build the page receives it
twice and the browser reports "Identifier 'THEBE_JS_URL' has already been declared".
``tests/test_browser.py`` fails on such console errors, so every page keeps one copy of each
script.
"""

from __future__ import annotations

from typing import Any


def _script_key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
    return (str(filename), tuple(sorted(attributes.items())))


def drop_duplicate_scripts(app: Any, pagename: str, templatename: str,
                           context: dict[str, Any], doctree: Any) -> None:
    """Keep the first of identical ``<script>`` entries (same file, same inline body)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
