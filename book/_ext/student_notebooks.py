"""The chapters as a student downloads them, and the execution cache's key on course_pkg.

**Cache key.** jupyter-cache (``execute_notebooks: cache``) recognises an executed notebook by
the text of its code cells and its kernelspec only, so a change to ``course_pkg`` would publish
outputs computed by the old code. :func:`inject_fingerprint` writes a hash of every source file
of the package (:func:`package_fingerprint`) into the kernelspec of each chapter that imports
``course_pkg`` as Sphinx reads it: a change to the package changes the key, and exactly those
chapters run again. The downloads carry no trace of it (:func:`student_notebook`).

**Downloads.** :func:`student_notebook` turns an executed chapter into the notebook a student
opens in JupyterLab (with ``jupyterlab-myst``, which renders the MyST directives and roles):

- a first code cell checks that ``course_pkg`` can be imported and, if not, says the command
  that installs it (and runs it on Colab);
- each exercise's ``{solution}`` block moves into a markdown cell of its own whose source is
  folded (``jupyter.source_hidden``): one click unfolds it;
- the notebook is nbformat 4.5 with stable cell ids, ipykernel's own kernelspec and no
  jupytext metadata, so that JupyterLab has nothing to change when it opens it and starts its
  kernel (an opened download is not "modified").

Run as a script (``python book/_ext/student_notebooks.py book/*.md``), it writes
``book/<chapter>.ipynb`` beside each MyST chapter: ``.binder/postBuild`` does this so that
Binder opens the chapters as notebooks.
"""

from __future__ import annotations

import copy
import hashlib
import re
import sys
from pathlib import Path
from typing import Any

FINGERPRINT_KEY = "course_pkg_sources"
SETUP_TAG = "course-setup"
SOLUTION_TAG = "course-solution"
SOLUTION_HINT = "*Solution below, folded: click the bar to unfold it.*"

PACKAGE = Path(__file__).resolve().parents[2] / "course_pkg"

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
"""The kernelspec that ipykernel installs, as JupyterLab writes it into a notebook."""


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


def setup_source(repository: tuple[str, str] | None) -> str:
    """The first cell of a downloaded chapter: is course_pkg importable, and if not, how to fix it.
    """
    if repository:
        spec = f"course_pkg[student] @ git+https://github.com/{repository[0]}/{repository[1]}"
        fix = f"%pip install \"{spec}\""
    else:
        spec = ""
        fix = "pip install -e \".[student]\"   (in the top folder of a clone of the course)"
    lines = [
        "# Setup: this chapter runs on the course's package, course_pkg.",
        "import importlib.util",
        "import sys",
        "",
        f"COURSE_PKG_INSTALL = {fix!r}",
        'if importlib.util.find_spec("course_pkg") is None:',
    ]
    if spec:
        lines += [
            '    if "google.colab" in sys.modules:  # Colab: install it here',
            f'        get_ipython().run_line_magic("pip", {("install -q " + repr(spec))!r})',
            "    else:",
            "        raise ModuleNotFoundError(",
            '            "course_pkg is not installed in this kernel. Install it with\\n    "',
            '            + COURSE_PKG_INSTALL + "\\nand restart the kernel.")',
        ]
    else:
        lines += [
            "    raise ModuleNotFoundError(",
            '        "course_pkg is not installed in this kernel. Install it with\\n    "',
            '        + COURSE_PKG_INSTALL + "\\nand restart the kernel.")',
        ]
    lines.append('print("course_pkg is installed: run the cells below from the top.")')
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


def _fold_solutions(cells: list[Any]) -> list[Any]:
    import nbformat

    out = []
    for cell in cells:
        if cell.cell_type != "markdown" or "{solution}" not in cell.source:
            out.append(cell)
            continue
        for text, is_solution in split_solutions(cell.source):
            if is_solution:
                if out and out[-1].cell_type == "markdown" and SOLUTION_HINT not in out[-1].source:
                    out[-1].source = out[-1].source.rstrip("\n") + "\n\n" + SOLUTION_HINT
                elif not out or out[-1].cell_type != "markdown":
                    out.append(nbformat.v4.new_markdown_cell(SOLUTION_HINT))
                folded = nbformat.v4.new_markdown_cell(text)
                folded.metadata["jupyter"] = {"source_hidden": True}
                folded.metadata["tags"] = [SOLUTION_TAG]
                out.append(folded)
            else:
                piece = copy.deepcopy(cell)
                piece.source = text
                out.append(piece)
    return out


def student_notebook(notebook: Any, repository: tuple[str, str] | None = None) -> Any:
    """The chapter as a student downloads it (see the module docstring); a new notebook."""
    import nbformat

    nb = copy.deepcopy(notebook)
    nb.metadata.pop("jupytext", None)
    nb.metadata.get("kernelspec", {}).pop(FINGERPRINT_KEY, None)
    nb.metadata.pop("source_map", None)
    if nb.metadata.get("kernelspec", {}).get("name") == "python3":
        # ipykernel's own kernelspec: JupyterLab rewrites any other display name when the
        # kernel starts, which marks a freshly opened notebook as modified.
        nb.metadata["kernelspec"] = dict(KERNELSPEC)
    cells = _fold_solutions(list(nb.cells))
    if uses_course_pkg(nb):
        setup = nbformat.v4.new_code_cell(setup_source(repository))
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


def main(argv: list[str]) -> int:
    """Write book/<chapter>.ipynb beside each MyST chapter named on the command line."""
    import jupytext
    import nbformat

    if not argv:
        print("usage: python book/_ext/student_notebooks.py book/<chapter>.md ...",
              file=sys.stderr)
        return 2
    for name in argv:
        path = Path(name)
        if path.suffix != ".md" or "kernelspec:" not in path.read_text():
            continue
        nb = student_notebook(jupytext.read(path))
        nbformat.write(nb, path.with_suffix(".ipynb"))
        print(f"wrote {path.with_suffix('.ipynb')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
