"""How often the ps3 solution's training falls short of the target on grading-time data.

ps3's hidden training test draws a data split, label names, pixel order and a training seed
when it grades (``assignments/source/ps3/ps3.ipynb``, ``test_train_digits``). One run of SGD
is a draw: this script trains the solution's ``train_digits`` (with its own ``gradients``) on
``--draws`` such draws, made as the hidden test makes them, and writes how many end below the
target accuracy, with and without the check's retries from the next seeds
(``course_pkg.checks.matrix_form.TRAINING_SEEDS``), to ``benchmarks/training_draws.md``.

Run: ``.venv/bin/python benchmarks/bench_training_draws.py --draws 200``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from course_pkg import helpers
from course_pkg.checks.matrix_form import (
    LEARNING_ACCURACY,
    TARGET_ACCURACY,
    TRAINING_SEEDS,
    network_from,
)
from course_pkg.data import load_digits_split
from course_pkg.train import accuracy

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE.parent / "assignments" / "source" / "ps3" / "ps3.ipynb"


def solution_training() -> object:
    """The solution's ``train_digits``, run on its own solution cells."""
    namespace = {"np": np, **{name: getattr(helpers, name) for name in
                              ("one_hot", "sigmoid", "sigmoid_prime", "softmax", "tanh",
                               "tanh_prime")}}
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("solution"):
            exec("".join(cell["source"]), namespace)  # noqa: S102 - the course's own solution
    return namespace["train_digits"]


def grading_draw(rng: np.random.Generator) -> tuple[tuple, int]:
    """(data, training seed), drawn as the hidden test draws them."""
    X_tr, X_te, y_tr, y_te = load_digits_split(seed=int(rng.integers(10**6)))
    labels, pixels = rng.permutation(10), rng.permutation(64)
    data = (X_tr[:, pixels], X_te[:, pixels], labels[y_tr], labels[y_te])
    return data, int(rng.integers(10**6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()
    train = solution_training()
    first, checked = [], []
    start = time.process_time()
    for draw in range(args.draws):
        data, seed = grading_draw(np.random.default_rng([draw, 3]))
        scores = []
        for attempt in range(TRAINING_SEEDS):
            W, b = train(data[0], data[2], seed + attempt)
            scores.append(accuracy(network_from(W, b), data[1], data[3]))
            if scores[-1] >= TARGET_ACCURACY or scores[-1] < LEARNING_ACCURACY:
                break
        first.append(scores[0])
        checked.append(max(scores))
    first_, checked_ = np.array(first), np.array(checked)
    lines = [
        "# ps3: the solution's training on grading-time draws",
        "",
        f"{args.draws} draws of the hidden test's data and seed; target {TARGET_ACCURACY:.0%}. "
        f"Command: `.venv/bin/python benchmarks/bench_training_draws.py --draws {args.draws}` "
        f"({time.process_time() - start:.0f} s of CPU).",
        "",
        "| | below the target | lowest accuracy | median |",
        "| --- | --- | --- | --- |",
        f"| one training | {int(np.sum(first_ < TARGET_ACCURACY))} of {args.draws} | "
        f"{first_.min():.1%} | {np.median(first_):.1%} |",
        f"| the check (up to {TRAINING_SEEDS} seeds) | "
        f"{int(np.sum(checked_ < TARGET_ACCURACY))} of {args.draws} | {checked_.min():.1%} | "
        f"{np.median(checked_):.1%} |",
        "",
    ]
    (HERE / "training_draws.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
