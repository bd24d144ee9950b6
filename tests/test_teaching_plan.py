"""book/teaching_plan.md: the week plan names every chapter once, in the book's order; the
misconception tables are the checks' own tags; the time estimates follow the stated rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "teaching_plan.md"


def text() -> str:
    return PAGE.read_text(encoding="utf-8")


def code_cells() -> list[str]:
    return re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", text(),
                      flags=re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def page_namespace():
    """The page's code cells run in one namespace, as the build runs them (display muted)."""
    namespace: dict = {}
    for cell in code_cells():
        cell = "\n".join(line for line in cell.split("\n") if not line.startswith(":tags:"))
        exec(compile(cell.replace("display(", "(lambda *a: None)("), str(PAGE), "exec"),
             namespace)
    return namespace


def chapters() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    part = next(p for p in toc["parts"] if p.get("caption") == "Chapters")
    return [Path(c["file"]).stem for c in part["chapters"]]


def test_the_week_plan_has_every_chapter_once_in_the_books_order():
    weeks = re.findall(r"^\| (\d+) \| \{doc\}`(\w+)`", text(), flags=re.MULTILINE)
    assert [int(w) for w, _ in weeks] == list(range(1, 13))
    assert [c for _, c in weeks] == chapters()
    for ps in ("ps1", "ps2", "ps3", "ps4", "ps5", "ps6"):
        out = [int(w) for w, line in re.findall(r"^\| (\d+) \|(.*)$", text(), re.MULTILINE)
               if f"{ps} out" in line]
        due = [int(w) for w, line in re.findall(r"^\| (\d+) \|(.*)$", text(), re.MULTILINE)
               if f"{ps} due" in line]
        assert len(out) == 1 and len(due) == 1 and out[0] < due[0], ps


def test_the_week_plan_releases_each_set_with_or_after_its_chapter(page_namespace):
    rows = dict(re.findall(r"^\| (\d+) \| \{doc\}`(\w+)`", text(), flags=re.MULTILINE))
    week_of = {chapter: int(week) for week, chapter in rows.items()}
    for ps, module in page_namespace["CHECKS"].items():
        line = next(l for l in text().splitlines() if f"{ps} out" in l)
        released = int(re.match(r"\| (\d+) \|", line).group(1))
        assert released >= week_of[Path(module.CHAPTER).stem], ps


def test_the_misconception_table_lists_each_sets_own_tags(page_namespace):
    from course_pkg.checks import identity_sigmoid
    from course_pkg.checks.feedback import MISTAKES, Exercise

    checks = page_namespace["CHECKS"]
    assert {"ps1", "ps2", "ps3", "ps4"} <= set(checks)
    assert checks["ps1"] is identity_sigmoid
    expected = []
    for value in vars(identity_sigmoid).values():
        if isinstance(value, Exercise):
            expected += [t for t in value.mistakes if t not in expected]
    tags = page_namespace["tags_of"](identity_sigmoid)
    assert tags[:len(expected)] == expected
    assert set(expected) == {"S' missing", "S' of a instead of z", "sign flipped",
                             "input missing"}
    assert "diverged" in page_namespace["tags_of"](checks["ps3"])
    # the static table: every tag it names is a tag of some problem set's checks
    all_tags = {tag for module in checks.values() for tag in page_namespace["tags_of"](module)}
    named = set(re.findall(r"`([^`]+)`", "\n".join(
        line.split("|")[1] for line in text().splitlines() if line.startswith("| `"))))
    assert len(named) >= 15 and named <= set(MISTAKES) and named <= all_tags


def test_the_time_rules(page_namespace):
    ns = page_namespace
    words, cells, exercises = ns["page_counts"]("book/gradient_checking")
    raw = (ROOT / "book" / "gradient_checking.md").read_text()
    assert cells == raw.count("```{code-cell}") and exercises == raw.count("```{exercise}")
    assert 2000 < words < len(raw.split())
    # ps5's own estimate is the calibration: about 2 hours for its answer cells
    n5 = ns["answer_cells"]("ps5")
    if n5 is not None:
        assert n5 == 6 and 100 <= 20 + 18 * n5 <= 140
    rows = {r["chapter"]: r for r in ns["rows"]}
    assert list(rows) == chapters()
    for chapter, row in rows.items():
        w, c, e = ns["page_counts"](f"book/{chapter}")
        assert row["reading, min"] == round(w / 100 + 2 * c) and row["exercises"] == e >= 3
    assert ns["total"]["exercises"] == 15 * sum(r["exercises"] for r in rows.values())
    weekly = ns["total"]["reading"] / 12
    assert weekly < 60                                   # "less than an hour of reading"
    assert 0.5 < ns["total"]["exercises"] / ns["total"]["reading"] < 2   # "about as long again"
    minutes = [20 + 18 * n for n in map(ns["answer_cells"], ns["SETS"]) if n is not None]
    assert 60 <= min(minutes) and max(minutes) <= 150    # "one to two and a half hours"


def test_answer_cells_counts_solution_cells(page_namespace):
    nb = json.loads((ROOT / "assignments" / "source" / "ps1" / "ps1.ipynb").read_text())
    solutions = [c for c in nb["cells"] if c["cell_type"] == "code"
                 and c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    assert page_namespace["answer_cells"]("ps1") == len(solutions) >= 1
    assert page_namespace["answer_cells"]("ps99") is None
