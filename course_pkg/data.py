"""The course's data sets; none needs a download.

* the 8x8 handwritten digits bundled with scikit-learn (1797 images, 10 classes), with a
  fixed stratified train/test split;
* the four toy regression targets of Bishop's figure 5.3 (after ``001_ce18104b0c2237dd.txt``):
  x^2, sin, |x| and a step, sampled at 50 points of [-1, 1].
"""

from __future__ import annotations

import functools

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

    Returns
    -------
    X_train, X_test, y_train, y_test
        X has shape (n, 64) (float64), y holds the integer labels 0-9.
    """
    from sklearn.model_selection import train_test_split

    if not (isinstance(test_size, (int, float)) and 0.0 < test_size < 1.0):
        raise ValueError(f"test_size must lie strictly between 0 and 1, got {test_size!r}")
    X, y = _digits()
    return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """All the digits (X scaled to [0, 1], y as int64), read once per process (parsing the
    bundled CSV costs about 20 ms, once per grading otherwise). Read-only: every split is a
    copy."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X, y = digits.data / 16.0, digits.target.astype(np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def bishop_targets(n: int = 50) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The inputs x (shape (n, 1), evenly spaced on [-1, 1]) and the four targets (n, 1)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer of at least 2, got {n!r}")
    x = np.linspace(-1.0, 1.0, n).reshape(-1, 1)
    return x, {name: f(x) for name, f in BISHOP_TARGETS.items()}
