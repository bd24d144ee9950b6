"""Every formula of the chapter "The chain rule and the two-layer tanh network".

The chapter follows sections 4-6 of ``001_ce18104b0c2237dd.txt`` (y = output, y_hat = target).
Each derivative is computed by hand in plain NumPy and compared with central finite
differences, with ``course_pkg.tanh_two_layer`` and with ``course_pkg.Network`` (zero biases).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import course_pkg as cp
from course_pkg import tanh_two_layer as t2
from course_pkg.gradcheck import central_differences
from course_pkg.widgets import tanh_fit

D, M, K = 3, 4, 2


def central(F, x, eps=1e-6):
    return (F(x + eps) - F(x - eps)) / (2 * eps)



def E_of(w1, w2, x, y_hat):
    """Eqs. (tanh-forward-h)-(tanh-error): E = 1/2 sum_k (y_k - y_hat_k)^2."""
    return 0.5 * np.sum((w2 @ np.tanh(w1 @ x) - y_hat) ** 2)


@pytest.fixture(params=[0, 1, 2])
def example(request):
    rng = np.random.default_rng(request.param)
    w1, w2 = rng.normal(size=(M, D)), rng.normal(size=(K, M))
    x, y_hat = rng.normal(size=D), rng.normal(size=K)
    z = np.tanh(w1 @ x)
    y = w2 @ z
    return w1, w2, x, y_hat, z, y


def test_chain_rule_one_variable():
    for x0 in (-1.3, 0.2, 0.7):
        product = (1 - np.tanh(x0**2) ** 2) * 2 * x0
        assert product == pytest.approx(central(lambda x: np.tanh(x**2), x0), rel=1e-8)


def test_chain_rule_sums_over_paths():
    for x0 in (-0.4, 0.7, 1.1):
        u1, u2 = np.exp(x0), x0**3
        paths = u2 * np.exp(x0) + (u1 + np.cos(u2)) * 3 * x0**2
        numeric = central(lambda x: np.exp(x) * x**3 + np.sin(x**3), x0)
        assert paths == pytest.approx(numeric, rel=1e-8)
        # one path alone is not the derivative
        assert abs(u2 * np.exp(x0) - numeric) > 1e-3


def test_forward_matches_package_and_network(example):
    w1, w2, x, y_hat, z, y = example
    h, z_pkg, y_pkg = t2.forward(w1, w2, x)
    np.testing.assert_allclose(h, w1 @ x)
    np.testing.assert_allclose(z_pkg, z)
    np.testing.assert_allclose(y_pkg, y)
    net = cp.Network([D, M, K], ["tanh", "identity"], loss="half_squared_error",
                     weights=[w1, w2])
    assert all(np.all(b == 0) for b in net.biases)
    np.testing.assert_allclose(net.predict(x[None, :])[0], y, rtol=1e-12)
    assert net.loss(x[None, :], y_hat[None, :]) == pytest.approx(E_of(w1, w2, x, y_hat))
    assert t2.E(y, y_hat) == pytest.approx(0.5 * np.sum((y - y_hat) ** 2))


def test_tanh_derivative_is_one_minus_square():
    h = np.linspace(-3, 3, 61)
    s, c = np.sinh(h), np.cosh(h)
    np.testing.assert_allclose(c**2 - s**2, 1.0, rtol=1e-10)        # used in the derivation
    np.testing.assert_allclose((c * c - s * s) / c**2, 1 - np.tanh(h) ** 2, atol=1e-12)
    np.testing.assert_allclose(1 - np.tanh(h) ** 2, central(np.tanh, h), atol=1e-9)
    np.testing.assert_allclose(t2.f_prime_from_output(np.tanh(h)), 1 - np.tanh(h) ** 2)
    np.testing.assert_allclose(cp.activations.tanh_prime(h, np), 1 - np.tanh(h) ** 2)


def test_dE_dw2(example):
    w1, w2, x, y_hat, z, y = example
    mine = np.outer(y - y_hat, z)                                     # (y_k - y_hat_k) z_j
    np.testing.assert_allclose(
        mine, central_differences(lambda W: E_of(w1, W, x, y_hat), w2), atol=1e-8)
    np.testing.assert_allclose(mine, t2.dE_dw2(z, y, y_hat), rtol=1e-12)


def test_dE_dz_sums_over_every_output(example):
    w1, w2, x, y_hat, z, y = example
    mine = (y - y_hat) @ w2                                           # sum_k (y_k - y_hat_k) w_kj
    fd = central_differences(lambda v: 0.5 * np.sum((w2 @ v - y_hat) ** 2), z)
    np.testing.assert_allclose(mine, fd, atol=1e-8)
    np.testing.assert_allclose(mine, t2.dE_dz(w2, y, y_hat), rtol=1e-12)
    one_path = (y - y_hat)[0] * w2[0]
    assert np.max(np.abs(one_path - fd)) > 1e-3


def test_dE_dw1_chain_and_substituted_forms(example):
    w1, w2, x, y_hat, z, y = example
    dE_dz = (y - y_hat) @ w2
    chain_form = np.outer(dE_dz * (1 - z**2), x)                      # (dE/dz_j dz_j/dh_j) x_i
    substituted = np.array([[(1 - z[j] ** 2) * x[i] * sum((y[k] - y_hat[k]) * w2[k, j]
                                                             for k in range(K))
                             for i in range(D)] for j in range(M)])
    fd = central_differences(lambda W: E_of(W, w2, x, y_hat), w1)
    np.testing.assert_allclose(chain_form, fd, atol=1e-8)
    np.testing.assert_allclose(substituted, chain_form, rtol=1e-12)
    np.testing.assert_allclose(chain_form, t2.dE_dw1(w2, x, z, y, y_hat), rtol=1e-12)


def test_gradients_match_network_with_zero_biases(example):
    w1, w2, x, y_hat, z, y = example
    net = cp.Network([D, M, K], ["tanh", "identity"], loss="half_squared_error",
                     weights=[w1, w2])
    loss, dW, db = net.loss_and_gradients(x[None, :], y_hat[None, :])
    E, g1, g2 = t2.gradients(w1, w2, x, y_hat)
    assert loss == pytest.approx(E)
    np.testing.assert_allclose(dW[0], g1, rtol=1e-12)
    np.testing.assert_allclose(dW[1], g2, rtol=1e-12)
    # the hidden error delta_j = (1 - z_j^2) sum_k w_kj delta_k is dC/db_1
    np.testing.assert_allclose(db[0], (1 - z**2) * ((y - y_hat) @ w2), rtol=1e-12)
    np.testing.assert_allclose(db[1], y - y_hat, rtol=1e-12)


def test_input_sensitivity_exercise(example):
    w1, w2, x, y_hat, z, y = example
    delta_hidden = (1 - z**2) * ((y - y_hat) @ w2)
    mine = w1.T @ delta_hidden                                        # sum_j w_ji delta_j
    fd = central_differences(lambda v: E_of(w1, w2, v, y_hat), x)
    np.testing.assert_allclose(mine, fd, atol=1e-8)


def test_taylor_remainder_is_second_order(example):
    w1, w2, x, y_hat, _, _ = example
    _, g1, g2 = t2.gradients(w1, w2, x, y_hat)
    grad = np.concatenate([g1.ravel(), g2.ravel()])
    theta = np.concatenate([w1.ravel(), w2.ravel()])

    def E_flat(t):
        return E_of(t[:M * D].reshape(M, D), t[M * D:].reshape(K, M), x, y_hat)

    u = np.random.default_rng(5).normal(size=theta.size)
    u /= np.linalg.norm(u)
    steps = np.logspace(-4, -1, 10)
    E0 = E_flat(theta)
    remainder = np.array([abs(E_flat(theta + t * u) - E0 - grad @ (t * u)) for t in steps])
    slope = np.polyfit(np.log(steps), np.log(remainder), 1)[0]
    assert slope == pytest.approx(2.0, abs=0.15)
    # the first-order prediction gets the sign and size of a small gradient-descent step right
    eta = 1e-3
    actual = E_flat(theta - eta * grad) - E0
    assert actual < 0
    assert actual == pytest.approx(-eta * grad @ grad, rel=1e-2)


def test_bishop_fit_learns_every_target():
    x, targets = cp.bishop_targets()
    for name in tanh_fit.TARGETS:
        snaps = tanh_fit.fit_snapshots(name)
        assert list(snaps) == list(tanh_fit.EPOCHS)
        losses = [snaps[e][2] for e in tanh_fit.EPOCHS]
        assert losses[-1] < 0.1 * losses[0], name
        net = tanh_fit.fitted_network(name)
        assert net.loss(x, targets[name]) == pytest.approx(losses[-1])
        # the fit is the linear output layer applied to the hidden units
        z = tanh_fit.hidden_outputs(net, x)
        np.testing.assert_allclose(z, np.tanh(x @ net.weights[0].T + net.biases[0]))
        np.testing.assert_allclose(net.predict(x), z @ net.weights[1].T + net.biases[1])
    assert tanh_fit.fit_snapshots("square")[5000][2] < 1e-3


def test_bishop_fit_matches_direct_training():
    x, targets = cp.bishop_targets()
    net = cp.Network([1, 3, 1], ["tanh", "identity"], loss="half_squared_error",
                     seed=tanh_fit.SEED)
    cp.train(net, x, targets["abs"], lr=tanh_fit.LEARNING_RATE, epochs=tanh_fit.EPOCHS[-1],
             batch_size=len(x), progress=False)
    for mine, snap in zip(net.weights, tanh_fit.fitted_network("abs").weights, strict=True):
        np.testing.assert_allclose(mine, snap, rtol=1e-6, atol=1e-9)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="unknown target"):
        tanh_fit.fit_snapshots("cube")
    with pytest.raises(ValueError, match="no snapshot"):
        tanh_fit.fitted_network("sin", 7)


def test_exercise_one_hidden_unit_by_hand():
    """tanh-ex-by-hand: x = 1, w1 = 0.5, w2 = 2, target 1, every number of the solution."""
    w1, w2, x, target = np.array([[0.5]]), np.array([[2.0]]), np.array([1.0]), np.array([1.0])
    h, z, y = t2.forward(w1, w2, x)
    assert (round(h[0], 4), round(z[0], 4), round(y[0], 4)) == (0.5, 0.4621, 0.9242)
    assert round(t2.E(y, target), 4) == 0.0029
    assert round(y[0] - target[0], 4) == -0.0758
    dw2, dw1 = t2.dE_dw2(z, y, target), t2.dE_dw1(w2, x, z, y, target)
    assert round(dw2[0, 0], 4) == -0.0350 and round(dw1[0, 0], 4) == -0.1192
    assert round(1 - z[0] ** 2, 4) == 0.7864
    # the solution's arithmetic with its rounded factors gives the same four decimals
    assert round(0.7864 * 1 * (-0.0758) * 2, 4) == -0.1192 and round(-0.0758 * 0.4621, 4) == -0.0350
    assert round(1 - 0.4621 ** 2, 4) == 0.7865 and round(0.7865 * (-0.0758) * 2, 4) == -0.1192
    from pathlib import Path

    text = " ".join((Path(__file__).resolve().parents[1] / "book" / "tanh_two_layer.md")
                    .read_text().split())
    for quoted in ("$y_1 = 2\\cdot 0.4621 = 0.9242$", "$E = \\frac12(0.9242 - 1)^2 = 0.0029$",
                   "-0.0758\\cdot 0.4621 = -0.0350$",
                   "0.7864\\cdot 1\\cdot(-0.0758)\\cdot 2 = -0.1192$"):
        assert quoted in text, quoted

    def error(v1, v2):
        return t2.E(t2.forward(np.array([[v1]]), np.array([[v2]]), x)[2], target)

    eps = 1e-6
    assert (error(0.5, 2 + eps) - error(0.5, 2 - eps)) / (2 * eps) == pytest.approx(dw2[0, 0])
    assert (error(0.5 + eps, 2) - error(0.5 - eps, 2)) / (2 * eps) == pytest.approx(dw1[0, 0])


def test_exercise_a_sigmoid_hidden_layer():
    """tanh-ex-sigmoid: only f' changes, 1 - z^2 -> z (1 - z), checked by finite differences."""
    rng = np.random.default_rng(4)
    w1, w2 = rng.normal(size=(3, 2)), rng.normal(size=(2, 3))
    x, target = rng.normal(size=2), rng.normal(size=2)

    def forward(v1):
        z = 1 / (1 + np.exp(-(v1 @ x)))
        return z, w2 @ z

    z, y = forward(w1)
    formula = np.outer(z * (1 - z) * ((y - target) @ w2), x)
    numeric = central_differences(lambda v: 0.5 * np.sum((forward(v)[1] - target) ** 2), w1)
    np.testing.assert_allclose(formula, numeric, atol=1e-8)
    np.testing.assert_allclose(t2.dE_dw2(z, y, target), np.outer(y - target, z))
