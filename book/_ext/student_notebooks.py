"""The chapters as a student downloads them, and the execution cache's key on course_pkg.

**Cache key.** jupyter-cache (``execute_notebooks: cache``) recognises an executed notebook by
the text of its code cells and its kernelspec only, so a change to ``course_pkg`` would publish
outputs computed by the old code. :func:`inject_fingerprint` writes a hash of every source file
of the package (:func:`package_fingerprint`) into the kernelspec of each chapter that imports
``course_pkg`` as Sphinx reads it: a change to the package changes the key, and exactly those
chapters run again. The downloads carry no trace of it (:func:`student_notebook`).

**Downloads.** :func:`student_notebook` turns an executed chapter into a notebook that reads
whole on its own, in JupyterLab (with or without ``jupyterlab-myst``), Colab or VS Code
(:class:`Export` says what it knows of the site):

- a first code cell checks that ``course_pkg`` can be imported and, if not, installs the wheel
  the site serves, or names the file to download and the command to run
  (:func:`setup_source`, the same cell as the problem sets');
- included code is inlined: each ``{literalinclude}`` becomes a Python code block;
- a reference that the notebook cannot resolve (``{eq}`` into another chapter, ``{doc}``,
  ``{ref}``, ``{prf:ref}``) becomes a link to that page of the site with its number,
  "(4.3) in chapter 4", or plain text while the site has no address; a reference to an
  equation of the same chapter stays (JupyterLab numbers the notebook's own equations);
  directives that only Sphinx runs (``{eval-rst}``, ``{tableofcontents}``) become a link;
  an equation label in a code cell or its printed output, ``(mf-forward)``, reads as the
  site's number, ``(5.1)``, as on the site's page;
- each exercise's ``{solution}`` block becomes a markdown cell of its own holding a
  ``<details><summary>Solution</summary>`` block: folded, with a plain title, one click opens it;
- an explorer's output is its live form's, sliders and figure, and the notebook's metadata
  holds the sliders' widget state under the fixed model ids the live form uses
  (``course_pkg.widgets``): a default JupyterLab restores them whenever the notebook opens, so
  no widget reads "model not found", before a run or after a run, a save and a kernel
  shutdown; no other widget view or widget state is kept;
- the notebook is nbformat 4.5 with stable cell ids, ipykernel's own kernelspec and no
  jupytext metadata, so that JupyterLab has nothing to change when it opens it and starts its
  kernel (an opened download is not "modified").

Run as a script (``python book/_ext/student_notebooks.py book/*.md``), it writes
``book/<chapter>.ipynb`` beside each MyST chapter: ``.binder/postBuild`` does this so that
Binder opens the chapters as notebooks. Each chapter is first run as the site build runs it
(:func:`executed_as_the_site_builds`), so that its notebook is the site's download: an
unexecuted chapter would hold no widget state, and its explorers would read "model not found"
once run, saved and reopened in a JupyterLab that does not save widget state.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FINGERPRINT_KEY = "course_pkg_sources"
SETUP_TAG = "course-setup"
SOLUTION_TAG = "course-solution"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "course_pkg"


@dataclass
class Export:
    """What the export of one chapter knows of the site (the Sphinx build fills it in)."""

    page: str = ""
    """This chapter's page, e.g. ``book/matrix_form``."""
    address: str = ""
    """The site's address, ending in "/", or "" (references become plain text)."""
    wheel_name: str = "course_pkg.whl"
    wheel_url: str = ""
    chapters: dict[str, tuple[str, str]] = field(default_factory=dict)
    """page -> (number, title)"""
    equations: dict[str, tuple[str, str]] = field(default_factory=dict)
    """equation label -> (page, number)"""
    targets: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """label -> (page, anchor, text such as 'Theorem 4.1')"""
    root: Path = ROOT
    """The repository: ``{literalinclude}`` paths are relative to the chapter's folder in it."""

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
"""The kernelspec that ipykernel installs, as JupyterLab writes it into a notebook."""


