"""The course's data sets; none needs a download.

* the 8x8 handwritten digits bundled with scikit-learn (1797 images, 10 classes), with a
  fixed stratified train/test split;
* the four toy regression targets of Bishop's figure 5.3 (after ``001_ce18104b0c2237dd.txt``):
  x^2, sin, |x| and a step, sampled at 50 points of [-1, 1].
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np

BISHOP_TARGETS = {
    "square": lambda x: x**2,
    "sin": lambda x: np.sin(np.pi * x),
    "abs": np.abs,
    "step": lambda x: np.where(x >= 0.0, 1.0, 0.0),
}
"""Bishop's figure 5.3 targets: f(x) = x^2, sin(pi x), |x| and the Heaviside step."""


def load_digits_split(test_size: float = 0.25, seed: int = 0):
    """The scikit-learn digits, pixels scaled to [0, 1], split into train and test sets.

    The split is stratified: each digit is divided between the two sets in proportion to its
    count. It is the split that scikit-learn's ``train_test_split(X, y,
    test_size=test_size, random_state=seed, stratify=y)`` makes, index for index
    (``course_pkg.data.stratified_split``), made here without importing scikit-learn, whose
    import costs about 1.5 s of CPU in every process that asks for the digits (a grading
    worker, a student's kernel).

    Returns
    -------
    X_train, X_test, y_train, y_test
        X has shape (n, 64) (float64), y holds the integer labels 0-9.
    """
    if not (isinstance(test_size, (int, float)) and 0.0 < test_size < 1.0):
        raise ValueError(f"test_size must lie strictly between 0 and 1, got {test_size!r}")
    X, y = _digits()
    train, test = stratified_split(y, math.ceil(test_size * len(y)), seed)
    return X[train], X[test], y[train], y[test]


def stratified_split(y: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) of a random split of the labels ``y`` with ``n_test`` in the test
    set and each class shared between the sets in proportion to its count.

    The order of the random draws is scikit-learn's ``StratifiedShuffleSplit`` (one split),
    so that the same ``seed`` gives the same sets: the training set's share of each class
    (:func:`_proportional_counts`), then the test set's share of what is left, then for each
    class in turn a shuffle of its members (taken in the order they appear in ``y``), whose
    first members go to training and the next to the test set; last, each set is shuffled.

    Raises
    ------
    ValueError
        If ``seed`` is not an integer in [0, 2^32), or a set would have fewer members than
        there are classes, or a class has fewer than 2 members.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or \
            not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    _, label, counts = np.unique(y, return_inverse=True, return_counts=True)
    n_train = len(y) - n_test
    if counts.min() < 2 or min(n_train, n_test) < len(counts):
        raise ValueError(f"a stratified split of {len(y)} labels in {len(counts)} classes "
                         f"(the smallest has {counts.min()}) into {n_train} and {n_test} "
                         "needs every class to have 2 members and each set one per class")
    rng = np.random.RandomState(seed)
    in_train = _proportional_counts(counts, n_train, rng)
    in_test = _proportional_counts(counts - in_train, n_test, rng)
    members = np.split(np.argsort(label, kind="stable"), np.cumsum(counts)[:-1])
    train, test = [], []
    for k, indices in enumerate(members):
        shuffled = indices[rng.permutation(counts[k])]
        train.append(shuffled[:in_train[k]])
        test.append(shuffled[in_train[k]:in_train[k] + in_test[k]])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _proportional_counts(counts: np.ndarray, n: int, rng: np.random.RandomState) -> np.ndarray:
    """How many of ``n`` draws each class gets: its proportional share rounded down, then one
    more for the classes with the largest remainders, ties broken at random, until ``n``."""
    share = counts / counts.sum() * n
    taken = np.floor(share)
    missing = int(n - taken.sum())
    remainder = share - taken
    for value in np.unique(remainder)[::-1]:
        if missing == 0:
            break
        tied = np.flatnonzero(remainder == value)
        chosen = rng.choice(tied, size=min(len(tied), missing), replace=False)
        taken[chosen] += 1
        missing -= len(chosen)
    return taken.astype(int)


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """All the digits (X scaled to [0, 1], y as int64), read once per process from the file
    that scikit-learn bundles (``sklearn/datasets/data/digits.csv.gz``: 64 pixels of 0-16 and
    the label on each line), found without importing scikit-learn. Read-only: every split is
    a copy."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the digits come with scikit-learn, which is not installed: "
                                  "pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    data = np.loadtxt(path, delimiter=",")
    X, y = data[:, :-1] / 16.0, data[:, -1].astype(np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def bishop_targets(n: int = 50) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The inputs x (shape (n, 1), evenly spaced on [-1, 1]) and the four targets (n, 1)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer of at least 2, got {n!r}")
    x = np.linspace(-1.0, 1.0, n).reshape(-1, 1)
    return x, {name: f(x) for name, f in BISHOP_TARGETS.items()}
