"""Where the course's website is, and how it numbers its chapters and equations.

The checks cite an equation twice: by its number in the student's notebook (JupyterLab numbers
a notebook's display equations (1), (2), ...) and by its number on the website, (4.3) in
chapter 4, with a link when the site has an address. This module is the website's half.

The copy in the repository is empty: an address of "" and no numbers, and a check then names
the chapter's file and the equation's label. The wheel that the website serves is built from a
copy of the package in which ``book/_ext/site_package.py`` has filled in the built site's own
values, so that a student who installed it reads the site's numbers and links.
"""

from __future__ import annotations

ADDRESS = ""
"""The website's address, ending in "/", or "" while ``html.baseurl`` is unset."""

CHAPTERS: dict[str, tuple[str, str]] = {}
"""Page (``book/matrix_form``) -> (its number on the site, its title)."""

EQUATIONS: dict[str, tuple[str, str]] = {}
"""Equation label (``mf-delta``) -> (the page it is on, its number there, e.g. "4.3")."""


def page_url(page: str, anchor: str = "") -> str:
    """The address of ``page`` on the site (with ``#anchor``), or "" without an address."""
    if not ADDRESS:
        return ""
    return f"{ADDRESS}{page}.html" + (f"#{anchor}" if anchor else "")


def cite_equation(label: str) -> str:
    """How the site numbers equation ``label``: "(4.3) in chapter 4, <address>" when the site
    is known, else "equation '<label>' of book/<page>.md"-style text; "" for no label."""
    if not label:
        return ""
    if label not in EQUATIONS:
        return f"the equation labelled '{label}' in the book"
    page, number = EQUATIONS[label]
    chapter = CHAPTERS.get(page, ("", ""))[0]
    text = f"({number})" + (f" in chapter {chapter}" if chapter else "")
    url = page_url(page, f"equation-{label.lower()}")  # docutils lower-cases node ids
    return f"{text} on the course site, {url}" if url else f"{text} on the course site"
