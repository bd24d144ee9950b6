"""Every formula of the chapter "The identity sigmoid" (``000_4a3fe56ce2bc8b6e.txt``).

Eqs. (1)-(6) of the seed, the update rule, the limits of the network without a bias, the
sign-versus-proportional experiments and the unit with a bias are each checked against
finite differences and against :mod:`course_pkg`.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import course_pkg as cp
from course_pkg import identity_sigmoid as isg
from course_pkg.widgets import sigmoid as sg

weight = st.floats(-6.0, 6.0, allow_nan=False)
H = 1e-6


def A(s):
    return 1.0 / (1.0 + np.exp(-s))


def logit(p):
    return np.log(p / (1.0 - p))


def E_direct(w, x, y):
    return 0.5 * (A(w * x) - y) ** 2


def eq6(w, x, y):
    """The seed's eq. (6), written out independently of course_pkg."""
    return (A(w * x) - y) * x * (1 - A(w * x)) * A(w * x)


@settings(max_examples=80, deadline=None)
@given(weight, st.sampled_from([0.0, 1.0, 0.5, -2.0]), st.floats(-1.0, 2.0))
def test_eq6_against_finite_differences_package_and_network(w, x, y):
    """Eq. (is-eq6): dE/dw = (y_hat - y) x (1 - A(wx)) A(wx)."""
    fd = (E_direct(w + H, x, y) - E_direct(w - H, x, y)) / (2 * H)
    assert eq6(w, x, y) == pytest.approx(fd, abs=1e-9)
    assert isg.dE_dw(w, x, y) == pytest.approx(eq6(w, x, y), abs=1e-14)
    net = cp.Network([1, 1], ["sigmoid"], "half_squared_error", weights=[[[w]]], biases=[[0.0]])
    _, dW, _ = net.loss_and_gradients([[x]], [[y]])
    assert dW[0][0, 0] == pytest.approx(eq6(w, x, y), abs=1e-14)