def language_info() -> dict[str, Any]:
    """The ``language_info`` that ipykernel reports on this Python.

    JupyterLab writes the running kernel's ``language_info`` into the notebook when the kernel
    starts, and marks the notebook modified unless it is equal to what the notebook holds (a
    notebook with a partial one, as nbgraders's sources have, reads "modified" about two
    seconds after its kernel starts). The downloads carry the build's own, so that a student
    on the same Python (the course's pinned environment) opens them unchanged; on another
    Python version JupyterLab records that version, which is a real change.
    """
    from ipykernel.ipkernel import IPythonKernel

    return copy.deepcopy(dict(IPythonKernel.language_info))


def package_fingerprint(package: Path = PACKAGE) -> str:
    """A hash of every ``.py`` file of the package: its path and its bytes, in sorted order."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(package).rglob("*.py") if "__pycache__" not in p.parts)
    if not files:
        raise FileNotFoundError(f"no Python source under {package}: expected course_pkg/")
    for path in files:
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


FRONT_KERNELSPEC = re.compile(r"\A(---\n(?:.*\n)*?)kernelspec:[ \t]*\n([ \t]+)", re.M)


def inject_fingerprint(text: str, fingerprint: str) -> str:
    """Add ``course_pkg_sources: <fingerprint>`` to the kernelspec of a MyST notebook that
    uses course_pkg; any other text comes back unchanged."""
    if "course_pkg" not in text:
        return text
    match = FRONT_KERNELSPEC.match(text)
    if not match:
        return text
    indent = match.group(2)
    line = f"{FINGERPRINT_KEY}: '{fingerprint}'\n{indent}"
    return text[:match.end()] + line + text[match.end():]


def uses_course_pkg(notebook: Any) -> bool:
    return any(cell.cell_type == "code" and "course_pkg" in cell.source
               for cell in notebook.cells)


def setup_source(wheel_name: str, wheel_url: str = "") -> str:
    """The first cell of every downloaded chapter and problem set: is course_pkg importable,
    and if not, install the site's wheel ``wheel_url``, or (no address) say exactly which file
    to download and what to run."""
    download = (f"course_pkg is not installed in this kernel. Download {wheel_name} from the "
                f"page 'Get started' of the course's website into this notebook's folder, run\n"
                f'    %pip install "{wheel_name}[student]"\n'
                f"in a cell, then run this cell again.")
    lines = [
        "# Check: this notebook runs on the course's package, course_pkg.",
        "import importlib",
        "import importlib.util",
        "",
        f"COURSE_PKG_WHEEL = {wheel_url!r}",
        'if importlib.util.find_spec("course_pkg") is None:',
        "    if COURSE_PKG_WHEEL:  # the wheel the course's website serves",
        '        get_ipython().run_line_magic("pip", f\'install "course_pkg[student] @ '
        '{COURSE_PKG_WHEEL}"\')',
        "        importlib.invalidate_caches()",
        "    else:",
        f"        raise ModuleNotFoundError({download!r})",
        "import course_pkg",
        "",
        'print(f"course_pkg {course_pkg.__version__} is installed: run the cells below.")',
    ]
    return "\n".join(lines)


OPEN_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})\{solution\}.*$")


def split_solutions(source: str) -> list[tuple[str, bool]]:
    """Cut a markdown source into (text, is_solution) pieces at each ``{solution}`` block."""
    lines = source.split("\n")
    pieces: list[tuple[str, bool]] = []
    current: list[str] = []
    i = 0
    while i < len(lines):
        match = OPEN_FENCE.match(lines[i])
        if not match:
            current.append(lines[i])
            i += 1
            continue
        fence = match.group("fence")
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        if current and "".join(current).strip():
            pieces.append(("\n".join(current).strip("\n"), False))
        pieces.append(("\n".join(lines[i:end + 1]).strip("\n"), True))
        current = []
        i = end + 1
    if current and "".join(current).strip():
        pieces.append(("\n".join(current).strip("\n"), False))
    return pieces


def solution_details(block: str) -> str:
    """A ``{solution}`` block as a ``<details>`` block titled "Solution" (its options dropped)."""
    lines = block.split("\n")[1:-1]
    while lines and re.match(r"^[ \t]*:[\w-]+:", lines[0]):
        lines.pop(0)
    body = "\n".join(lines).strip("\n")
    return f"<details>\n<summary>Solution</summary>\n\n{body}\n\n</details>"


def _fold_solutions(cells: list[Any]) -> list[Any]:
    import nbformat

    out = []
    for cell in cells:
        if cell.cell_type != "markdown" or "{solution}" not in cell.source:
            out.append(cell)
            continue
        for text, is_solution in split_solutions(cell.source):
            if is_solution:
                folded = nbformat.v4.new_markdown_cell(solution_details(text))
                folded.metadata["tags"] = [SOLUTION_TAG]
                out.append(folded)
            else:
                piece = copy.deepcopy(cell)
                piece.source = text
                out.append(piece)
    return out


# -- references and includes ---------------------------------------------------------------------
ROLE = re.compile(r"\{(?P<role>eq|doc|ref|numref|prf:ref)\}`(?P<body>[^`]+)`")
DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>literalinclude|eval-rst|"
                       r"tableofcontents)\}(?P<argument>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
                       re.M | re.S)
EQUATION_LABEL = re.compile(r"\$\$[ \t]*\((?P<label>[\w:.-]+)\)")


def _split_target(body: str) -> tuple[str, str]:
    """``text <target>`` -> (text, target); ``target`` -> ("", target)."""
    match = re.fullmatch(r"(?s)\s*(.*?)\s*<([^<>]+)>\s*", body)
    return (match.group(1), match.group(2).strip()) if match else ("", body.strip())


def _page_of(target: str, export: Export) -> str:
    """A ``{doc}`` target as a page name, relative to the chapter's folder unless absolute."""
    target = target.removesuffix(".md").removesuffix(".ipynb")
    if target.startswith("/"):
        return target.lstrip("/")
    folder = Path(export.page).parent
    parts: list[str] = []
    for part in (*folder.parts, *target.split("/")):
        if part == "..":
            parts = parts[:-1]
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def _where(page: str, export: Export) -> str:
    """'chapter 4, *Title*' (or 'appendix B, ...'), as the site numbers and names ``page``."""
    number, title = export.chapters.get(page, ("", ""))
    title = title or Path(page).name.replace("_", " ")
    if not number:
        return f"*{title}*"
    kind = "appendix" if number[:1].isalpha() else "chapter"
    return f"{kind} {number}, *{title}*"


