"""The digits split, against scikit-learn's own as the oracle, without scikit-learn's import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import course_pkg as cp
from course_pkg.data import stratified_split


@pytest.mark.parametrize("test_size", [0.25, 0.1, 0.5, 1 / 3, 0.9])
def test_the_digits_split_is_scikit_learns_index_for_index(test_size):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X, y = digits.data / 16.0, digits.target.astype(np.int64)
    for seed in [0, 1, 2, 7, 123, 2**32 - 1]:
        theirs = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)
        mine = cp.load_digits_split(test_size, seed)
        assert all(np.array_equal(a, b) for a, b in zip(theirs, mine, strict=True)), seed


def test_ties_between_classes_are_broken_as_scikit_learn_breaks_them():
    """Equal remainders (classes of equal counts) are where the random tie-break matters."""
    from sklearn.model_selection import StratifiedShuffleSplit

    rng = np.random.default_rng(0)
    for counts, n_test in [([3, 3, 3, 5], 5), ([4, 4, 4, 4, 4], 7), ([2, 9, 2, 9], 6)]:
        y = rng.permutation(np.repeat(np.arange(len(counts)), counts))
        for seed in range(20):
            split = StratifiedShuffleSplit(1, test_size=n_test, train_size=len(y) - n_test,
                                           random_state=seed)
            train, test = next(split.split(np.zeros(len(y)), y))
            mine = stratified_split(y, n_test, seed)
            assert np.array_equal(mine[0], train) and np.array_equal(mine[1], test)


def test_the_digits_load_without_importing_scikit_learn():
    code = ("import sys, course_pkg as cp; X = cp.load_digits_split()[0]; "
            "print(X.shape, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["(1347,", "64)", "False"]


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "0"])
def test_a_bad_seed_is_refused(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        cp.load_digits_split(0.25, seed)


def test_a_split_too_small_for_the_classes_is_refused():
    with pytest.raises(ValueError, match="each set one per class"):
        cp.load_digits_split(0.001)
