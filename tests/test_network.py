"""The public API of ``course_pkg.Network`` and the formulas of Algorithms 1 and 2
(``002_ff83eee082f91d18.txt``), each written out by hand in NumPy and compared."""

from __future__ import annotations

import numpy as np
import pytest

import course_pkg as cp

RNG_SEED = 7


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture
def net():
    return cp.Network([4, 5, 3, 2], ["sigmoid", "relu", "identity"], "squared_error", seed=1)


def test_shapes_follow_the_theorem(net):
    assert [w.shape for w in net.weights] == [(5, 4), (3, 5), (2, 3)]
    assert [b.shape for b in net.biases] == [(5,), (3,), (2,)]
    assert net.num_parameters == 5 * 4 + 5 + 3 * 5 + 3 + 2 * 3 + 2
    X = np.ones((7, 4))
    z, a = net.forward(X)
    assert sorted(z) == [1, 2, 3] and sorted(a) == [0, 1, 2, 3]
    assert [a[l].shape for l in range(4)] == [(4, 7), (5, 7), (3, 7), (2, 7)]
    assert net.predict(X).shape == (7, 2)
    assert "4-5-3-2" in repr(net)


def test_forward_is_algorithm_1_lines_1_to_4(net, rng):
    X = rng.standard_normal((6, 4))
    W, b = net.weights, net.biases
    a1 = sigmoid(W[0] @ X.T + b[0][:, None])
    a2 = np.maximum(W[1] @ a1 + b[1][:, None], 0.0)
    g = W[2] @ a2 + b[2][:, None]
    np.testing.assert_allclose(net.predict(X), g.T, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(("loss", "factor"), [("half_squared_error", 0.5), ("squared_error", 1.0)])
def test_squared_losses_say_their_constant(loss, factor, rng):
    net = cp.Network([3, 2], "identity", loss, seed=0)
    X, Y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    g = net.predict(X)
    expected = factor * np.mean(np.sum((g - Y) ** 2, axis=1))
    assert net.loss(X, Y) == pytest.approx(expected, rel=1e-14)


def test_cross_entropy_is_minus_log_probability_of_the_label(rng):
    net = cp.Network([3, 4], "softmax", "cross_entropy", seed=0)
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 4, size=6)
    P = net.predict(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-14)
    expected = -np.mean(np.log(P[np.arange(6), y]))
    assert net.loss(X, y) == pytest.approx(expected, rel=1e-13)


def test_default_activations_match_the_loss():
    assert cp.Network([2, 3, 4], loss="cross_entropy").activation_names == ["tanh", "softmax"]
    assert cp.Network([2, 3, 1]).activation_names == ["tanh", "identity"]
    assert cp.Network([2, 3, 1], "relu").activation_names == ["relu", "relu"]


def test_gradient_is_the_mean_of_per_example_gradients(net, rng):
    """Algorithm 2: the batch gradient is the average of the one-example gradients."""
    X, Y = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    loss, dW, db = net.loss_and_gradients(X, Y)
    singles = [net.loss_and_gradients(X[i:i + 1], Y[i:i + 1]) for i in range(5)]
    assert loss == pytest.approx(np.mean([s[0] for s in singles]), rel=1e-14)
    for l in range(3):
        np.testing.assert_allclose(dW[l], np.mean([s[1][l] for s in singles], axis=0),
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db[l], np.mean([s[2][l] for s in singles], axis=0),
                                   rtol=1e-12, atol=1e-15)


def test_one_example_gradients_are_the_outer_products(rng):
    """dC/dW_l = delta_l a_{l-1}^T and dC/db_l = delta_l (theorem of 002), written by hand."""
    net = cp.Network([3, 4, 2], ["tanh", "identity"], "squared_error", seed=2)
    x, y = rng.standard_normal(3), rng.standard_normal(2)
    W, b = net.weights, net.biases
    z1 = W[0] @ x + b[0]
    a1 = np.tanh(z1)
    g = W[1] @ a1 + b[1]
    delta2 = 2.0 * (g - y)                      # identity output, C = ||g - y||^2
    delta1 = (1.0 - a1**2) * (W[1].T @ delta2)  # delta_1 = D_1 W_2^T delta_2
    _, dW, db = net.loss_and_gradients(x[None], y[None])
    np.testing.assert_allclose(dW[1], np.outer(delta2, a1), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dW[0], np.outer(delta1, x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(db[1], delta2, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(db[0], delta1, rtol=1e-13, atol=1e-15)


def test_explicit_parameters_are_copied(rng):
    W = [rng.standard_normal((3, 2)), rng.standard_normal((1, 3))]
    W0 = W[0].copy()
    net = cp.Network([2, 3, 1], weights=W)
    np.testing.assert_array_equal(net.weights[0], W[0])
    assert all(np.all(v == 0) for v in net.biases)
    net.train_step(np.ones((2, 2)), np.ones((2, 1)), 0.1)
    assert not np.array_equal(net.weights[0], W[0])  # the network moved, the caller's W not
    np.testing.assert_array_equal(W[0], W0)


def test_copy_is_independent_and_keeps_the_dtype(net):
    twin = net.copy()
    twin.train_step(np.ones((3, 4)), np.zeros((3, 2)), 0.5)
    assert not np.array_equal(twin.weights[0], net.weights[0])
    small = net.copy(dtype="float32")
    assert small.weights[0].dtype == np.float32 and small.copy().weights[0].dtype == np.float32
    np.testing.assert_allclose(small.weights[0], net.weights[0], rtol=1e-6)


def test_float32_network_computes_in_float32(rng):
    net = cp.Network([3, 4, 2], ["relu", "softmax"], "cross_entropy", dtype="float32")
    X, y = rng.standard_normal((5, 3)), rng.integers(0, 2, size=5)
    _, dW, db = net.loss_and_gradients(X, y)
    assert {d.dtype for d in [*dW, *db]} == {np.dtype(np.float32)}
    net.train_step(X, y, 0.1)
    assert {w.dtype for w in net.weights} == {np.dtype(np.float32)}


def test_seeded_initialisation_is_reproducible():
    a, b, c = (cp.Network([5, 6, 2], seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.weights[0], b.weights[0])
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_lists_are_accepted_as_input():
    net = cp.Network([2, 2, 1], seed=0)
    assert net.loss([[0.0, 1.0]], [[1.0]]) == net.loss(np.array([[0.0, 1.0]]), np.array([[1.0]]))
    assert net.predict([[1, 2]]).shape == (1, 1)  # integer inputs are converted
