"""The seeds' small models against ``Network`` on the same parameters, and against finite
differences.

* ``identity_sigmoid`` (``000_4a3fe56ce2bc8b6e.txt``): one weight, dE/dw of eq. (6), one update;
* ``tanh_two_layer`` (``001_ce18104b0c2237dd.txt``): eqs. (5.9)-(5.12) against a [D, M, K]
  tanh/identity Network with zero biases and one example;
* ``node_delta`` (``003_00675a7c1b711b2c.txt``): the node-level update against one
  ``Network.train_step`` on one example (weights only: the seed has no biases, so the biases
  that Network also moves are not compared).
"""

from __future__ import annotations

import numpy as np
import pytest

import course_pkg as cp
from course_pkg import identity_sigmoid, node_delta, tanh_two_layer
from course_pkg.gradcheck import finite_difference_gradients, relative_error

TIGHT = 1e-12


def central_difference(f, t: float, h: float = 1e-5) -> float:
    return (f(t + h) - f(t - h)) / (2 * h)


# -- 000: one weight, logistic activation -------------------------------------------------------

ONE_WEIGHT_CASES = [(w, x) for w in (-2.0, -0.3, 0.0, 0.7, 3.0) for x in (0.0, 1.0, 0.5, -1.5)]


def one_weight_network(w: float) -> cp.Network:
    return cp.Network([1, 1], "sigmoid", "half_squared_error", weights=[[[w]]], biases=[[0.0]])


@pytest.mark.parametrize(("w", "x"), ONE_WEIGHT_CASES)
def test_identity_sigmoid_gradient_matches_network(w, x):
    y = x  # the seed learns the identity T(x) = x
    _, dW, _ = one_weight_network(w).loss_and_gradients([[x]], [[y]])
    assert abs(identity_sigmoid.dE_dw(w, x, y) - dW[0][0, 0]) < TIGHT


@pytest.mark.parametrize(("w", "x"), ONE_WEIGHT_CASES)
def test_identity_sigmoid_gradient_matches_finite_differences(w, x):
    def E_of(v):
        return identity_sigmoid.E(identity_sigmoid.T_hat(v, x), x)

    fd = central_difference(E_of, w)
    assert abs(identity_sigmoid.dE_dw(w, x, x) - fd) < 1e-9


@pytest.mark.parametrize(("w", "x", "mu"), [(0.5, 1.0, 0.1), (-1.0, 1.0, 2.0), (2.0, 0.5, 0.7)])
def test_identity_sigmoid_update_matches_train_step(w, x, mu):
    net = one_weight_network(w)
    net.train_step([[x]], [[x]], mu)
    assert abs(identity_sigmoid.update(w, x, x, mu) - net.W[1][0, 0]) < TIGHT


def test_identity_sigmoid_training_moves_towards_the_identity():
    """Cycling through x = 0 and x = 1 lowers the error at x = 1 (the only informative one)."""
    path = identity_sigmoid.train(w0=-1.0, mu=1.0, steps=200)
    errors = [identity_sigmoid.E(identity_sigmoid.T_hat(w, 1.0), 1.0) for w in path]
    assert errors[-1] < 0.5 * errors[0]
    assert np.all(np.diff(path[::2]) >= 0)  # the negative gradient always pushes w upwards


# -- 001: two-layer tanh network (Bishop 5.3-5.12) ----------------------------------------------

@pytest.fixture(params=[(1, 3, 1), (2, 4, 3), (5, 2, 4)], ids=lambda s: "D{}-M{}-K{}".format(*s))
def tanh_case(request, rng):
    D, M, K = request.param
    w1, w2 = rng.standard_normal((M, D)), rng.standard_normal((K, M))
    x, y_hat = rng.standard_normal(D), rng.standard_normal(K)
    net = cp.Network([D, M, K], ["tanh", "identity"], "half_squared_error",
                     weights=[w1, w2], biases=[np.zeros(M), np.zeros(K)])
    return w1, w2, x, y_hat, net


def test_tanh_two_layer_matches_network(tanh_case):
    w1, w2, x, y_hat, net = tanh_case
    E, g1, g2 = tanh_two_layer.gradients(w1, w2, x, y_hat)
    loss, dW, _ = net.loss_and_gradients(x[None, :], y_hat[None, :])
    assert abs(E - loss) < TIGHT
    np.testing.assert_allclose(g1, dW[0], rtol=0, atol=TIGHT)  # eq. (5.12)
    np.testing.assert_allclose(g2, dW[1], rtol=0, atol=TIGHT)  # eq. (5.9)
    _, _, y = tanh_two_layer.forward(w1, w2, x)
    np.testing.assert_allclose(y, net.predict(x[None, :])[0], rtol=0, atol=TIGHT)