@settings(max_examples=50, deadline=None)
@given(st.floats(-30.0, 30.0))
def test_sigmoid_derivative(s):
    """Eq. (is-sigmoid-prime): A'(s) = A(s) (1 - A(s))."""
    h = 1e-5
    fd = (A(s + h) - A(s - h)) / (2 * h)
    assert A(s) * (1 - A(s)) == pytest.approx(fd, abs=1e-10)
    assert float(isg.A(s) * (1 - isg.A(s))) == pytest.approx(A(s) * (1 - A(s)), abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(st.floats(0.01, 0.99), st.floats(-1.0, 2.0))
def test_partial_derivatives_of_E_in_eqs_1_and_2(y_hat, y):
    """Eqs. (is-eq1)-(is-eq2): dE/dy_hat = y_hat - y and dE/dy = -(y_hat - y)."""
    dE_dyhat = (isg.E(y_hat + H, y) - isg.E(y_hat - H, y)) / (2 * H)
    dE_dy = (isg.E(y_hat, y + H) - isg.E(y_hat, y - H)) / (2 * H)
    assert dE_dyhat == pytest.approx(y_hat - y, abs=1e-8)
    assert dE_dy == pytest.approx(-(y_hat - y), abs=1e-8)


@settings(max_examples=40, deadline=None)
@given(weight, st.floats(0.01, 10.0))
def test_update_rule(w, mu):
    """Eq. (is-update): w <- w - mu dE/dw; on x = 1 it always increases w, on x = 0 never moves."""
    assert isg.update(w, 1.0, 1.0, mu) == pytest.approx(w - mu * eq6(w, 1.0, 1.0), abs=1e-14)
    assert isg.update(w, 1.0, 1.0, mu) > w
    assert isg.update(w, 0.0, 0.0, mu) == w


def test_x0_error_is_one_eighth_for_every_weight():
    """Theorem is-thm-limits (1)."""
    ws = np.linspace(-50, 50, 101)
    np.testing.assert_array_equal(sg.error(ws, 0.0), 0.125)
    np.testing.assert_array_equal(isg.dE_dw(ws, 0.0, 0.0), 0.0)


def test_x1_error_decreases_to_zero_with_no_minimiser():
    """Theorem is-thm-limits (2): E_1 > 0 strictly decreasing, E_1 and E_1' -> 0 as w -> inf."""
    ws = np.linspace(-10, 30, 2001)
    E1 = sg.error(ws, 1.0)
    assert np.all(E1 > 0) and np.all(np.diff(E1) < 0)
    slope = isg.dE_dw(ws, 1.0, 1.0)
    assert np.all(slope < 0)
    moderate = ws <= 15                  # beyond, 1 - A(w) loses digits to cancellation
    np.testing.assert_allclose(slope[moderate], -A(-ws[moderate]) ** 2 * A(ws[moderate]),
                               rtol=1e-8)
    assert E1[-1] < 1e-25 and abs(slope[-1]) < 1e-25


@pytest.mark.parametrize("mu", [0.3, 1.0, 5.0])
def test_error_after_k_updates_approaches_one_over_4_mu_k(mu):
    """Theorem is-thm-limits (3): 4 mu k E_1(w_k) -> 1, with x = 0, 1 alternating."""
    path = isg.train(0.0, mu, 40000)
    k = np.array([100, 1000, 20000])
    ratio = 4 * mu * k * sg.error(path[2 * k], 1.0)
    assert np.all(np.diff(np.abs(ratio - 1)) < 0)
    assert abs(ratio[-1] - 1) < 0.05
    np.testing.assert_allclose(sg.asymptotic_error(mu, k), 1 / (4 * mu * k))
    assert np.all(np.diff(path) >= 0)                    # w never decreases


def test_sign_steps_beat_proportional_steps_on_the_saturated_task():
    grad_1 = lambda w: isg.dE_dw(w, 1.0, 1.0)           # noqa: E731
    delta = abs(grad_1(0.0))
    prop = sg.descend(grad_1, 0.0, 1.0, 200)
    sign = sg.descend(grad_1, 0.0, delta, 200, rule="sign")
    np.testing.assert_allclose(sign, delta * np.arange(201))      # w_k = k delta
    np.testing.assert_allclose(prop, isg.train(0.0, 1.0, 200, xs=(1.0,)))
    assert sg.error(sign[-1], 1.0) < 1e-15 < sg.error(prop[-1], 1.0)


def test_proportional_steps_converge_where_sign_steps_cycle():
    """Target 0.8 on x = 1: w* = ln 4; contraction factor 1 - mu E''(w*), E'' = (0.8 0.2)^2."""
    grad = lambda w: isg.dE_dw(w, 1.0, 0.8)            # noqa: E731
    w_star, mu = np.log(4.0), 10.0
    curvature = (grad(w_star + 1e-5) - grad(w_star - 1e-5)) / 2e-5
    assert curvature == pytest.approx((0.8 * 0.2) ** 2, rel=1e-8)
    prop = sg.descend(grad, 0.0, mu, 60)
    sign = sg.descend(grad, 0.0, mu * abs(grad(0.0)), 60, rule="sign")
    assert abs(prop[-1] - w_star) < 1e-6
    gaps = np.abs(prop[30:40] - w_star)
    np.testing.assert_allclose(gaps[1:] / gaps[:-1], 1 - mu * curvature, rtol=1e-3)
    assert np.abs(sign[-10:] - w_star).min() > 0.05
    np.testing.assert_allclose(sign[-1], sign[-3])               # a 2-cycle


def test_descend_rejects_bad_rules_and_rates():
    with pytest.raises(ValueError, match="rule"):
        sg.descend(lambda w: w, 0.0, 0.1, 3, rule="momentum")
    with pytest.raises(ValueError, match="positive rate"):
        sg.descend(lambda w: w, 0.0, -0.1, 3)


@settings(max_examples=30, deadline=None)
@given(weight, weight, st.sampled_from([0.0, 1.0]))
def test_bias_gradients(w, b, x):
    """Eq. (is-bias-grad) against course_pkg and finite differences."""
    s = w * x + b
    formula = (A(s) - x) * A(s) * (1 - A(s)) * np.array([x, 1.0])
    net = sg.bias_network(w, b)
    _, dW, db = net.loss_and_gradients([[x]], [[x]])
    np.testing.assert_allclose([dW[0][0, 0], db[0][0]], formula, atol=1e-14)
    fd = np.array([(E_direct(1.0, s + H * x, x) - E_direct(1.0, s - H * x, x)),
                   (E_direct(1.0, s + H, x) - E_direct(1.0, s - H, x))]) / (2 * H)
    np.testing.assert_allclose(formula, fd, atol=1e-9)


def test_bias_network_fits_interior_targets_exactly():
    """Theorem is-thm-bias (1): b* = logit(y0), w* = logit(y1) - logit(y0)."""
    hist = sg.train_bias_network(0.0, 0.0, lr=2.0, steps=5000, targets=(0.2, 0.7))
    np.testing.assert_allclose([hist["w"][-1], hist["b"][-1]],
                               [logit(0.7) - logit(0.2), logit(0.2)], atol=1e-6)
    assert hist["loss"][-1] < 1e-20
    net = sg.bias_network(logit(0.7) - logit(0.2), logit(0.2))
    assert net.loss(sg.X_BOTH, [[0.2], [0.7]]) < 1e-28


def test_bias_removes_the_one_sixteenth_floor_but_not_saturation():
    """Theorem is-thm-bias (2), and the loss floor 1/16 without a bias."""
    no_bias = sg.train_bias_network(0.0, 0.0, lr=2.0, steps=3000, learn_bias=False)
    with_bias = sg.train_bias_network(0.0, 0.0, lr=2.0, steps=3000)
    assert np.all(no_bias["b"] == 0.0) and no_bias["loss"].min() > 1 / 16
    loss = with_bias["loss"]
    assert loss[-1] < 1e-3 < 1 / 16 and np.all(loss > 0) and np.all(np.diff(loss) < 0)
    # no minimiser: w keeps growing and b keeps falling, and the loss falls only like 1/t
    assert np.all(np.diff(with_bias["w"][100:]) > 0) and np.all(np.diff(with_bias["b"][100:]) < 0)
    assert loss[3000] > 0.2 * loss[300] / 10


def test_train_bias_network_uses_the_network_loss():
    hist = sg.train_bias_network(0.4, -0.3, lr=0.5, steps=0)
    manual = 0.5 * (0.5 * A(-0.3) ** 2 + 0.5 * (A(0.1) - 1.0) ** 2)
    assert hist["loss"][0] == pytest.approx(manual, rel=1e-14)


@settings(max_examples=30, deadline=None)
@given(weight, st.sampled_from([0.0, 1.0]), st.floats(0.05, 0.95))
def test_cross_entropy_exercise(w, x, y):
    """Exercise is-ex-cross-entropy: for the cross-entropy, dE/dw = (y_hat - y) x."""
    def ce(v):
        y_hat = A(v * x)
        return -(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat))
    fd = (ce(w + H) - ce(w - H)) / (2 * H)
    assert fd == pytest.approx((A(w * x) - y) * x, abs=1e-8)


