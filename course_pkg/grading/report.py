"""What the instructor reads after grading: the grades CSV and the class report with its plot.

Scores come from the gradebook (so manual grades given in the formgrader count); the status of
each submission, the reason it was not graded, and its mistakes come from the manifest. A
student who was not graded is written as ``not graded`` with the reason, never as a bare 0.

Every string that a submission could have shaped (student ids, reasons, notes, feedback
lines) is escaped for where it is written: a spreadsheet cell never starts a formula
(:func:`~course_pkg.grading.untrusted.csv_cell`), a Markdown line is literal text
(:func:`~course_pkg.grading.untrusted.markdown_text`, and the report's block of submission
lines is fenced longer than any run of backticks in it), a plot label is never mathematics
(:func:`~course_pkg.grading.untrusted.plot_text`).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from course_pkg.grading.course import Course
from course_pkg.grading.pipeline import Outcome, outcomes
from course_pkg.grading.untrusted import csv_cell, markdown_text, plot_text

CSV_COLUMNS = ("student_id", "assignment", "score", "max_score", "status", "reason", "notes")


def gradebook_scores(course: Course, assignment: str) -> dict[str, float]:
    """Each student's total score of ``assignment`` in the gradebook (manual grades included)."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gb:
        return {s.student.id: float(s.score) for s in gb.find_assignment(assignment).submissions}


def export_csv(course: Course, assignments: list[str], path: Path) -> int:
    """Write one row per (student, assignment) to ``path``; return the number of rows."""
    rows = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for assignment in assignments:
            if not outcomes(course, assignment):  # never graded (perhaps never released)
                continue
            scores = gradebook_scores(course, assignment)
            for outcome in outcomes(course, assignment):
                graded = outcome.status == "graded"
                score = scores.get(outcome.student, outcome.score) if graded else 0.0
                writer.writerow([csv_cell(outcome.student, 200), csv_cell(assignment, 200),
                                 f"{score:g}", f"{outcome.max_score:g}",
                                 csv_cell(outcome.status, 40), csv_cell(outcome.reason),
                                 csv_cell(" | ".join(outcome.notes), 4000)])
                rows += 1
    return rows


def mistake_counts(records: list[Outcome]) -> dict[str, Counter[str]]:
    """For each test cell, how many graded students failed it with each mistake tag."""
    counts: dict[str, Counter[str]] = {}
    for outcome in records:
        if outcome.status != "graded":
            continue
        for cell, tag in outcome.mistakes.items():
            counts.setdefault(cell, Counter())[tag] += 1
    return dict(sorted(counts.items()))


def plot_mistakes(counts: dict[str, Counter[str]], path: Path, top: int = 4) -> None:
    """One horizontal bar chart per test cell: its ``top`` most common mistakes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(counts) or ["(no failed tests)"]
    fig, axes = plt.subplots(len(cells), 1, figsize=(7, 1.2 + 1.1 * len(cells)), squeeze=False)
    for ax, cell in zip(axes[:, 0], cells, strict=True):
        common = counts.get(cell, Counter()).most_common(top)[::-1]
        ax.barh([plot_text(tag) for tag, _ in common], [n for _, n in common], color="tab:red")
        ax.set_title(plot_text(cell), loc="left", fontsize=10)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[-1, 0].set_xlabel("students")
    fig.suptitle("Most common mistakes per exercise")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def class_report(course: Course, assignment: str, folder: Path) -> Path:
    """Write ``report.md`` (one block per student, a summary, the mistake table) and
    ``mistakes.png`` into ``folder``; return the report's path."""
    records = outcomes(course, assignment)
    if not records:
        raise ValueError(f"nothing graded yet for {assignment}: run `course autograde "
                         f"{assignment}` first")
    scores = gradebook_scores(course, assignment)
    for outcome in records:
        if outcome.status == "graded":
            outcome.score = scores.get(outcome.student, outcome.score)
    counts = mistake_counts(records)
    plot_mistakes(counts, folder / "mistakes.png")
    graded = [o for o in records if o.status == "graded"]
    mean = sum(o.score for o in graded) / len(graded) if graded else 0.0
    lines = [f"# Class report: {assignment}", "",
             f"{len(records)} submissions: {len(graded)} graded (mean "
             f"{mean:.2f}/{records[0].max_score:g}), {len(records) - len(graded)} not graded.",
             "", "![most common mistakes](mistakes.png)", "", "## Most common mistakes", ""]
    for cell, counter in counts.items():
        lines.append(f"- {markdown_text(cell, 80)}: " + ", ".join(
            f"{markdown_text(tag, 80)} ({n})" for tag, n in counter.most_common()))
    block = [o.line() for o in records]
    fence = "`" * max(3, 1 + max((len(run) for line in block
                                  for run in re.findall("`+", line)), default=0))
    lines += ["", "## Submissions", "", fence, *block, fence, ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
