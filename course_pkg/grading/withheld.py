"""The copy of course_pkg that the grading sandbox sees: the exercises' answers withheld.

:func:`build` copies the package without :mod:`course_pkg.grading` and the book's widgets, with
:mod:`course_pkg.checks` as empty shells (each ``check_...`` function does nothing), and
replaces each withheld function (the ``WITHHELD`` names of the
assignment's checks modules: the deltas, the updates, the reference back-propagation) by a
stub that raises :class:`course_pkg.sandbox.WithheldError`. The helpers the notebooks import
(data, activations, plotting) stay as they are. :func:`sandbox_source` turns an instructor
cell into the version the sandbox runs: without its imports of the checks.

What else the student's side never holds, and what it may hand to the tests:

* :func:`sandbox_copy`: the notebook the sandbox receives has the student's cells and blanks
  where the test cells stand (no test, visible or hidden, is ever inside the sandbox);
* :func:`answer_names`: the only names a test may take from the student's kernel, declared by
  the release (the top-level definitions of its solution cells); everything else a test uses
  comes from the instructor's cells, run in the grader;
* :func:`allowed_packages`: which of the hidden packages
  (:data:`course_pkg.grading.sandbox.MASKED_PACKAGES`) an assignment lets the sandbox import;
* :class:`HideHiddenTests`: the feedback page shows the visible part of each test only.
"""

from __future__ import annotations

import ast
import compileall
import copy
import functools
import hashlib
import importlib
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nbgrader.preprocessors.base import NbGraderPreprocessor

import course_pkg

LEFT_OUT = ("grading", "checks", "widgets", "__pycache__")
"""Not copied: the grader, the checks (empty shells are written instead), the book's widgets."""
TRUSTED_PACKAGES = ("course_pkg.checks", "course_pkg.grading")