def test_two_weights_sign_steps_cycle_while_proportional_steps_converge():
    """The two-weight experiment: w, b with targets (0.2, 0.7); sign steps move on diagonals."""
    targets = np.array([[0.2], [0.7]])

    def grad(theta):
        _, dW, db = sg.bias_network(*theta).loss_and_gradients(sg.X_BOTH, targets)
        return np.array([dW[0][0, 0], db[0][0]])

    minimum = np.array([logit(0.7) - logit(0.2), logit(0.2)])
    np.testing.assert_allclose(grad(minimum), 0.0, atol=1e-15)
    prop = sg.descend(grad, [0.0, 1.5], 8.0, 300)
    sign = sg.descend(grad, [0.0, 1.5], 0.1, 300, rule="sign")
    assert np.linalg.norm(prop[-1] - minimum) < 1e-4
    np.testing.assert_allclose(np.abs(np.diff(sign, axis=0)), 0.1, atol=1e-12)
    assert np.linalg.norm(sign[-1] - minimum) > 0.1
    np.testing.assert_allclose(sign[-1], sign[-3], atol=1e-12)


@pytest.mark.parametrize("w", [-3.0, -0.5, 0.0, 0.7, 2.0, 5.0])
def test_same_example_error_falls_unless_the_derivative_is_zero(w):
    """The chapter's corrected goal: a small step lowers the error on the example it was taken
    on when dE/dw != 0 (x = 1); on x = 0, dE/dw = 0 and the error stays at 1/8 exactly."""
    mu = 0.5
    assert isg.dE_dw(w, 1.0, 1.0) != 0
    assert sg.error(isg.update(w, 1.0, 1.0, mu), 1.0) < sg.error(w, 1.0)
    assert isg.dE_dw(w, 0.0, 0.0) == 0
    assert isg.update(w, 0.0, 0.0, mu) == w
    assert sg.error(isg.update(w, 0.0, 0.0, mu), 0.0) == sg.error(w, 0.0) == 0.125


