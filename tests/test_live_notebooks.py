"""The chapters run headless with their live widgets, as a student's notebook does, and no cell
waits out a timeout.

Outside the book build (no ``COURSE_BOOK_BUILD``), every explorer is live: ipywidgets sliders
and the figure as a plain image output (``course_pkg.widgets.Explorer``). The previous design,
which drew into an ``ipywidgets.Output`` capture, sometimes made a headless client wait out the
whole cell timeout (jupyter/nbclient#312). Here each chapter that shows an explorer runs top to
bottom under nbclient with a short per-cell timeout, and no cell may take long.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = 60
SLOW_CELL = 20.0

pytestmark = [pytest.mark.book]


def chapters_with_explorers() -> list[Path]:
    call = re.compile(r"^[\w.]*\w_explorer\(\)\s*$", re.M)
    return sorted(p for p in (ROOT / "book").glob("*.md") if call.search(p.read_text()))


@pytest.mark.parametrize("chapter", chapters_with_explorers(), ids=lambda p: p.stem)
def test_a_chapter_with_live_widgets_runs_headless_without_stalling(
        chapter: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COURSE_BOOK_BUILD", raising=False)
    notebook = jupytext.read(chapter)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(chapter.parent)}})
    slow, widgets = [], 0
    with client.setup_kernel(env={k: v for k, v in os.environ.items()
                                  if k != "COURSE_BOOK_BUILD"}):
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            start = time.perf_counter()
            client.execute_cell(cell, index)
            seconds = time.perf_counter() - start
            if seconds > SLOW_CELL:
                slow.append((index, round(seconds, 1), cell.source[:60]))
            widgets += sum("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                           for o in cell.get("outputs", []))
    assert widgets >= 1, "no live widget was shown: the explorers ran in their static form"
    assert not slow, f"cells that took over {SLOW_CELL} s: {slow}"