def _link(text: str, page: str, anchor: str, export: Export) -> str:
    if not export.address:
        return text
    url = f"{export.address}{page}.html" + (f"#{anchor}" if anchor else "")
    return f"[{text}]({url})"


def resolve_role(role: str, body: str, export: Export, own_labels: set[str]) -> str | None:
    """The text that replaces one role, or None to keep it (an equation of this notebook)."""
    text, target = _split_target(body)
    if role == "eq":
        if target in own_labels:
            return None
        page, number = export.equations.get(target, ("", ""))
        if not page:
            return f"the equation *{target}* of the course's book"
        if not number:
            return _link(f"the equation *{target}* of {_where(page, export)}", page,
                         f"equation-{target.lower()}", export)
        chapter = number.rsplit(".", 1)[0] if "." in number else ""
        kind = "appendix" if chapter[:1].isalpha() else "chapter"
        shown = f"({number}) in {kind} {chapter}" if chapter else f"({number})"
        return _link(shown, page, f"equation-{target.lower()}", export)
    if role == "doc":
        page = _page_of(target, export)
        return _link(text or _where(page, export), page, "", export)
    page, anchor, title = export.targets.get(target, ("", "", ""))
    if not page:
        return text or target.replace("-", " ")
    shown = text or title
    if page != export.page:
        shown = f"{shown} ({_where(page, export)})"
    return _link(shown, page, anchor, export)


def resolve_references(source: str, export: Export, own_labels: set[str]) -> str:
    """Replace every reference the notebook cannot resolve (:func:`resolve_role`)."""
    def replace(match: re.Match) -> str:
        found = resolve_role(match.group("role"), match.group("body"), export, own_labels)
        return match.group(0) if found is None else found

    return ROLE.sub(replace, source)