def test_tanh_two_layer_matches_finite_differences(tanh_case):
    w1, w2, x, y_hat, net = tanh_case
    _, g1, g2 = tanh_two_layer.gradients(w1, w2, x, y_hat)
    fd_W, _ = finite_difference_gradients(net, x[None, :], y_hat[None, :])
    assert relative_error(g1, fd_W[0], 1e-9) < 1e-8
    assert relative_error(g2, fd_W[1], 1e-9) < 1e-8


def test_tanh_hidden_output_derivative_eq_5_11(tanh_case):
    """dE/dz_j = sum_k (y_k - y_hat_k) w_kj, by differences in the hidden outputs z."""
    w1, w2, x, y_hat, _ = tanh_case
    _, z, y = tanh_two_layer.forward(w1, w2, x)
    analytic = tanh_two_layer.dE_dz(w2, y, y_hat)
    for j in range(z.size):
        def E_of(v, j=j):
            zj = z.copy()
            zj[j] = v
            return tanh_two_layer.E(w2 @ zj, y_hat)

        assert abs(analytic[j] - central_difference(E_of, z[j])) < 1e-8


def test_tanh_derivative_from_output_eq_5_7():
    h = np.linspace(-3, 3, 13)
    fd = (np.tanh(h + 1e-6) - np.tanh(h - 1e-6)) / 2e-6
    np.testing.assert_allclose(tanh_two_layer.f_prime_from_output(np.tanh(h)), fd, atol=1e-9)


# -- 003: node-level deltas ---------------------------------------------------------------------

@pytest.fixture(params=[[2, 3, 1], [3, 4, 2], [2, 3, 3, 2]], ids=lambda s: "-".join(map(str, s)))
def node_case(request, rng):
    sizes = request.param
    w = [rng.standard_normal((p_in, p_out)) for p_in, p_out in zip(sizes, sizes[1:], strict=False)]
    x, t = rng.standard_normal(sizes[0]), rng.uniform(0, 1, sizes[-1])
    return sizes, w, x, t


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_node_update_equals_one_train_step(node_case, activation):
    sizes, w, x, t = node_case
    eta = 0.3
    net = cp.Network(sizes, activation, "half_squared_error",
                     weights=[w_m.T for w_m in w], biases=[np.zeros(p) for p in sizes[1:]])
    net.train_step(x[None, :], t[None, :], eta)
    new = node_delta.update(w, x, t, eta, activation)
    for l, w_m in enumerate(new, 1):
        np.testing.assert_allclose(w_m.T, net.W[l], rtol=0, atol=TIGHT)
    for w_m, old in zip(new, w, strict=True):  # the step moved something
        assert not np.allclose(w_m, old)


def test_node_Delta_is_minus_the_matrix_delta(node_case):
    """Delta_k = -dE/d(in_k) (seed 003) while delta = +dC/dz (seed 002)."""
    sizes, w, x, t = node_case
    g, g_prime = node_delta.derivative("sigmoid")
    inp, a = node_delta.forward(w, x, g)
    Delta = node_delta.error_signals(w, inp, a, t, g_prime)
    net = cp.Network(sizes, "sigmoid", "half_squared_error",
                     weights=[w_m.T for w_m in w], biases=[np.zeros(p) for p in sizes[1:]])
    z, acts = net.forward(x[None, :])
    L = net.L
    delta_L = cp.losses.output_delta(net.loss_name, net.S_prime[L], z[L], acts[L],
                                     t[:, None], np)
    _, _, delta = cp.back_propagate(net.W, z, acts, delta_L, net.S_prime)
    for m in range(1, L + 1):
        np.testing.assert_allclose(Delta[m], -delta[m][:, 0], rtol=0, atol=TIGHT)


def test_node_update_is_gradient_descent_by_finite_differences(node_case):
    """w_ik + eta a_i Delta_k = w_ik - eta dE/dw_ik, with dE/dw_ik from finite differences."""
    sizes, w, x, t = node_case
    eta = 0.5
    new = node_delta.update(w, x, t, eta)
    for m, w_m in enumerate(w):
        for idx in np.ndindex(w_m.shape):
            def E_of(v, m=m, idx=idx):
                trial = [w_n.copy() for w_n in w]
                trial[m][idx] = v
                return node_delta.error(trial, x, t)

            expected = w_m[idx] - eta * central_difference(E_of, w_m[idx])
            assert abs(new[m][idx] - expected) < 1e-9


@pytest.mark.parametrize("name", ["softmax", "swish"])
def test_node_delta_needs_a_componentwise_activation(name):
    with pytest.raises(ValueError, match="expected one of|componentwise"):
        node_delta.derivative(name)