@functools.cache
def package_hash() -> str:
    """SHA-256 of course_pkg's sources: the same on the instructor's machine and every worker
    that grades for it, or grades could differ. Read once per process (each task compares it),
    so it names the sources that the process loaded when it started to grade."""
    source = Path(course_pkg.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(source.rglob("*.py")):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def checks_modules(sources: Iterable[str]) -> list[str]:
    """The modules of :mod:`course_pkg.checks` that the instructor cells ``sources`` import."""
    found: list[str] = []
    for source in sources:
        for node in ast.walk(_parse(source)):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [n for n in names if n.startswith("course_pkg.checks.") and n not in found]
    return found


def withheld_names(modules: Iterable[str]) -> list[str]:
    """The union of the ``WITHHELD`` lists of the checks ``modules``, sorted."""
    names: set[str] = set()
    for module in modules:
        names |= set(getattr(importlib.import_module(module), "WITHHELD", ()))
    return sorted(names)


def build(target: Path, withheld: Iterable[str]) -> Path:
    """Write the sandbox's course_pkg under ``target`` (replaced); return ``target``.

    ``withheld`` holds ``"course_pkg.module:function"`` or ``"course_pkg.module:Class.method"``.
    """
    source = Path(course_pkg.__file__).parent
    if target.exists():
        shutil.rmtree(target)

    def ignore(folder: str, names: list[str]) -> list[str]:
        top = Path(folder) == source
        return [n for n in names if n == "__pycache__" or (top and n in LEFT_OUT)]

    shutil.copytree(source, target / "course_pkg", ignore=ignore)
    by_module: dict[str, set[str]] = {}
    for name in withheld:
        module, _, qualname = name.partition(":")
        if not module.startswith("course_pkg.") or not qualname:
            raise ValueError(f"a withheld name is 'course_pkg.<module>:<qualname>', got {name!r}")
        by_module.setdefault(module, set()).add(qualname)
    for module, qualnames in by_module.items():
        path = target / Path(*module.split(".")).with_suffix(".py")
        if not path.is_file():
            raise ValueError(f"withheld {module} is not a module of course_pkg")
        path.write_text(_stub(path.read_text(), module, qualnames))
    _stub_checks(source / "checks", target / "course_pkg" / "checks")
    # Compiled once here, not by every sandbox: the sandbox's copy is read-only, so without
    # the bytecode each kernel would compile the modules it imports again. The file names
    # recorded are those the sandbox sees.
    from course_pkg.grading.sandbox import PACKAGE_DEST

    compileall.compile_dir(target, ddir=PACKAGE_DEST, quiet=2)
    return target


def _stub_checks(source: Path, target: Path) -> None:
    """``course_pkg.checks`` as empty shells: each ``check_...`` function does nothing, and
    each other public function of a checks module (the checks' own answers) raises
    :class:`course_pkg.sandbox.WithheldError`, as the student's own notebook says when one is
    called (``course_pkg.checks.guard``).

    A student who imports a check in an answer cell (to test as they work) keeps the rest of
    that cell; the checks themselves, their cases and mistake tables stay outside.
    """
    target.mkdir()
    (target / "__init__.py").write_text('"""The checks run in the grader, not here."""\n')
    for path in sorted(source.glob("*.py")):
        functions = [node.name for node in ast.parse(path.read_text()).body
                     if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")]
        module = f"course_pkg.checks.{path.stem}"
        lines = ['"""The checks run in the grader, outside this sandbox: these do nothing."""',
                 "", "from course_pkg.sandbox import WithheldError as _WithheldError", ""]
        for name in functions:
            body = ("    return None" if name.startswith("check_") else
                    f"    raise _WithheldError({_withheld_message(f'{module}.{name}')!r})")
            lines += ["", f"def {name}(*args, **kwargs):", body, ""]
        (target / path.name).write_text("\n".join(lines))


def _withheld_message(name: str) -> str:
    return f"{name} is withheld while grading: the exercise asks you to write it yourself"


def _stub(source: str, module: str, qualnames: set[str]) -> str:
    """``source`` with each function of ``qualnames`` replaced by a raising stub."""
    tree = ast.parse(source)
    missing = set(qualnames)

    def replace(body: list[ast.stmt], prefix: str) -> None:
        for index, node in enumerate(body):
            if isinstance(node, ast.ClassDef):
                replace(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    f"{prefix}{node.name}" in qualnames):
                missing.discard(f"{prefix}{node.name}")
                body[index] = _stub_function(node, f"{module}.{prefix}{node.name}")

    replace(tree.body, "")
    if missing:
        raise ValueError(f"{module} has no function {', '.join(sorted(missing))} to withhold")
    position = next((i for i, node in enumerate(tree.body)
                     if not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
                     and not (i == 0 and isinstance(node, ast.Expr))), len(tree.body))
    tree.body.insert(position, ast.parse(
        "from course_pkg.sandbox import WithheldError as _WithheldError").body[0])
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _stub_function(node: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> ast.stmt:
    message = _withheld_message(name)
    stub = ast.parse(f"def {node.name}(*args, **kwargs):\n"
                     f"    raise _WithheldError({message!r})").body[0]
    stub.decorator_list = [d for d in node.decorator_list
                           if isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod",
                                                                    "property")]
    return ast.copy_location(stub, node)


def sandbox_source(source: str) -> str:
    """An instructor cell as the sandbox runs it: its imports of the checks removed."""
    tree = _parse(source)
    kept = [node for node in tree.body if not _imports_trusted(node)]
    if len(kept) == len(tree.body):
        return source
    return ast.unparse(ast.Module(body=kept, type_ignores=[]))


def _imports_trusted(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").startswith(TRUSTED_PACKAGES)
    if isinstance(node, ast.Import):
        return any(a.name.startswith(TRUSTED_PACKAGES) for a in node.names)
    return False


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"an instructor cell is not valid Python ({err.msg}, line "
                         f"{err.lineno})") from None


# -- what the student's side never holds ----------------------------------------------------------
def is_test(info: Mapping[str, Any]) -> bool:
    """Whether the gradebook's cell ``info`` is a test cell (graded code, not an answer)."""
    return bool(info["grade"]) and not info["solution"] and info["cell_type"] == "code"


def is_setup(info: Mapping[str, Any]) -> bool:
    """Whether ``info`` is a locked instructor code cell that is not a test (setup, imports)."""
    return (bool(info["locked"]) and not info["grade"] and not info["solution"]
            and info["cell_type"] == "code")


def answer_names(cells: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """The names the release declares as answers: what the top level of its solution code cells
    defines (functions, classes, assigned names).

    These are the only names a test cell may take from the student's kernel.
    """
    names: set[str] = set()
    for info in cells.values():
        if not info["solution"] or info["cell_type"] != "code":
            continue
        try:
            tree = ast.parse(info["source"])
        except SyntaxError:  # a solution cell the instructor left unfinished declares nothing
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return frozenset(names)


def sandbox_copy(nb: Any, cells: Mapping[str, Mapping[str, Any]]) -> Any:
    """A copy of the notebook ``nb`` for the sandbox: each test cell's source blanked."""
    copied = copy.deepcopy(nb)
    for cell in copied.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        info = cells.get(grade_id) if isinstance(grade_id, str) else None
        if (info is not None and is_test(info)) or (
                isinstance(meta, dict) and meta.get("grade") and not meta.get("solution")):
            cell.source = ""
            if cell.get("cell_type") == "code":
                cell.outputs = []
    return copied


ALLOW_LINE = re.compile(r"^[ \t]*#[ \t]*sandbox allows:[ \t]*(.+)$", re.MULTILINE)
"""A line ``# sandbox allows: sympy, sklearn.neural_network`` in an instructor cell."""


def allowed_packages(sources: Iterable[str]) -> frozenset[str]:
    """The hidden packages that the instructor cells ``sources`` let the sandbox import.

    An instructor allows a package for one assignment by importing it in a locked cell of that
    assignment (its tests and setup need it), or by a comment line ``# sandbox allows: name,
    name`` there. Names are given as imported (``sklearn.neural_network``).
    """
    allowed: set[str] = set()
    for source in sources:
        allowed |= {n.strip() for line in ALLOW_LINE.findall(source) for n in line.split(",")
                    if n.strip()}
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                allowed |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                allowed.add(node.module)
    return frozenset(allowed)


def is_allowed(package: str, allowed: Iterable[str]) -> bool:
    """Whether the masked ``package`` (``sklearn/neural_network`` or ``sympy``) is allowed:
    it, or a module inside it, is in ``allowed`` (importing ``sklearn`` does not allow
    ``sklearn.neural_network``)."""
    dotted = package.replace("/", ".")
    return any(dotted == a or a.startswith(dotted + ".") for a in allowed)


HIDDEN_BLOCK = re.compile(r"^[^\n]*BEGIN HIDDEN TESTS.*?(END HIDDEN TESTS[^\n]*(\n|$)|\Z)",
                          re.DOTALL | re.MULTILINE)


def without_hidden_tests(source: str) -> str:
    """``source`` without its hidden-test blocks (an unterminated block runs to the end)."""
    return HIDDEN_BLOCK.sub("", source)


class HideHiddenTests(NbGraderPreprocessor):
    """The feedback page's test cells without their hidden tests (nbgrader shows them all by
    default); the visible part of a test stays. Every cell that nbgrader grades is cleared,
    whatever else it is marked as."""

    def preprocess_cell(self, cell: Any, resources: dict[str, Any], index: int
                        ) -> tuple[Any, dict[str, Any]]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if isinstance(meta, dict) and meta.get("grade") and isinstance(cell.get("source"), str):
            cell.source = without_hidden_tests(cell.source)
        return cell, resources


def feedback_config() -> dict[str, dict[str, Any]]:
    """nbgrader configuration for ``generate_feedback`` that drops hidden tests from the
    pages (pass to :func:`course_pkg.grading.course.nbgrader_api` as keyword arguments)."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    return {"GenerateFeedback": {"preprocessors": [GetGrades, HideHiddenTests,
                                                   CSSHTMLHeaderPreprocessor]}}
