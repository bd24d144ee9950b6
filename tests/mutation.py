"""Single-token mutation of a problem set's solution: does each mutant lose points?

A mutant changes one token inside one ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region of
the source notebook: an operator for a related one (``+`` for ``-``, ``+=`` for ``=``, ``>`` for
``>=``), a number for a nearby one (0 and 1, 2 and 3, 0.5 and 1.0), a name for another name of
the same region used after a dot (an attribute for another attribute: ``grad`` for ``value``),
or one of a few builtins and keywords for its opposite (``max`` and ``min``, ``reversed`` and
``list``, ``True`` and ``False``). Mutants that do not compile are left out. Each mutant is scored
as the grader scores: the code cells up to the last test cell run in one namespace, every test
cell with its hidden tests, and a test cell that raises loses its points. The score is the share
of mutants that lose at least one point.

This runs the checks in this process (not through nbgrader and the sandbox), which gives the
same verdicts: the grader runs the same checks on the same functions.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import keyword
import signal
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OPERATORS = {
    "+": ["-", "*"], "-": ["+"], "*": ["/", "+"], "/": ["*"], "**": ["*"], "+=": ["=", "-="],
    "-=": ["+="], "*=": ["/="], ">": [">=", "<"], "<": ["<=", ">"], ">=": [">", "<"],
    "<=": ["<", ">"], "==": ["!="], "!=": ["=="], "//": ["/"],
}
SWAPS = {"max": ["min"], "min": ["max"], "reversed": ["list"], "True": ["False"],
         "False": ["True"], "and": ["or"], "or": ["and"], "abs": ["float"],
         "sum": ["max"], "any": ["all"], "all": ["any"]}
MUTANT_SECONDS = 20


@dataclass(frozen=True)
class Mutant:
    cell: int
    line: int
    old: str
    new: str

    def __str__(self) -> str:
        return f"cell {self.cell}, line {self.line}: {self.old!r} -> {self.new!r}"


def _numbers(text: str) -> list[str]:
    try:
        value = float(text)
    except ValueError:
        return []
    if value == 0:
        return ["1.0" if "." in text else "1"]
    if value == 1:
        return ["0.0" if "." in text else "0", "2.0" if "." in text else "2"]
    if value == 0.5:
        return ["1.0", "0.25"]
    if value == int(value):
        return [str(int(value) + 1), str(int(value) - 1)]
    return [repr(value * 2)]


def _regions(source: str) -> list[tuple[int, int]]:
    """(first, last) line numbers (1-based, inclusive) of each solution region's body."""
    lines, regions, start = source.split("\n"), [], None
    for number, line in enumerate(lines, 1):
        if "### BEGIN SOLUTION" in line:
            start = number + 1
        elif "### END SOLUTION" in line and start is not None:
            regions.append((start, number - 1))
            start = None
    return regions


def mutants_of(source: str, cell: int) -> Iterator[tuple[Mutant, str]]:
    """Every single-token mutant of the solution regions of one cell, as (what, new source)."""
    regions = _regions(source)
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    inside = [t for t in tokens if any(a <= t.start[0] <= b for a, b in regions)]
    attributes = {tok.string for k, tok in enumerate(inside)
                  if k and tok.type == tokenize.NAME and inside[k - 1].string == "."
                  and not keyword.iskeyword(tok.string) and not hasattr(builtins, tok.string)}
    lines = source.split("\n")
    for k, tok in enumerate(inside):
        options: list[str] = []
        if tok.type == tokenize.OP:
            options = OPERATORS.get(tok.string, [])
        elif tok.type == tokenize.NUMBER:
            options = _numbers(tok.string)
        elif tok.type == tokenize.NAME and tok.string in SWAPS:
            options = SWAPS[tok.string]
        elif tok.type == tokenize.NAME and tok.string in attributes and k and \
                inside[k - 1].string == ".":
            options = sorted(attributes - {tok.string})
        row, col = tok.start
        _, end = tok.end
        for new in options:
            line = lines[row - 1]
            changed = lines[:row - 1] + [line[:col] + new + line[end:]] + lines[row:]
            text = "\n".join(changed)
            try:
                compile(text, "<mutant>", "exec")
            except SyntaxError:
                continue
            yield Mutant(cell, row, tok.string, new), text


def load(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def score(cells: list[dict], replaced: dict[int, str] | None = None) -> tuple[float, float]:
    """(points earned, points possible) of the source notebook's code, with the cells of
    ``replaced`` (index -> source) swapped in; hidden tests included."""
    replaced = replaced or {}
    namespace: dict = {"__name__": "__main__"}
    earned = possible = 0.0
    last = max(i for i, c in enumerate(cells) if c["metadata"].get("nbgrader", {}).get("grade"))
    for index, cell in enumerate(cells[:last + 1]):
        if cell["cell_type"] != "code":
            continue
        meta = cell["metadata"].get("nbgrader", {})
        source = replaced.get(index, "".join(cell["source"]))
        points = float(meta.get("points", 0)) if meta.get("grade") else 0.0
        possible += points
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(source, f"<cell {index}>", "exec"), namespace)
        except Exception:  # noqa: BLE001 - a failing cell is what is counted
            continue
        earned += points
    return earned, possible


def loses_points(cells: list[dict], index: int, text: str) -> bool:
    """Whether the notebook with cell ``index`` replaced by ``text`` fails a test cell.

    The test cells above the replaced cell see what the solution gives them, so they are not
    run; the first failing test cell below it decides.
    """
    namespace: dict = {"__name__": "__main__"}
    last = max(i for i, c in enumerate(cells) if c["metadata"].get("nbgrader", {}).get("grade"))
    for k, cell in enumerate(cells[:last + 1]):
        if cell["cell_type"] != "code":
            continue
        test = bool(cell["metadata"].get("nbgrader", {}).get("grade"))
        if test and k < index:
            continue
        source = text if k == index else "".join(cell["source"])
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(source, f"<cell {k}>", "exec"), namespace)
        except Exception:  # noqa: BLE001 - a failing cell is what is counted
            if test:
                return True
    return False


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def mutation_score(path: Path) -> tuple[int, int, list[Mutant]]:
    """(mutants that lose points, all mutants, the survivors) of a source notebook."""
    cells = load(path)
    full, possible = score(cells)
    if full != possible:
        raise AssertionError(f"the solution of {path.name} scores {full}/{possible}")
    killed, total, survivors = 0, 0, []
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for index, cell in enumerate(cells):
            if not cell["metadata"].get("nbgrader", {}).get("solution") or \
                    cell["cell_type"] != "code":
                continue
            for mutant, text in mutants_of("".join(cell["source"]), index):
                total += 1
                signal.alarm(MUTANT_SECONDS)
                try:
                    lost = loses_points(cells, index, text)
                except _Timeout:
                    lost = True  # the grader's cell timeout gives no points either
                finally:
                    signal.alarm(0)
                if lost:
                    killed += 1
                else:
                    survivors.append(mutant)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return killed, total, survivors
