"""Every formula of the chapter "Gradient descent and the negative gradient".

The chapter follows ``001_ce18104b0c2237dd.txt`` (sections 1-2) and the comments of
``000_4a3fe56ce2bc8b6e.txt``. Each formula is checked against finite differences and, where
the package computes it, against :mod:`course_pkg`.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import course_pkg as cp
from course_pkg.widgets import descent

coord = st.floats(-3.0, 3.0, allow_nan=False)


def _fd_grad(f, x, y, h=1e-6):
    return np.array([(f(x + h, y) - f(x - h, y)) / (2 * h), (f(x, y + h) - f(x, y - h)) / (2 * h)])


@settings(max_examples=60, deadline=None)
@given(coord, coord)
def test_landscape_gradient_matches_finite_differences(x, y):
    """Eq. (gd-landscape-grad): the partial derivatives of F."""
    np.testing.assert_allclose(descent.grad_F(x, y), _fd_grad(descent.F, x, y), atol=1e-8)


@settings(max_examples=40, deadline=None)
@given(coord, coord)
def test_hessian_matches_finite_differences_of_the_gradient(x, y):
    """The Hessian H of the second-order term of eq. (gd-taylor2)."""
    h = 1e-6
    columns = [(descent.grad_F(x + h, y) - descent.grad_F(x - h, y)) / (2 * h),
               (descent.grad_F(x, y + h) - descent.grad_F(x, y - h)) / (2 * h)]
    H = descent.hessian_F(x, y)
    np.testing.assert_allclose(H, np.column_stack(columns), atol=1e-7)
    np.testing.assert_allclose(H, H.T)


def test_taylor_remainder_is_second_order():
    """Eq. (gd-taylor2): R(eps v) / eps^2 -> 1/2 v^T H v, with an error of order eps."""
    rng = np.random.default_rng(0)
    for r0 in rng.uniform(-2.5, 2.5, size=(5, 2)):
        v = rng.normal(size=2)
        v /= np.linalg.norm(v)
        limit = 0.5 * v @ descent.hessian_F(*r0) @ v
        errors = [abs(descent.taylor_remainder(*r0, eps * v) / eps**2 - limit)
                  for eps in (1e-1, 1e-2, 1e-3)]
        assert errors[2] < 2e-3
        assert errors[1] < 0.2 * errors[0] + 1e-6        # shrinks like eps
        # the linear model (gd-taylor1) is exact only to first order: R != 0 for a finite step
        assert abs(descent.taylor_remainder(*r0, 0.5 * v)) > 1e-4


def test_taylor_remainder_rejects_a_bad_step():
    with pytest.raises(ValueError, match="shape"):
        descent.taylor_remainder(0.0, 0.0, np.zeros(3))


def test_decrease_along_the_negative_gradient():
    """Eq. (gd-decrease): F(r0 - eta g) - F(r0) = -eta |g|^2 + eta^2/2 g^T H g + o(eta^2)."""
    r0 = np.array([1.2, 1.5])
    g, H = descent.grad_F(*r0), descent.hessian_F(*r0)
    for eta in (1e-1, 1e-2, 1e-3):
        change = descent.F(*(r0 - eta * g)) - descent.F(*r0)
        predicted = -eta * g @ g + 0.5 * eta**2 * g @ H @ g
        assert abs(change - predicted) < 2 * eta**3 * np.linalg.norm(g) ** 3
        assert change < 0                                 # a small step goes downhill
    # and a long step along the same direction goes uphill
    assert descent.F(*(r0 - 4.5 * g)) > descent.F(*r0)


@settings(max_examples=40, deadline=None)
@given(coord, coord, st.floats(-np.pi, np.pi))
def test_directional_derivative_is_v_dot_gradient(x, y, phi):
    """Eq. (gd-directional): the difference quotient of F along a unit v tends to v . grad F."""
    h = 1e-6
    v = np.array([np.cos(phi), np.sin(phi)])
    quotient = (descent.F(x + h * v[0], y + h * v[1]) - descent.F(x - h * v[0], y - h * v[1])) / (
        2 * h)
    assert descent.directional_derivative(x, y, phi) == pytest.approx(quotient, abs=1e-8)


@settings(max_examples=40, deadline=None)
@given(coord, coord)
def test_steepest_descent_theorem(x, y):
    """Theorem gd-thm-steepest: min over unit v of v . grad F is -|grad F|, at v = -g/|g|."""
    g = descent.grad_F(x, y)
    norm = np.linalg.norm(g)
    phi = np.linspace(-np.pi, np.pi, 2001)
    D = descent.directional_derivative(x, y, phi)
    assert D.min() >= -norm - 1e-12
    assert D.min() == pytest.approx(-norm, abs=1e-5 * (1 + norm))
    phi_star = np.arctan2(-g[1], -g[0])
    assert descent.directional_derivative(x, y, phi_star) == pytest.approx(-norm, rel=1e-12)


def test_quadratic_descent_follows_the_closed_form():
    """Eq. (gd-modes): c_i^tau = (1 - eta lambda_i)^tau c_i^0 in the eigenbasis of H."""
    H, w0 = descent.H_EXAMPLE, descent.W0_EXAMPLE
    lam, Q = np.linalg.eigh(H)
    for eta in (0.1, 0.3, 0.45, 0.5, 0.6):
        path = descent.descend_quadratic(H, w0, eta, 25)
        closed = ((1 - eta * lam) ** np.arange(26)[:, None]) * (Q.T @ w0)
        np.testing.assert_allclose(path @ Q, closed, atol=1e-10 * (1 + np.abs(closed).max()))


def test_quadratic_gradient_matches_finite_differences():
    """Eq. (gd-quadratic): grad of 1/2 w^T H w is H w."""
    H, w = descent.H_EXAMPLE, np.array([0.3, -1.1])
    h = 1e-6
    fd = [(descent.quadratic_loss(H, w + h * e) - descent.quadratic_loss(H, w - h * e))[0] / (2 * h)
          for e in np.eye(2)]
    np.testing.assert_allclose(H @ w, fd, atol=1e-8)


def test_critical_learning_rate_separates_convergence_from_divergence():
    """Theorem gd-thm-critical: converges iff eta < 2 / lambda_max; the four regimes."""
    H, w0 = descent.H_EXAMPLE, descent.W0_EXAMPLE
    eta_star = descent.critical_learning_rate(H)
    assert eta_star == pytest.approx(2 / np.linalg.eigvalsh(H).max())
    q_max = np.linalg.eigh(H)[1][:, -1]

    def loss_after(eta, steps=200):
        return descent.quadratic_loss(H, descent.descend_quadratic(H, w0, eta, steps))[-1]

    assert loss_after(0.99 * eta_star) < 1e-3 * loss_after(0.01 * eta_star, 1)
    assert loss_after(1.01 * eta_star) > 10 * descent.quadratic_loss(H, w0)[0]
    # at eta*, the component along q_max bounces with constant size
    c = descent.descend_quadratic(H, w0, eta_star, 40) @ q_max
    np.testing.assert_allclose(np.abs(c[-1]), np.abs(c[0]), rtol=1e-9)
    np.testing.assert_allclose(np.sign(c[1:]), -np.sign(c[:-1]))
    # below 1/lambda_max the slide is monotone, between 1/lambda_max and eta* it zigzags
    for eta, zigzag in ((0.2, False), (0.4, True)):
        c = descent.descend_quadratic(H, w0, eta, 10) @ q_max
        assert np.all(np.sign(c[1:]) == (-1 if zigzag else 1) * np.sign(c[:-1]))


def test_best_rate_equalises_the_extreme_modes():
    """eta = 2 / (lambda_min + lambda_max) minimises max |1 - eta lambda_i|."""
    lam = np.linalg.eigvalsh(descent.H_EXAMPLE)
    etas = np.linspace(0.01, 0.6, 5901)
    worst = np.max(np.abs(1 - etas[:, None] * lam), axis=1)
    assert etas[np.argmin(worst)] == pytest.approx(2 / lam.sum(), abs=1e-4)
    assert worst.min() == pytest.approx((lam[-1] - lam[0]) / (lam[-1] + lam[0]), abs=1e-4)


@pytest.mark.parametrize("H, message", [
    (np.ones((2, 3)), "square"),
    (np.array([[1.0, 2.0], [0.0, 1.0]]), "symmetric"),
    (np.array([[1.0, 0.0], [0.0, -1.0]]), "positive definite"),
])
def test_critical_learning_rate_rejects_bad_matrices(H, message):
    with pytest.raises(ValueError, match=message):
        descent.critical_learning_rate(H)


def test_descend_quadratic_rejects_bad_input():
    with pytest.raises(ValueError, match="w0 of shape"):
        descent.descend_quadratic(descent.H_EXAMPLE, [1.0, 2.0, 3.0], 0.1, 5)
    with pytest.raises(ValueError, match="positive learning rate"):
        descent.descend_quadratic(descent.H_EXAMPLE, [1.0, 2.0], 0.0, 5)


def _linear_problem():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 2)) * [1.0, 2.0] + [0.5, -1.0]
    y = X @ np.array([1.5, -0.5]) + 0.3 + 0.1 * rng.normal(size=64)
    Xt = np.column_stack([X, np.ones(64)])
    return X, y, Xt, Xt.T @ Xt / 64


def test_network_step_is_the_update_rule():
    """Eq. (gd-update) against course_pkg: train_step of a linear neuron is theta - eta grad E."""
    X, y, Xt, H = _linear_problem()
    net = cp.Network([2, 1], ["identity"], "half_squared_error", seed=3)
    theta = np.concatenate([net.weights[0].ravel(), net.biases[0]])
    grad = H @ theta - Xt.T @ y / 64
    fd_W, fd_b = cp.finite_difference_gradients(net, X, y[:, None])
    np.testing.assert_allclose(grad, np.concatenate([fd_W[0].ravel(), fd_b[0]]), atol=1e-7)
    net.train_step(X, y[:, None], lr=0.2)
    np.testing.assert_allclose(np.concatenate([net.weights[0].ravel(), net.biases[0]]),
                               theta - 0.2 * grad, atol=1e-12)


def test_network_obeys_the_critical_learning_rate():
    """Theorem gd-thm-critical for the quadratic loss of a linear neuron trained by course_pkg."""
    X, y, _, H = _linear_problem()
    eta_star = descent.critical_learning_rate(H)
    final = {}
    for factor in (0.95, 1.05):
        net = cp.Network([2, 1], ["identity"], "half_squared_error", seed=0)
        final[factor] = [net.train_step(X, y[:, None], lr=factor * eta_star)
                         for _ in range(300)][-1]
    assert final[0.95] < 0.01 and final[1.05] > 1e6


def test_the_box_on_finite_differences():
    """The chapter's box: forward error O(h), central O(h^2), and the balancing steps (about
    1e-8 forward, 5e-6 central, in float64 for values of order 1) on the chapter's landscape."""
    x, y = 0.7, -1.2
    exact = descent.grad_F(np.array([x]), np.array([y]))[0, 0]
    F = descent.F

    def errors(h):
        forward = (F(x + h, y) - F(x, y)) / h
        central = (F(x + h, y) - F(x - h, y)) / (2 * h)
        return abs(forward - exact), abs(central - exact)

    f1, c1 = errors(1e-2)
    f2, c2 = errors(5e-3)
    assert f1 / f2 == pytest.approx(2, rel=0.05)          # truncation: proportional to h
    assert c1 / c2 == pytest.approx(4, rel=0.05)          # proportional to h^2
    hs = np.logspace(-11, -1, 101)
    both = np.array([errors(h) for h in hs])
    best_forward, best_central = hs[both[:, 0].argmin()], hs[both[:, 1].argmin()]
    assert 1e-9 <= best_forward <= 1e-7
    assert 1e-6 <= best_central <= 3e-5
    u = np.finfo(float).eps / 2
    assert u ** 0.5 == pytest.approx(1e-8, rel=0.1) and u ** (1 / 3) == pytest.approx(5e-6, rel=0.1)
    assert both[0, 1] > 100 * both[:, 1].min()            # too small a step: round-off wins
