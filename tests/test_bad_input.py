"""Bad input raises a ValueError that says what was expected; nothing is broadcast silently.

Also: the activations and losses stay finite, without overflow warnings, at |z| = 1000.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import course_pkg as cp
from course_pkg import activations, losses

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def regression():
    return cp.Network([3, 4, 2], ["tanh", "identity"], "half_squared_error", seed=0)


@pytest.fixture
def classifier():
    return cp.Network([3, 4, 5], ["relu", "softmax"], "cross_entropy", seed=0)


X_GOOD = np.zeros((6, 3))


@pytest.mark.parametrize(("X", "message"), [
    (np.zeros((6, 4)), r"shape \(n_samples, 3\)"),
    (np.zeros(3), r"shape \(n_samples, 3\)"),
    (np.zeros((6, 3, 1)), r"shape \(n_samples, 3\)"),
    (np.zeros((0, 3)), "at least one example"),
    (np.array([[0.0, NAN, 1.0]]), "NaN or inf"),
    (np.array([[0.0, INF, 1.0]]), "NaN or inf"),
    (np.array([["a", "b", "c"]]), "real numbers"),
])
def test_bad_X(regression, X, message):
    Y = np.zeros((len(X) if np.ndim(X) > 1 else 1, 2))
    for call in (lambda: regression.loss(X, Y), lambda: regression.train_step(X, Y, 0.1),
                 lambda: regression.predict(X)):
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize(("Y", "message"), [
    (np.zeros((6, 3)), r"shape \(6, 2\)"),
    (np.zeros((5, 2)), r"shape \(6, 2\)"),
    (np.zeros(6), r"shape \(6, 2\)"),
    (np.zeros((2, 6)), r"shape \(6, 2\)"),
    (np.full((6, 2), NAN), "NaN or inf"),
    (np.full((6, 2), -INF), "NaN or inf"),
])
def test_bad_regression_targets(regression, Y, message):
    with pytest.raises(ValueError, match=message):
        regression.loss_and_gradients(X_GOOD, Y)


def test_no_silent_broadcast_of_a_vector_target():
    """Y of shape (n,) for p_L = 1 would broadcast to (n, n): it must raise, with a hint."""
    net = cp.Network([3, 2, 1], seed=0)
    with pytest.raises(ValueError, match=r"shape \(6, 1\).*reshape"):
        net.train_step(X_GOOD, np.zeros(6), 0.1)
    net.train_step(X_GOOD, np.zeros((6, 1)), 0.1)  # the right shape is accepted


@pytest.mark.parametrize(("y", "message"), [
    (np.array([0, 1, 2, 3, 4, 5]), r"\[0, 5\)"),
    (np.array([0, 1, 2, 3, 4, -1]), r"\[0, 5\)"),
    (np.array([0.0, 1.0, 2.0, 3.0, 4.0, 1.0]), "integers"),
    (np.array([True, False, True, False, True, False]), "integers"),
    (np.zeros((6, 5), dtype=int), "vector of 6 integer labels"),
    (np.zeros(5, dtype=int), "vector of 6 integer labels"),
])
def test_bad_labels(classifier, y, message):
    with pytest.raises(ValueError, match=message):
        classifier.loss_and_gradients(X_GOOD, y)


@pytest.mark.parametrize("lr", [0, -1, 0.0, NAN, INF, -INF, "0.1", True, None, [0.1]])
def test_bad_learning_rate(regression, lr):
    with pytest.raises(ValueError, match="learning rate must be a positive finite number"):
        regression.train_step(X_GOOD, np.zeros((6, 2)), lr)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"activations": ["tanh", "swish"]}, "unknown activation 'swish'.*expected one of"),
    ({"activations": ["tanh"]}, "expected 2 activations"),
    ({"activations": [None, "identity"]}, "unknown activation None"),
    ({"loss": "hinge"}, "unknown loss 'hinge'.*expected one of"),
    ({"loss": None}, "unknown loss"),
    ({"activations": ["tanh", "softmax"]}, "softmax output needs loss='cross_entropy'"),
    ({"activations": ["softmax", "softmax"], "loss": "cross_entropy"}, "only allowed as"),
    ({"activations": ["tanh", "sigmoid"], "loss": "cross_entropy"}, "needs a 'softmax' output"),
    ({"dtype": "float16"}, "dtype must be one of"),
    ({"weights": [np.zeros((3, 4)), np.zeros((2, 4))]}, r"must have shape \(4, 3\)"),
    ({"weights": [np.zeros((4, 3))]}, "expected 2 weights"),
    ({"weights": [np.full((4, 3), NAN), np.zeros((2, 4))]}, "NaN or inf"),
    ({"biases": [np.zeros(4), np.zeros(3)]}, r"must have shape \(2,\)"),
])
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cp.Network([3, 4, 2], **kwargs)


@pytest.mark.parametrize("sizes", [[3], [], [3, 0, 2], [3, 2.0], [3, True], "32", None])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes must"):
        cp.Network(sizes)


@pytest.mark.parametrize("n", [1, 0, 2.5, "50", True])
def test_bad_bishop_sample_count(n):
    with pytest.raises(ValueError, match="integer of at least 2"):
        cp.bishop_targets(n)


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.2, "0.25"])
def test_bad_test_size(test_size):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        cp.load_digits_split(test_size)


# -- numerical stability ------------------------------------------------------------------------

Z_EXTREME = np.array([[-1000.0, 1000.0, 0.0], [1000.0, -1000.0, 0.0], [0.0, 0.0, -1000.0]])


def strict_floats():
    """Overflow, invalid operations and division by zero raise; underflow to 0 is exact enough
    (exp(-2000) is 0 to every digit a float64 has)."""
    return np.errstate(over="raise", invalid="raise", divide="raise", under="ignore")


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "identity"])
def test_componentwise_activations_are_stable(name):
    S, S_prime = activations.get(name)
    with strict_floats(), warnings.catch_warnings():
        warnings.simplefilter("error")
        values, slopes = S(Z_EXTREME, np), S_prime(Z_EXTREME, np)
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(slopes))
    if name == "sigmoid":
        assert values[0, 0] == 0.0 and values[0, 1] == 1.0 and values[0, 2] == 0.5


def test_softmax_and_cross_entropy_are_stable():
    y = np.array([0, 1, 2])
    with strict_floats(), warnings.catch_warnings():
        warnings.simplefilter("error")
        g = activations.softmax(Z_EXTREME, np)
        C = losses.cross_entropy(Z_EXTREME, y, np)
        delta = losses.softmax_cross_entropy_delta(g, y, np)
    np.testing.assert_allclose(np.sum(g, axis=0), 1.0)
    # column 0: z_y = -1000 while the maximum is 1000, so C = 2000 exactly (not inf)
    np.testing.assert_allclose(C, [2000.0, 2000.0, 1000.0 + np.log(2.0)])
    assert np.all(np.isfinite(delta))


def test_network_is_stable_at_extreme_pre_activations():
    net = cp.Network([1, 2, 2], ["sigmoid", "softmax"], "cross_entropy",
                     weights=[[[1000.0], [-1000.0]], [[1000.0, 0.0], [0.0, 1000.0]]])
    with strict_floats(), warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dW, db = net.loss_and_gradients([[1.0], [-1.0]], [1, 1])
    assert np.isfinite(loss) and loss > 100
    assert all(np.all(np.isfinite(d)) for d in [*dW, *db])