def number_labels(text: str, export: Export) -> str:
    """``(mf-forward)`` in code or its printed output as the site numbers it, ``(5.1)``.

    Only labels with a hyphen count (never a variable name in parentheses)."""
    numbered = {label: number for label, (_, number) in export.equations.items()
                if number and "-" in label}
    if not numbered or "(" not in text:
        return text
    pattern = re.compile(r"\((" + "|".join(map(re.escape, sorted(numbered, key=len,
                                                                  reverse=True))) + r")\)")
    return pattern.sub(lambda m: f"({numbered[m.group(1)]})", text)


def _number_code_cell(cell: Any, export: Export) -> None:
    cell.source = number_labels(cell.source, export)
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            output["text"] = number_labels(output.get("text", ""), export)
        elif "text/plain" in (output.get("data") or {}):
            output["data"]["text/plain"] = number_labels(output["data"]["text/plain"], export)


def python_object(path: Path, name: str) -> str:
    """The source of the function or class ``name`` (``Class.method`` too) in ``path``, with
    its decorators, as Sphinx's ``:pyobject:`` option selects it."""
    text = path.read_text()
    body: list[ast.stmt] = ast.parse(text).body
    node: Any = None
    for part in name.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.ClassDef)) and n.name == part), None)
        if node is None:
            raise ValueError(f"{path} has no {name!r} to include")
        body = node.body
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = text.splitlines()[first - 1:node.end_lineno]
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines)


def inline_directive(match: re.Match, export: Export) -> str:
    """A directive only Sphinx runs, as plain markdown: included code inlined, the rest a link."""
    name, argument, body = match.group("name"), match.group("argument").strip(), match.group("body")
    options = dict(re.findall(r"^[ \t]*:([\w-]+):[ \t]*(.*?)[ \t]*$", body, re.M))
    if name == "literalinclude":
        path = (export.root / Path(export.page).parent / argument).resolve()
        if "pyobject" in options:
            code = python_object(path, options["pyobject"])
        else:
            code = path.read_text().rstrip("\n")
        language = options.get("language", "python")
        return f"```{language}\n{code}\n```"
    shown = "this part of the page (it is generated by the website)"
    return f"*See {_link(shown, export.page, '', export)}.*"


def inline_directives(source: str, export: Export) -> str:
    return DIRECTIVE.sub(lambda m: inline_directive(m, export), source)


LIVE_STATE = "course_pkg/live-explorer"
"""Output metadata of a static explorer: its live form's state (course_pkg.widgets)."""
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _explorer_outputs(live: dict[str, Any]) -> list[Any]:
    """What the live explorer shows, as saved outputs: its sliders (a widget view of the
    recorded model) and its figure (a plain image: it needs no model)."""
    import nbformat

    sliders = nbformat.v4.new_output("display_data", data={
        WIDGET_VIEW: {"model_id": live["model_id"], "version_major": 2, "version_minor": 0},
        "text/plain": "(the explorer's sliders: run this cell to move them)"})
    figure = nbformat.v4.new_output("display_data", data={
        "image/png": live["figure"], "text/plain": "<the explorer's figure>"})
    return [sliders, figure]


def _static_outputs(cell: Any, widget_state: dict[str, Any]) -> None:
    """The outputs of a code cell as a notebook app shows them with no kernel.

    A static explorer (the page's HTML and script) becomes its live form's outputs, its
    recorded widget state going into ``widget_state``; any other widget view is dropped (its
    model would not be found), the rest of its bundle kept.
    """
    kept = []
    for output in cell.get("outputs", []):
        live = (output.get("metadata") or {}).get(LIVE_STATE)
        if live:
            widget_state.update(live["state"])
            kept += _explorer_outputs(live)
            continue
        data = output.get("data")
        if data and WIDGET_VIEW in data:
            data.pop(WIDGET_VIEW)
            if set(data) <= {"text/plain"}:
                continue  # only "HBox(children=...)" would be left: nothing to show
        kept.append(output)
    cell["outputs"] = kept


