"""Lettered appendices, and equation numbers where the code names an equation by its label.

Two Sphinx hooks for the book's numbering (``_toc.yml`` numbers the chapters, ``math_numfig``
numbers the equations per chapter, see ``_config.yml``):

- **Appendices are lettered.** The pages of the toctree captioned "Appendices" get the letters
  A, B, C, ... instead of the numbers that continue the chapters': their titles, their
  entries in the navigation, their sections and their equations, (A.1).
- **Code shows numbers, not labels.** A code cell may name an equation by its label, in a
  comment or a printed string: ``# (mf-forward)``, ``print("(mf-dim) = ...")``. In the built
  page, every such ``(label)`` of a numbered equation, in the cell's source and in its printed
  output, reads as the equation's number, ``(5.1)``, the number the prose shows. The notebook
  keeps the label, which stays correct when chapters move.

Figures (plot legends) are pictures and cannot be rewritten: a legend names no label.
"""

from __future__ import annotations

import re
import string
from typing import Any

from docutils import nodes
from sphinx import addnodes

APPENDIX_CAPTION = "Appendices"
"""The caption, in ``_toc.yml``, of the part whose pages are lettered."""


def _appendix_pages(env: Any) -> list[str]:
    """The docnames of the appendices, in the order of their toctree."""
    root = env.config.root_doc
    if root not in env.found_docs:
        return []
    pages: list[str] = []
    for toctree in env.get_doctree(root).findall(addnodes.toctree):
        if toctree.get("caption") == APPENDIX_CAPTION:
            pages += [ref for _title, ref in toctree["entries"] if ref in env.found_docs]
    return pages


def _letter(number: Any, letter: str) -> Any:
    """A section or figure number (a tuple or list, first item the chapter) with its letter."""
    if not number:
        return number
    lettered = [letter, *list(number)[1:]]
    return tuple(lettered) if isinstance(number, tuple) else lettered


def letter_appendices(app: Any, env: Any) -> list[str]:
    """Replace each appendix's chapter number by its letter, after Sphinx numbered them.

    Connected to ``env-get-updated`` after Sphinx's own toctree collector, which assigns the
    numbers in the same event. Returns the appendices (their pages must be written again).
    """
    pages = _appendix_pages(env)
    for index, docname in enumerate(pages):
        letter = string.ascii_uppercase[index]
        secnumbers = env.toc_secnumbers.get(docname, {})
        for anchor, number in list(secnumbers.items()):
            secnumbers[anchor] = _letter(number, letter)
        for reference in env.tocs.get(docname, nodes.bullet_list()).findall(nodes.reference):
            if reference.get("secnumber"):
                reference["secnumber"] = _letter(reference["secnumber"], letter)
        title = env.titles.get(docname)
        if title is not None and title.get("secnumber"):
            title["secnumber"] = _letter(title["secnumber"], letter)
        for figures in env.toc_fignumbers.get(docname, {}).values():
            for node_id, number in list(figures.items()):
                figures[node_id] = _letter(number, letter)
    return pages


def equation_numbers(env: Any) -> dict[str, str]:
    """Every numbered equation's label and its number as the page shows it, e.g. '5.1'."""
    numbers = {}
    for label, (docname, _serial) in env.get_domain("math").equations.items():
        number = env.toc_fignumbers.get(docname, {}).get("displaymath", {}).get(
            nodes.make_id(f"equation-{label}"))
        if number:
            numbers[label] = env.config.math_numsep.join(map(str, number))
    return numbers


def number_labels_in_code(app: Any, doctree: nodes.document, docname: str) -> None:
    """In code cells and their text outputs, write '(label)' of an equation as '(5.1)'."""
    numbers = equation_numbers(app.env)
    if not numbers:
        return
    names = "|".join(re.escape(label) for label in sorted(numbers, key=len, reverse=True))
    pattern = re.compile(rf"\(({names})\)")
    for block in doctree.findall(nodes.literal_block):
        text = block.astext()
        if pattern.search(text):
            numbered = pattern.sub(lambda m: f"({numbers[m[1]]})", text)
            highlighted_as_code = block.rawsource == text
            block.children = [nodes.Text(numbered)]
            if highlighted_as_code:         # the HTML writer highlights rawsource
                block.rawsource = numbered


def setup(app: Any) -> dict[str, Any]:
    app.connect("env-get-updated", letter_appendices, priority=900)
    app.connect("doctree-resolved", number_labels_in_code)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