def test_two_weight_sign_rule_cycles_037_away_on_one_side_of_the_minimum():
    """The sign rule's end: a two-point cycle (1.9, -1.2) <-> (2.0, -1.1), both about 0.37 from
    the minimum and on the same side; the gradient's two signs agree at each point and flip
    between them, while the way to the minimum needs opposite signs. More steps change nothing."""
    targets = np.array([[0.2], [0.7]])

    def grad(theta):
        _, dW, db = sg.bias_network(*theta).loss_and_gradients(sg.X_BOTH, targets)
        return np.array([dW[0][0, 0], db[0][0]])

    minimum = np.array([logit(0.7) - logit(0.2), logit(0.2)])
    for steps in (300, 3000):
        sign = sg.descend(grad, [0.0, 1.5], 0.1, steps, rule="sign")
        cycle = sorted(map(tuple, sign[-2:]))
        np.testing.assert_allclose(cycle, [(1.9, -1.2), (2.0, -1.1)], atol=1e-9)
        np.testing.assert_allclose(sign[-1], sign[-3], atol=1e-12)
        distances = np.linalg.norm(sign[-2:] - minimum, axis=1)
        assert np.all((0.36 < distances) & (distances < 0.39)), distances
    signs = [np.sign(grad(np.array(p))) for p in cycle]
    assert signs[0][0] == signs[0][1] == -signs[1][0] == -signs[1][1]
    towards = minimum - np.mean(cycle, axis=0)
    assert np.sign(towards[0]) == -np.sign(towards[1])


def test_exercise_one_step_by_hand():
    """is-ex-one-step: w = 0, x = y = 1, mu = 1 gives 0.5, 0.125, -0.125, w = 0.125, E = 0.1099."""
    y_hat = isg.T_hat(0.0, 1.0)
    assert y_hat == 0.5 and isg.E(y_hat, 1.0) == 0.125
    assert isg.dE_dw(0.0, 1.0, 1.0) == -0.125
    w = isg.update(0.0, 1.0, 1.0, 1.0)
    assert w == 0.125
    assert round(float(isg.T_hat(w, 1.0)), 4) == 0.5312
    after = float(isg.E(isg.T_hat(w, 1.0), 1.0))
    assert round(after, 4) == 0.1099 and after < 0.125
    assert round(0.5 * (0.5312 - 1) ** 2, 4) == 0.1099          # from the rounded output
    from pathlib import Path

    text = " ".join((Path(__file__).resolve().parents[1] / "book" / "identity_sigmoid.md")
                    .read_text().split())
    for quoted in ("= -0.125$", "$w = 0 - 1\\cdot(-0.125) = 0.125$",
                   "$E = \\frac12(0.5312 - 1)^2 = 0.1099$"):
        assert quoted in text, quoted
