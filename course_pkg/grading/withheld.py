"""The copy of course_pkg that the grading sandbox sees: the exercises' answers withheld.

:func:`build` copies the package without :mod:`course_pkg.grading` and the book's widgets, with
:mod:`course_pkg.checks` as empty shells (each ``check_...`` function does nothing), and
replaces each withheld function (the ``WITHHELD`` names of the
assignment's checks modules: the deltas, the updates, the reference back-propagation) by a
stub that raises :class:`course_pkg.sandbox.WithheldError`. The helpers the notebooks import
(data, activations, plotting) stay as they are. :func:`sandbox_source` turns an instructor
cell into the version the sandbox runs: without its imports of the checks.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import shutil
from collections.abc import Iterable
from pathlib import Path

import course_pkg

LEFT_OUT = ("grading", "checks", "widgets", "__pycache__")
"""Not copied: the grader, the checks (empty shells are written instead), the book's widgets."""
TRUSTED_PACKAGES = ("course_pkg.checks", "course_pkg.grading")


def package_hash() -> str:
    """SHA-256 of course_pkg's sources: the same on the instructor's machine and every worker
    that grades for it, or grades could differ."""
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
    return target


def _stub_checks(source: Path, target: Path) -> None:
    """``course_pkg.checks`` as empty shells: each ``check_...`` function does nothing.

    A student who imports a check in an answer cell (to test as they work) keeps the rest of
    that cell; the checks themselves, their cases and mistake tables stay outside.
    """
    target.mkdir()
    (target / "__init__.py").write_text('"""The checks run in the grader, not here."""\n')
    for path in sorted(source.glob("*.py")):
        names = [node.name for node in ast.parse(path.read_text()).body
                 if isinstance(node, ast.FunctionDef) and node.name.startswith("check_")]
        lines = ['"""The checks run in the grader, outside this sandbox: these do nothing."""', ""]
        for name in names:
            lines += ["", f"def {name}(*args, **kwargs):", "    return None", ""]
        (target / path.name).write_text("\n".join(lines))


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
    message = (f"{name} is withheld while grading: the exercise asks you to write it "
               "yourself")
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