def student_notebook(notebook: Any, export: Export | None = None) -> Any:
    """The chapter as a student downloads it (see the module docstring); a new notebook."""
    import nbformat

    export = export or Export()
    nb = copy.deepcopy(notebook)
    nb.metadata.pop("jupytext", None)
    nb.metadata.get("kernelspec", {}).pop(FINGERPRINT_KEY, None)
    nb.metadata.pop("source_map", None)
    nb.metadata.pop("widgets", None)
    if nb.metadata.get("kernelspec", {}).get("name") == "python3":
        # ipykernel's own kernelspec: JupyterLab rewrites any other display name when the
        # kernel starts, which marks a freshly opened notebook as modified.
        nb.metadata["kernelspec"] = dict(KERNELSPEC)
        nb.metadata["language_info"] = language_info()
    own_labels = {m.group("label") for cell in nb.cells if cell.cell_type == "markdown"
                  for m in EQUATION_LABEL.finditer(cell.source)}
    widget_state: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = resolve_references(inline_directives(cell.source, export), export,
                                             own_labels)
        elif cell.cell_type == "code":
            _static_outputs(cell, widget_state)
            _number_code_cell(cell, export)
    if widget_state:
        nb.metadata["widgets"] = {WIDGET_STATE: {"version_major": 2, "version_minor": 0,
                                                 "state": widget_state}}
    cells = _fold_solutions(list(nb.cells))
    if uses_course_pkg(nb):
        setup = nbformat.v4.new_code_cell(setup_source(export.wheel_name, export.wheel_url))
        setup.metadata["tags"] = [SETUP_TAG]
        cells.insert(0, setup)
    nb.cells = cells
    nb.nbformat, nb.nbformat_minor = 4, 5
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"
        if cell.cell_type == "markdown":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    nbformat.validate(nb)
    return nb


def book_export(page: str, root: Path = ROOT) -> Export:
    """An :class:`Export` for a chapter outside a Sphinx build (``.binder/postBuild``): the
    pages' titles and equation labels read from ``book/*.md``, no numbers, no address."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import site_package

    export = Export(page=page, root=root,
                    wheel_name=site_package.wheel_name(site_package.package_version()))
    for md in sorted((root / "book").glob("*.md")):
        text = md.read_text()
        name = f"book/{md.stem}"
        heading = re.search(r"^#\s+(.+)$", text, re.M)
        export.chapters[name] = ("", heading.group(1).strip() if heading else md.stem)
        for match in EQUATION_LABEL.finditer(text):
            export.equations[match.group("label")] = (name, "")
    return export


def executed_as_the_site_builds(path: Path, timeout_s: int = 600) -> Any:
    """The MyST chapter at ``path`` run as the site build runs it: in its own folder, with
    ``COURSE_BOOK_BUILD=1`` (static explorers, which record their live form's widget state
    for :func:`student_notebook`)."""
    import os

    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    saved = os.environ.get("COURSE_BOOK_BUILD")
    os.environ["COURSE_BOOK_BUILD"] = "1"
    try:
        NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                       resources={"metadata": {"path": str(Path(path).resolve().parent)}}
                       ).execute()
    finally:
        if saved is None:
            os.environ.pop("COURSE_BOOK_BUILD")
        else:
            os.environ["COURSE_BOOK_BUILD"] = saved
    return nb


def main(argv: list[str]) -> int:
    """Write book/<chapter>.ipynb beside each MyST chapter named on the command line, run as
    the site build runs it."""
    import nbformat

    if not argv:
        print("usage: python book/_ext/student_notebooks.py book/<chapter>.md ...",
              file=sys.stderr)
        return 2
    for name in argv:
        path = Path(name)
        if path.suffix != ".md" or "kernelspec:" not in path.read_text():
            continue
        page = f"book/{path.stem}"
        nb = student_notebook(executed_as_the_site_builds(path), book_export(page))
        nbformat.write(nb, path.with_suffix(".ipynb"))
        print(f"wrote {path.with_suffix('.ipynb')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
