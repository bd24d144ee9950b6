"""nbgrader's ``Execute``, made to finish the notebook when a cell will not stop.

nbgrader interrupts a cell at the time limit (``Execute.timeout``). Code that catches the
interrupt and runs on (``except BaseException: pass`` around a loop) makes nbclient give up
with ``CellTimeoutError``, and nbgrader then fails the whole submission: the tests that had
already passed are lost. :class:`GradingExecute` records the runaway cell instead, marks every
later code cell as not run (with an error output, so that no later test can score), and lets
nbgrader score what did run. :class:`ForkExecute` (in :mod:`course_pkg.grading.forkserver`)
adds the fork server on top.
"""

from __future__ import annotations

from typing import Any

from nbclient.exceptions import CellTimeoutError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute


def error_output(ename: str, evalue: str) -> NotebookNode:
    """An nbformat error output, as a failing cell would have."""
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}"])


class GradingExecute(Execute):
    """``Execute`` that survives a cell which ignores the interrupt (see the module doc)."""

    runaway: int | None = None

    def preprocess(self, nb: Any, resources: Any = None, km: Any = None) -> Any:
        self.runaway = None
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell: Any, resources: Any, index: int) -> Any:
        if self.runaway is not None:
            if cell.cell_type == "code":
                cell.outputs = [error_output(
                    "NotRun", f"not run: cell {self.runaway + 1} ignored the interrupt at the "
                              "time limit, and the kernel was stopped")]
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except CellTimeoutError:
            self.runaway = index
            cell.outputs.append(error_output(
                "CellTimeoutError", "the cell ignored the interrupt at the time limit"))
            return cell, resources
