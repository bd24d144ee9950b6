"""Every correction in book/errata.md and every bridge in book/notation.md, checked numerically.

Each test is named after the erratum it checks (E000-2 is the second slip listed for
``000_4a3fe56ce2bc8b6e.txt``, and so on). Derivatives are compared with central finite
differences and, where the package has the quantity, with ``course_pkg``; a slip of wording is
checked through the mathematics it gets wrong, and a typing slip by checking that the book does
not repeat it. ``test_every_erratum_names_a_test_that_exists`` reads book/errata.md and fails on
an entry that names no test of this module.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import course_pkg as cp
from course_pkg import identity_sigmoid as s000
from course_pkg import node_delta as s003
from course_pkg import tanh_two_layer as s001
from course_pkg.activations import sigmoid, sigmoid_prime, softmax
from course_pkg.gradcheck import central_differences

RNG = np.random.default_rng(20260123)
BOOK = Path(__file__).resolve().parent.parent / "book"



def close(a: np.ndarray, b: np.ndarray, tol: float = 1e-7) -> bool:
    return bool(np.allclose(a, b, rtol=tol, atol=tol))


# --- 000_4a3fe56ce2bc8b6e.txt: one weight, identity target --------------------------------

def test_E000_1_weight_leaves_the_unit_interval() -> None:
    """w is declared in [0, 1], but on x = 1 the error falls for every w: descent leaves [0,1]."""
    ws = np.linspace(-5.0, 20.0, 101)
    assert np.all(s000.dE_dw(ws, 1.0, 1.0) < 0)
    path = s000.train(w0=0.5, mu=2.0, steps=200, xs=(1.0,))
    assert path[-1] > 1.0 and np.all(np.diff(path) > 0)


def test_E000_2_the_stated_goal_compares_two_examples() -> None:
    """E(y_hat_i, y_i) > E(y_hat_{i+1}, y_{i+1}) can fail after a correct step, because the two
    errors belong to different examples; the error on the *same* example does decrease."""
    w_i, mu = 2.0, 0.5
    w_next = s000.update(w_i, 1.0, 1.0, mu)  # step on example x_i = 1
    err_i = s000.E(s000.T_hat(w_i, 1.0), 1.0)
    err_next_example = s000.E(s000.T_hat(w_next, 0.0), 0.0)  # x_{i+1} = 0
    assert err_next_example > err_i  # the seed's inequality fails
    assert s000.E(s000.T_hat(w_next, 1.0), 1.0) < err_i  # same example: it holds
    # on x_i = 0 the derivative is 0: the step changes neither w nor the error on that example
    w_after_zero = s000.update(w_i, 0.0, 0.0, mu)
    assert w_after_zero == w_i
    assert s000.E(s000.T_hat(w_after_zero, 0.0), 0.0) == s000.E(s000.T_hat(w_i, 0.0), 0.0) == 0.125


def test_E000_3_no_bias_pins_the_output_at_zero() -> None:
    """With no bias, y_hat(0) = A(0) = 1/2 for every w, so E >= 1/8 on x = 0."""
    ws = np.linspace(-10, 10, 21)
    assert np.allclose(s000.T_hat(ws, 0.0), 0.5)
    assert np.allclose(s000.E(s000.T_hat(ws, 0.0), 0.0), 0.125)
    assert np.all(s000.dE_dw(ws, 0.0, 0.0) == 0)


def test_E000_4_unit_steepest_descent_direction_is_normalised() -> None:
    """Under ||v|| = 1 the directional derivative grad.v is least at v = -grad/||grad||."""
    grad = np.array([3.0, -4.0])  # length 5
    angles = np.linspace(0, 2 * np.pi, 36001)
    v = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    best = v[np.argmin(v @ grad)]
    assert close(best, -grad / np.linalg.norm(grad), 1e-3)
    assert np.linalg.norm(-grad) != 1.0  # -grad itself is not a unit vector


def test_E000_5_directional_derivative_uses_partial_derivatives() -> None:
    """lim (f(x + h v) - f(x)) / h = sum_i v_i df/dx_i (x), with partial derivatives."""
    def f(p: np.ndarray) -> float:
        return float(np.exp(p[0]) * np.sin(p[1]) + p[0] * p[1] ** 2)

    x, v = np.array([0.3, -0.7]), np.array([0.8, 0.6])
    partials = central_differences(f, x)
    exact = np.array([np.exp(x[0]) * np.sin(x[1]) + x[1] ** 2,
                      np.exp(x[0]) * np.cos(x[1]) + 2 * x[0] * x[1]])
    assert close(partials, exact)
    quotients = [(f(x + h * v) - f(x)) / h for h in (1e-3, 1e-4, 1e-5)]
    gaps = [abs(q - v @ exact) for q in quotients]
    assert gaps[2] < gaps[1] < gaps[0] and gaps[2] < 1e-4


def test_E000_6_the_answer_and_the_comment_take_the_same_step() -> None:
    """The answer's w - mu dE/dw is the comment's x - t grad f(x) with f = E and t = mu, and
    the package's train_step with lr = mu (the definitions' alpha) takes the same step."""
    for w, x, mu in [(0.4, 1.0, 0.5), (-1.0, 1.0, 2.0), (1.5, 0.0, 0.1)]:
        def f(v: np.ndarray, x: float = x) -> float:
            return float(s000.E(s000.T_hat(v[0], x), x))

        comment = w - mu * central_differences(f, np.array([w]))[0]
        answer = s000.update(w, x, x, mu)
        net = cp.Network([1, 1], activations=["sigmoid"], loss="half_squared_error",
                         weights=[np.array([[w]])], biases=[np.zeros(1)])
        net.train_step(np.array([[x]]), np.array([[x]]), lr=mu)
        assert np.isclose(answer, comment, atol=1e-9)
        assert np.isclose(net.weights[0][0, 0], answer, atol=1e-12)


def test_E000_7_the_old_weight_is_decreased_into_the_new_one() -> None:
    """With dE/dw(w_i) > 0 the update lowers w_i; the lowered value is w_{i+1}."""
    w_i, y = 1.0, 0.2                        # target below A(1) = 0.73: derivative > 0
    assert s000.dE_dw(w_i, 1.0, y) > 0
    w_next = s000.update(w_i, 1.0, y, 0.5)
    assert w_next < w_i
    assert w_next == pytest.approx(w_i - 0.5 * s000.dE_dw(w_i, 1.0, y))


def test_E000_9_the_size_of_the_step_matters() -> None:
    """Target 0.8 on x = 1 (minimiser ln 4): fixed-size sign steps end in a two-point cycle on
    both sides of w*; proportional steps converge for mu = 10, not for mu = 100 > 2/E''(w*)."""
    from course_pkg.widgets import sigmoid as sg

    def grad(w: np.ndarray) -> np.ndarray:
        return s000.dE_dw(w, 1.0, 0.8)

    w_star = np.log(4.0)
    assert abs(grad(w_star)) < 1e-15
    second = (0.8 * 0.2) ** 2                                    # E''(w*) = (A(1 - A))^2
    assert central_differences(lambda v: float(grad(v[0])), np.array([w_star]))[0] \
        == pytest.approx(second, rel=1e-6)
    sign = sg.descend(grad, 0.0, 10.0 * abs(grad(0.0)), 60, rule="sign")
    assert sign[-1] == sign[-3] and sign[-2] == sign[-4]         # a two-point cycle
    assert min(sign[-2:]) < w_star < max(sign[-2:])              # hopping over w*
    assert np.abs(sign[-2:] - w_star).min() > 0.1
    assert abs(sg.descend(grad, 0.0, 10.0, 400)[-1] - w_star) < 1e-9
    assert 2 / second < 100
    assert np.abs(sg.descend(grad, 0.0, 100.0, 400)[-50:] - w_star).min() > 0.1


def test_E000_10_T_hat_is_a_function_of_w_too() -> None:
    """d T_hat(x; w)/dw = x A(wx)(1 - A(wx)), and A's own variable is s = wx."""
    for w, x in [(0.3, 1.0), (-1.5, 1.0), (0.8, 0.0), (2.0, -0.5)]:
        fd = central_differences(lambda v, x=x: float(s000.T_hat(v[0], x)), np.array([w]))[0]
        s = w * x
        assert np.isclose(fd, x * s000.A(s) * (1 - s000.A(s)), atol=1e-9)
        assert s000.T_hat(w, x) == s000.A(s)


def test_E000_11_the_index_numbers_iterations_not_components() -> None:
    """dE/dw_i is the derivative in the one weight, evaluated at its value w_i of iteration i."""
    xs = (1.0, 0.0, 1.0, 1.0)
    path = s000.train(w0=0.5, mu=2.0, steps=len(xs), xs=xs)
    h = 1e-6
    for i, x in enumerate(xs):
        w_i, y = path[i], x                  # identity target
        def error(w: float, x: float = x, y: float = y) -> float:
            return float(s000.E(s000.T_hat(w, x), y))
        slope = (error(w_i + h) - error(w_i - h)) / (2 * h)
        A = 1 / (1 + np.exp(-w_i * x))
        formula = (A - y) * x * A * (1 - A)  # errata-derivative-at-wi
        assert slope == pytest.approx(formula, abs=1e-9)
        assert float(s000.dE_dw(w_i, x, y)) == pytest.approx(formula, abs=1e-15)
        assert path[i + 1] == pytest.approx(w_i - 2.0 * formula, abs=1e-15)


def test_C000_eq2_sign_of_the_target_term_is_right() -> None:
    """Checked, not a slip: dE/dy = -(y_hat - y), the sign eq. (2) writes; the term is 0."""
    for y_hat, y in [(0.8, 1.0), (0.3, 0.0), (0.5, 0.9)]:
        dE_dy = central_differences(lambda t, o=y_hat: float(s000.E(o, t[0])), np.array([y]))[0]
        assert np.isclose(dE_dy, -(y_hat - y), atol=1e-8)


def test_C000_eq6_by_finite_differences() -> None:
    for w, x in [(0.3, 1.0), (-1.2, 1.0), (2.0, 0.0)]:
        fd = central_differences(lambda v, x=x: float(s000.E(s000.T_hat(v[0], x), x)),
                              np.array([w]))
        assert np.isclose(s000.dE_dw(w, x, x), fd[0], atol=1e-9)


# --- 001_ce18104b0c2237dd.txt: gradient descent, Bishop's two-layer tanh network ----------

def _tanh_net(D: int = 3, M: int = 4, K: int = 2):
    w1, w2 = RNG.normal(size=(M, D)), RNG.normal(size=(K, M)) / 2
    x, target = RNG.normal(size=D), RNG.normal(size=K)
    return w1, w2, x, target


def test_E001_1_first_order_taylor_is_an_approximation() -> None:
    """(2.1), (6.1)-(6.4) write '=': the remainder is second order, not zero."""
    def F(r: np.ndarray) -> float:
        return float(np.sin(r[0]) * np.exp(r[1]) + r[0] ** 2)

    r0, direction = np.array([0.4, -0.3]), np.array([0.6, 0.8])
    grad = central_differences(F, r0)
    remainder = [F(r0 + t * direction) - F(r0) - t * grad @ direction for t in (1e-2, 5e-3)]
    assert abs(remainder[0]) > 1e-6
    assert remainder[0] / remainder[1] == pytest.approx(4.0, rel=0.02)


def test_E001_1_small_learning_rate_is_relative_to_the_curvature() -> None:
    """The seed's 'small' eta = 2e-5 diverges when the curvature exceeds 1e5; eta = 0.5 is
    safe at curvature 1: what decides is eta < 2 / lambda_max, not eta alone."""
    def run(eta: float, lam: float, steps: int = 200) -> float:
        w = 1.0
        for _ in range(steps):
            w -= eta * lam * w                   # E = lam w^2 / 2, grad = lam w
        return abs(w)

    assert run(2e-5, 2e5) > 1e10                 # factor |1 - 4| = 3 per step
    assert run(2e-5, 0.9e5) < 1e-8               # just below the threshold 1e5
    assert run(0.5, 1.0) < 1e-50


def test_E001_1_fine_tuning_rates_barely_move_a_small_network() -> None:
    """2e-5 and 5e-5 are fine-tuning rates: on a small network trained from scratch, plain
    gradient descent at those rates leaves the loss almost where it was."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    start = cp.Network([3, 4, 2], ["tanh", "identity"], loss="half_squared_error", seed=0)
    initial = start.loss(X, Y)
    final = {}
    for eta in (2e-5, 5e-5, 0.1):
        net = start.copy()
        for _ in range(200):
            net.train_step(X, Y, lr=eta)
        final[eta] = net.loss(X, Y)
    assert abs(final[2e-5] - initial) < 0.01 * initial
    assert abs(final[5e-5] - initial) < 0.02 * initial
    assert final[0.1] < 0.8 * initial


def test_E001_2_eq58_is_half_the_sum_not_a_mean() -> None:
    y, y_hat = np.array([1.0, -2.0, 0.5, 3.0]), np.array([0.0, 0.0, 0.0, 0.0])
    E = s001.E(y, y_hat)
    assert E == pytest.approx(0.5 * np.sum((y - y_hat) ** 2))
    assert E != pytest.approx(np.mean((y - y_hat) ** 2))


def test_E001_3_eq512_is_511_substituted_into_510() -> None:
    w1, w2, x, target = _tanh_net()
    h, z, y = s001.forward(w1, w2, x)
    eq_510 = np.outer(s001.dE_dz(w2, y, target) * s001.f_prime_from_output(z), x)
    fd = central_differences(lambda v: s001.E(s001.forward(v, w2, x)[2], target), w1)
    assert close(s001.dE_dw1(w2, x, z, y, target), eq_510)
    assert close(eq_510, fd)
    fd_z = central_differences(lambda v: s001.E(w2 @ v, target), z)  # eq. (5.11)
    assert close(s001.dE_dz(w2, y, target), fd_z)


def test_E001_4_eq63_is_the_rearranged_taylor_formula() -> None:
    """001's (6.3): Delta f = f_x Delta x + f_y Delta y up to second order, with the partials
    at (x0, y0); 001's (5.3), which the seed cites instead, is the hidden forward pass."""
    def f(p: np.ndarray) -> float:
        return float(np.cos(p[0]) * p[1] + p[1] ** 3)

    p0, d = np.array([0.5, 0.8]), np.array([0.3, -0.4])
    f_x, f_y = central_differences(f, p0)
    rest = [f(p0 + t * d) - f(p0) - (f_x * t * d[0] + f_y * t * d[1]) for t in (1e-2, 5e-3)]
    assert rest[0] / rest[1] == pytest.approx(4.0, rel=0.02)
    w1, w2, x, _ = _tanh_net()
    h, z, _ = s001.forward(w1, w2, x)
    assert close(h, np.array([sum(w1[j, i] * x[i] for i in range(x.size))
                              for j in range(w1.shape[0])]))


def test_E001_5_eq64_is_a_dot_product_and_approximate() -> None:
    """Delta E ~ grad E . Delta w, with an error that shrinks faster than Delta w."""
    w1, w2, x, target = _tanh_net()
    _, g1, g2 = s001.gradients(w1, w2, x, target)
    d1, d2 = RNG.normal(size=w1.shape), RNG.normal(size=w2.shape)
    errors = []
    for t in (1e-2, 1e-3):
        actual = (s001.E(s001.forward(w1 + t * d1, w2 + t * d2, x)[2], target)
                  - s001.E(s001.forward(w1, w2, x)[2], target))
        predicted = np.sum(g1 * t * d1) + np.sum(g2 * t * d2)
        errors.append(abs(actual - predicted) / abs(predicted))
    assert errors[1] < errors[0] / 5 and errors[1] < 1e-2


def test_E001_6_bishops_unit_at_one_carries_the_biases() -> None:
    """The seed's network on (x_0 = 1, x) with a unit z_0 = 1 is Network with biases."""
    w1, w2, x, target = _tanh_net()
    b1, b2 = RNG.normal(size=w1.shape[0]), RNG.normal(size=w2.shape[0])
    w1_aug = np.column_stack([b1, w1])              # weights from x_0 = 1
    w2_aug = np.column_stack([b2, w2])              # weights from z_0 = 1
    h = w1_aug @ np.concatenate([[1.0], x])
    y = w2_aug @ np.concatenate([[1.0], np.tanh(h)])
    net = cp.Network([x.size, w1.shape[0], w2.shape[0]], activations=["tanh", "identity"],
                     loss="half_squared_error", weights=[w1, w2], biases=[b1, b2])
    assert close(net.predict(x[None, :])[0], y)
    _, y_no_bias = s001.forward(w1, w2, x)[1:]
    assert not close(y_no_bias, y)                  # dropping the unit changes the network


def test_C001_eq57_tanh_derivative() -> None:
    h = np.linspace(-3, 3, 13)
    fd = central_differences(lambda v: float(np.sum(np.tanh(v))), h)
    assert close(fd, s001.f_prime_from_output(np.tanh(h)))


# --- 002_ff83eee082f91d18.txt: the matrix-form theorem ------------------------------------

def test_E002_1_output_layer_needs_its_own_S_L() -> None:
    """D_l is defined for l <= L-1 only; S_L may be softmax, whose Jacobian is not diagonal."""
    z = RNG.normal(size=(4, 1))
    jacobian = np.stack([central_differences(lambda v, k=k: float(softmax(v, np)[k, 0]), z)[:, 0]
                         for k in range(4)])
    off_diagonal = jacobian - np.diag(np.diag(jacobian))
    assert np.abs(off_diagonal).max() > 1e-3
    g = softmax(z, np)[:, 0]
    assert close(jacobian, np.diag(g) - np.outer(g, g))


def test_E002_2_regression_output_delta() -> None:
    """delta_L = S_L'(z_L) * 2(g - y) for a componentwise output S_L and ||y - g||^2."""
    z_L, y = RNG.normal(size=3), RNG.normal(size=3)
    fd = central_differences(lambda v: float(np.sum((y - sigmoid(v, np)) ** 2)), z_L)
    assert close(sigmoid_prime(z_L, np) * 2 * (sigmoid(z_L, np) - y), fd)
    net = cp.Network([2, 3, 3], activations=["tanh", "sigmoid"], loss="squared_error", seed=1)
    X, Y = RNG.normal(size=(5, 2)), RNG.normal(size=(5, 3))
    assert cp.gradient_check(net, X, Y) < 1e-6


def test_E002_3_softmax_delta_with_one_based_components() -> None:
    """delta_{L,k} = g_k - 1{y = k-1} (components 1..p_L, classes 0..p_L-1) = g - e_y."""
    p_L, y = 5, 2
    z = RNG.normal(size=p_L)

    def C(v: np.ndarray) -> float:  # -z_{y+1} + ln sum_j exp(z_j), 1-based y+1 = 0-based y
        return float(-v[y] + np.log(np.sum(np.exp(v))))

    g = softmax(z[:, None], np)[:, 0]
    seed_form = np.array([g[k - 1] - (y == k - 1) for k in range(1, p_L + 1)])
    package = cp.losses.softmax_cross_entropy_delta(g[:, None], np.array([y]), np)[:, 0]
    assert close(central_differences(C, z), seed_form)
    assert close(seed_form, package)


def test_E002_4_linear_map_derivative_in_denominator_layout() -> None:
    """dC/da_{l-1} = W_l^T delta_l: the seed's 'derivative of z -> Wz is W^T'."""
    W, b, a, y = RNG.normal(size=(3, 4)), RNG.normal(size=3), RNG.normal(size=4), RNG.normal(size=3)
    delta = sigmoid_prime(W @ a + b, np) * 2 * (sigmoid(W @ a + b, np) - y)
    fd = central_differences(lambda v: float(np.sum((sigmoid(W @ v + b, np) - y) ** 2)), a)
    assert close(W.T @ delta, fd)


def test_E002_5_cross_entropy_is_a_function_of_the_label() -> None:
    """Loss(y, g) = -ln g_{y+1} (1-based) = -z_{y+1} + ln sum exp(z): a function of the label."""
    z = RNG.normal(size=(4, 3))
    labels = np.array([0, 3, 2])
    costs = cp.losses.cross_entropy(z, labels, np)
    g = softmax(z, np)
    for i, y in enumerate(labels):
        one_based = y + 1
        assert np.isclose(costs[i], -np.log(g[one_based - 1, i]))
        assert np.isclose(costs[i], -z[y, i] + np.log(np.sum(np.exp(z[:, i]))))


def test_E002_6_each_layer_uses_its_own_derivative() -> None:
    """tanh hidden layer, sigmoid output: delta_1 = tanh'(z_1) * W_2^T delta_2 is right, and the
    output's S' in its place is wrong."""
    net = cp.Network([3, 4, 2], activations=["tanh", "sigmoid"], loss="half_squared_error",
                     seed=5)
    x, y = RNG.normal(size=3), RNG.normal(size=2)
    W1, W2 = net.weights
    b1, b2 = net.biases
    z1 = W1 @ x + b1
    z2 = W2 @ np.tanh(z1) + b2
    delta_2 = sigmoid_prime(z2, np) * (sigmoid(z2, np) - y)
    fd = central_differences(
        lambda v: float(0.5 * np.sum((sigmoid(W2 @ np.tanh(v) + b2, np) - y) ** 2)), z1)
    own = (1 - np.tanh(z1) ** 2) * (W2.T @ delta_2)
    other = sigmoid_prime(z1, np) * (W2.T @ delta_2)
    assert close(own, fd)
    assert not close(other, fd, 1e-3)


def test_E002_7_the_dummy_delta_0_changes_nothing() -> None:
    """Seed 002's Algorithm 1 run literally to l = 1 (z_0 = 0, any S_0'): the gradients do not
    depend on delta_0, and equal the package's, which stops at delta_1."""
    net = cp.Network([3, 4, 2], activations=["tanh", "sigmoid"], loss="squared_error", seed=6)
    x, y = RNG.normal(size=(3, 1)), RNG.normal(size=(2, 1))
    z, a = net.forward(x.T)
    delta_L = sigmoid_prime(z[2], np) * 2 * (a[2] - y)

    def literal(S0_prime) -> list[np.ndarray]:
        zz, delta, grads = dict(z), {2: delta_L}, []
        zz[0] = np.zeros((3, 1))                                    # line 6
        primes = {0: S0_prime, 1: lambda v: 1 - np.tanh(v) ** 2}
        for l in (2, 1):                                            # line 7
            grads += [delta[l], delta[l] @ a[l - 1].T]              # lines 8, 9
            delta[l - 1] = primes[l - 1](zz[l - 1]) * (net.W[l].T @ delta[l])  # line 10
        return grads

    first, second = literal(lambda v: np.ones_like(v)), literal(lambda v: 7.0 + v)
    assert all(close(u, v) for u, v in zip(first, second, strict=True))
    dW, db, delta = cp.back_propagate(net.W, z, a, delta_L, net.S_prime)
    assert 0 not in delta
    assert close(first[0], delta[2]) and close(first[1], dW[2])
    assert close(first[2], delta[1]) and close(first[3], dW[1])


def test_E002_8_weight_gradient_entry_by_entry() -> None:
    """dC/d(W_l)_ij = delta_{l,i} a_{l-1,j}, one entry at a time by finite differences."""
    W, b, a = RNG.normal(size=(3, 4)), RNG.normal(size=3), RNG.normal(size=4)
    y = RNG.normal(size=3)

    def C(v: np.ndarray) -> float:
        return float(np.sum((sigmoid(v @ a + b, np) - y) ** 2))

    z = W @ a + b
    delta = sigmoid_prime(z, np) * 2 * (sigmoid(z, np) - y)
    fd = central_differences(C, W)
    for i in range(3):
        for j in range(4):
            assert np.isclose(fd[i, j], delta[i] * a[j], atol=1e-8)
    assert close(fd, np.outer(delta, a))


def test_E002_9_algorithm_2_returns_the_gradient_of_the_training_loss() -> None:
    """(1/n) sum_i dC_i/dW_l is d ell_tau/dW_l (the mean loss), not the gradient of one C_i."""
    net = cp.Network([2, 3, 1], activations=["tanh", "identity"], loss="squared_error", seed=7)
    X, Y = RNG.normal(size=(5, 2)), RNG.normal(size=(5, 1))
    per_example = [net.loss_and_gradients(X[i:i + 1], Y[i:i + 1])[1][0] for i in range(5)]
    average = np.mean(per_example, axis=0)
    W1 = net.weights[0].copy()

    def ell(v: np.ndarray) -> float:
        net.weights[0][...] = v
        try:
            return float(net.loss(X, Y))
        finally:
            net.weights[0][...] = W1

    assert close(average, central_differences(ell, W1))
    assert not any(close(average, g, 1e-3) for g in per_example)


def test_E002_10_relu_meets_its_kink_on_a_zero_input() -> None:
    """A zero input with zero biases gives z_1 = 0 exactly; there the one-sided derivatives of
    C differ, and the gradient returned is the one of S'(0) = 0."""
    W1 = RNG.normal(size=(3, 2))
    net = cp.Network([2, 3, 1], activations=["relu", "identity"], loss="half_squared_error",
                     weights=[W1, np.array([[1.0, -2.0, 0.5]])], biases=[np.zeros(3), np.zeros(1)])
    x, y = np.zeros((1, 2)), np.array([[1.0]])
    z, _ = net.forward(x)
    assert np.all(z[1] == 0.0)                                   # exactly at the kink
    _, _, db = net.loss_and_gradients(x, y)

    def C(b0: float) -> float:
        net.biases[0][0] = b0
        try:
            return float(net.loss(x, y))
        finally:
            net.biases[0][0] = 0.0

    h = 1e-6
    right, left = (C(h) - C(0.0)) / h, (C(0.0) - C(-h)) / h
    assert abs(right - left) > 0.5                               # no derivative at b = 0
    assert db[0][0] == 0.0 == left                               # S'(0) = 0: the left one


def test_E002_11_softmax_is_shift_invariant_so_one_logit_can_be_zero() -> None:
    """softmax(z) = softmax(z - z_1); with z_1 = 0, g_k = e^{z_k} / (1 + sum_{j>=2} e^{z_j})."""
    z = RNG.normal(size=(5, 1))
    g = softmax(z, np)[:, 0]
    shifted = z - z[0]
    assert close(softmax(shifted, np)[:, 0], g)
    reduced = np.exp(shifted[1:, 0]) / (1 + np.sum(np.exp(shifted[1:, 0])))
    assert close(reduced, g[1:])
    assert np.isclose(1 - reduced.sum(), g[0])
    # the identity g_1 = 1 - sum g_k alone does not give the others: they need e^{z_1}
    assert not close(np.exp(z[1:, 0]) / np.sum(np.exp(z[1:, 0])), g[1:], 1e-3)


def test_E002_4_chain_rule_uses_the_transposed_jacobian() -> None:
    """Denominator layout: dC/dz = (dg/dz)(dC/dg) with dg/dz = J^T. An output g = M z with a
    non-symmetric M shows the difference: M^T dC/dg is right, M dC/dg is not."""
    M, z, y = RNG.normal(size=(3, 3)), RNG.normal(size=3), RNG.normal(size=3)
    assert not np.allclose(M, M.T)

    def C(v: np.ndarray) -> float:
        return float(np.sum((M @ v - y) ** 2))

    dC_dg = 2 * (M @ z - y)
    fd = central_differences(C, z)
    assert close(M.T @ dC_dg, fd)
    assert not close(M @ dC_dg, fd, 1e-3)


def test_C002_theorem_against_finite_differences() -> None:
    for activations, loss, Y in [
        (["sigmoid", "relu", "identity"], "squared_error", RNG.normal(size=(6, 2))),
        (["tanh", "tanh", "softmax"], "cross_entropy", RNG.integers(0, 2, size=6)),
    ]:
        net = cp.Network([3, 4, 3, 2], activations=activations, loss=loss, seed=3)
        assert cp.gradient_check(net, RNG.normal(size=(6, 3)), Y) < 1e-6


def test_C002_parameter_count() -> None:
    """dim(theta) = sum_l (p_{l-1} p_l + p_l)."""
    sizes = [5, 7, 3, 2]
    net = cp.Network(sizes, seed=0)
    counted = sum(w.size for w in net.weights) + sum(b.size for b in net.biases)
    formula = sum(sizes[l - 1] * sizes[l] + sizes[l] for l in range(1, len(sizes)))
    assert counted == formula == net.num_parameters == 5 * 7 + 7 + 7 * 3 + 3 + 3 * 2 + 2


# --- 003_00675a7c1b711b2c.txt: node notation, Delta = -dE/d(in) ---------------------------

def _node_net():
    """Three layers of nodes i -> j -> k; w[m][i, k] is the edge from node i to node k."""
    w = [RNG.normal(size=(3, 4)), RNG.normal(size=(4, 2))]
    x, t = RNG.normal(size=3), np.array([0.2, 0.9])
    return w, x, t


def _in_k(w: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    g, _ = s003.derivative("sigmoid")
    inp, _ = s003.forward(w, x, g)
    return inp[2]


def test_E003_3_4_5_partials_of_in_k() -> None:
    """d in_k/d w_jk = a_j, d in_k/d a_j = w_jk, d in_k/d in_j = w_jk g'(in_j)."""
    w, x, _ = _node_net()
    g, g_prime = s003.derivative("sigmoid")
    inp, a = s003.forward(w, x, g)
    j, k = 1, 0
    d_w = central_differences(lambda v: _in_k([w[0], v], x)[k], w[1])
    assert np.isclose(d_w[j, k], a[1][j])                      # a_j, not a_i
    assert np.allclose(np.delete(d_w, k, axis=1), 0)
    d_a = central_differences(lambda v: float(w[1][:, k] @ v), a[1])
    assert np.isclose(d_a[j], w[1][j, k])                       # w_jk, not w_ij
    d_in = central_differences(lambda v: float(w[1][:, k] @ g(v)), inp[1])
    assert np.isclose(d_in[j], w[1][j, k] * g_prime(inp[1][j]))  # w_jk g'(in_j)


def test_E003_6_sign_of_Delta_and_definition_of_E_n() -> None:
    """dE_n/d in_j = -Delta_j at hidden and output nodes, for E_n = 1/2 sum (t_k - a_k)^2."""
    w, x, t = _node_net()
    g, g_prime = s003.derivative("sigmoid")
    inp, a = s003.forward(w, x, g)
    Delta = s003.error_signals(w, inp, a, t, g_prime)

    def E_from_hidden_inputs(in_j: np.ndarray) -> float:
        return 0.5 * float(np.sum((t - g(w[1].T @ g(in_j))) ** 2))

    def E_from_output_inputs(in_k: np.ndarray, half: float = 0.5) -> float:
        return half * float(np.sum((t - g(in_k)) ** 2))

    assert close(central_differences(E_from_hidden_inputs, inp[1]), -Delta[1])
    assert close(central_differences(E_from_output_inputs, inp[2]), -Delta[2])
    no_half = central_differences(lambda v: E_from_output_inputs(v, 1.0), inp[2])
    assert close(no_half, -2 * Delta[2])  # without the 1/2, Delta_k would be off by 2


def test_E003_1_the_update_adds_the_negative_gradient() -> None:
    """a_i Delta_k = -dE_n/dw_ik: the rule w <- w + eta a_i Delta_k is gradient descent."""
    w, x, t = _node_net()
    eta = 0.1
    new = s003.update(w, x, t, eta)
    for m in range(2):
        def E_of(v: np.ndarray, m: int = m) -> float:
            ws = [v if n == m else w[n] for n in range(2)]
            return s003.error(ws, x, t)

        assert close((new[m] - w[m]) / eta, -central_differences(E_of, w[m]))


def _error_from_layer(w: list[np.ndarray], m: int, in_m: np.ndarray, t: np.ndarray) -> float:
    """E_n as a function of the inputs of layer m (the layers above recomputed)."""
    g, _ = s003.derivative("sigmoid")
    _, a = s003.forward(w[m:], g(in_m), g)
    return 0.5 * float(np.sum((t - a[-1]) ** 2))


def test_E003_2_the_hidden_signal_belongs_to_node_j() -> None:
    """003's (1) gives one signal per hidden node j, Delta_j = g'(in_j) sum_k w_jk Delta_k,
    and it is -dE_n/d in_j."""
    w, x, t = _node_net()
    g, g_prime = s003.derivative("sigmoid")
    inp, a = s003.forward(w, x, g)
    Delta = s003.error_signals(w, inp, a, t, g_prime)
    assert Delta[1].shape == (w[0].shape[1],)                   # one per hidden node j
    by_eq1 = np.array([g_prime(inp[1][j]) * sum(w[1][j, k] * Delta[2][k] for k in range(2))
                       for j in range(4)])
    assert close(Delta[1], by_eq1)
    assert close(Delta[1], -central_differences(lambda v: _error_from_layer(w, 1, v, t), inp[1]))


def test_E003_7_the_derivatives_are_partial() -> None:
    """d in_j/d w_ij = a_i and -dE_n/d w_ij = a_i Delta_j, moving one weight at a time."""
    w, x, t = _node_net()
    g, g_prime = s003.derivative("sigmoid")
    inp, a = s003.forward(w, x, g)
    Delta = s003.error_signals(w, inp, a, t, g_prime)
    h = 1e-6
    for i in range(3):
        for j in range(4):
            bump = np.zeros_like(w[0])
            bump[i, j] = h
            in_plus = s003.forward([w[0] + bump, w[1]], x, g)[0][1]
            in_minus = s003.forward([w[0] - bump, w[1]], x, g)[0][1]
            d_in = (in_plus - in_minus) / (2 * h)
            assert np.isclose(d_in[j], a[0][i]) and np.allclose(np.delete(d_in, j), 0)
            d_E = (s003.error([w[0] + bump, w[1]], x, t)
                   - s003.error([w[0] - bump, w[1]], x, t)) / (2 * h)
            assert np.isclose(-d_E, a[0][i] * Delta[1][j], atol=1e-8)


def test_E003_8_chain_rule_through_inner_functions() -> None:
    """d/du f(x(u), y(u)) = f_x x'(u) + f_y y'(u), the partials taken at (x(u), y(u))."""
    def f(p: np.ndarray) -> float:
        return float(p[0] ** 2 * p[1] + np.sin(p[1]))

    def inner(u: float) -> np.ndarray:
        return np.array([np.exp(u), u ** 3])

    u = 0.6
    f_x, f_y = central_differences(f, inner(u))
    rhs = f_x * np.exp(u) + f_y * 3 * u ** 2
    lhs = central_differences(lambda v: f(inner(v[0])), np.array([u]))[0]
    assert np.isclose(lhs, rhs, atol=1e-7)


def test_E003_9_the_induction_runs_from_the_output_down() -> None:
    """On a 3-4-3-2 network: Delta = -dE_n/d in at the output (base case) and, by the step,
    at each layer below it."""
    rng = np.random.default_rng(9)
    w = [rng.normal(size=(3, 4)), rng.normal(size=(4, 3)), rng.normal(size=(3, 2))]
    x, t = rng.normal(size=3), np.array([0.1, 0.7])
    g, g_prime = s003.derivative("sigmoid")
    inp, a = s003.forward(w, x, g)
    Delta = s003.error_signals(w, inp, a, t, g_prime)
    for m in (3, 2, 1):
        fd = central_differences(lambda v, m=m: _error_from_layer(w, m, v, t), inp[m])
        assert close(Delta[m], -fd)


def test_E003_10_hidden_signals_come_from_node_signals() -> None:
    """Step 2 propagates the nodes' Delta_k weighted by w_jk, not the weights' a_j Delta_k."""
    w, x, t = _node_net()
    g, g_prime = s003.derivative("sigmoid")
    inp, a = s003.forward(w, x, g)
    Delta = s003.error_signals(w, inp, a, t, g_prime)
    truth = -central_differences(lambda v: _error_from_layer(w, 1, v, t), inp[1])
    from_nodes = g_prime(inp[1]) * (w[1] @ Delta[2])
    weight_errors = np.outer(a[1], Delta[2])                     # a_j Delta_k per edge
    from_weights = g_prime(inp[1]) * np.sum(w[1] * weight_errors, axis=1)
    assert close(from_nodes, truth)
    assert not close(from_weights, truth, 1e-3)


def test_E003_13_a_constant_node_carries_the_biases() -> None:
    """A node with a_0 = 1: its weights w_0k are biases, and the rule moves them by eta Delta_k,
    which is the gradient step of Network's biases."""
    w, x, t = _node_net()
    b1, b2 = RNG.normal(size=4), RNG.normal(size=2)
    # input layer: (1, x); hidden layer: a constant node too, appended as a fifth node
    w_aug = [np.column_stack([np.vstack([b1, w[0]]), np.zeros(4)]),  # -> 4 hidden + 1 const
             np.vstack([w[1], b2])]
    g, _ = s003.derivative("sigmoid")

    def forward_aug(ws: list[np.ndarray]) -> np.ndarray:
        hidden = g(ws[0].T @ np.concatenate([[1.0], x]))[:4]
        return g(ws[1].T @ np.concatenate([hidden, [1.0]]))

    net = cp.Network([3, 4, 2], activations=["sigmoid", "sigmoid"], loss="half_squared_error",
                     weights=[w[0].T, w[1].T], biases=[b1, b2])
    assert close(forward_aug(w_aug), net.predict(x[None, :])[0])
    _, _, db = net.loss_and_gradients(x[None, :], t[None, :])

    def E_of_b2(v: np.ndarray) -> float:
        return 0.5 * float(np.sum((t - forward_aug([w_aug[0], np.vstack([w[1], v])])) ** 2))

    assert close(central_differences(E_of_b2, b2), db[1])   # w_0k moves like a bias
    a_out = forward_aug(w_aug)
    Delta_k = a_out * (1 - a_out) * (t - a_out)              # g'(in_k)(t_k - a_k), sigmoid
    assert close(Delta_k, -db[1])                            # the step eta * 1 * Delta_k


def test_E003_12_zero_weights_are_a_saddle_that_descent_never_leaves() -> None:
    """tanh nodes, all weights 0: every a_i Delta_k is 0, so the rule never moves, yet E_n is
    not at a minimum (it falls along one direction and rises along another)."""
    w = [np.zeros((2, 3)), np.zeros((3, 1))]
    x, t = np.array([1.0, -0.5]), np.array([0.6])
    w_next = w
    for _ in range(50):
        w_next = s003.update(w_next, x, t, eta=0.5, activation="tanh")
    assert all(np.array_equal(u, v) for u, v in zip(w_next, w, strict=True))
    e0 = s003.error(w, x, t, "tanh")
    u, v = np.outer(x, np.ones(3)), np.ones((3, 1))
    eps = 0.1
    down = s003.error([eps * u, eps * v], x, t, "tanh")
    up = s003.error([eps * u, -eps * v], x, t, "tanh")
    assert down < e0 < up                                        # a saddle, not a minimum


def test_E003_12_a_fixed_step_can_oscillate_or_diverge() -> None:
    """One identity node, E_n = 1/2 (t - w x)^2: the step multiplies w - w* by 1 - eta x^2, so
    eta x^2 = 2 oscillates between two points and eta x^2 > 2 diverges."""
    x, t = np.array([2.0]), np.array([1.0])
    w_star = 0.5

    def run(eta: float, steps: int = 40) -> np.ndarray:
        path, w = [], [np.array([[0.0]])]
        for _ in range(steps):
            w = s003.update(w, x, t, eta, activation="identity")
            path.append(w[0][0, 0])
        return np.array(path)

    assert abs(run(0.2)[-1] - w_star) < 1e-9                     # eta x^2 = 0.8: converges
    cycle = run(0.5)                                             # eta x^2 = 2
    assert sorted(cycle[-2:]) == pytest.approx([w_star - 0.5, w_star + 0.5])
    assert abs(run(0.6)[-1] - w_star) > 1e3                      # eta x^2 = 2.4: diverges


def test_E003_12_per_example_steps_are_stochastic_descent() -> None:
    """The rule steps along -grad E_n of one example: a step can raise the total sum_n E_n,
    while the mean of the per-example steps is a step along -grad of the total."""
    rng = np.random.default_rng(12)
    w = [rng.normal(size=(2, 3)), rng.normal(size=(3, 1))]
    xs = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0])]
    ts = [np.array([0.9]), np.array([0.9]), np.array([0.05])]

    def total(ws: list[np.ndarray]) -> float:
        return sum(s003.error(ws, x, t) for x, t in zip(xs, ts, strict=True))

    eta = 2.0
    steps = [s003.update(w, x, t, eta) for x, t in zip(xs, ts, strict=True)]
    assert max(total(s) for s in steps) > total(w)               # one example's step raises it
    mean_step = [np.mean([s[m] - w[m] for s in steps], axis=0) for m in range(2)]
    for m in range(2):
        grad = central_differences(
            lambda v, m=m: total([v if n == m else w[n] for n in range(2)]), w[m])
        assert close(mean_step[m], -eta / len(xs) * grad)


def test_typing_slips_are_not_repeated_in_the_book() -> None:
    """E000-8 and E003-11: the book spells what the seeds mistype (the errata quote them)."""
    slips = ["aount", "amount f change", "funational"]
    for page in sorted(BOOK.glob("*.md")):
        if page.name == "errata.md":
            continue
        text = page.read_text().lower()
        assert not [s for s in slips if s in text], page.name
    errata = (BOOK / "errata.md").read_text()
    assert all(s in errata for s in slips)


def test_back_propagation_is_spelt_one_way() -> None:
    """The book writes "back-propagation" (and back-propagate, -d, -s) in its prose, headings
    and title; code (cells, inline code, labels) is not prose."""
    other = re.compile(r"\bback ?propagat\w*|\bbackprop\b", re.IGNORECASE)
    for page in sorted(BOOK.glob("*.md")):
        prose = re.sub(r"```.*?```", " ", page.read_text(), flags=re.DOTALL)
        prose = re.sub(r"`[^`\n]*`", " ", prose)                  # inline code and {roles}
        prose = re.sub(r"^:(label|name):.*$", " ", prose, flags=re.MULTILINE)
        assert other.findall(prose) == [], page.name
    config = (BOOK.parent / "_config.yml").read_text()
    assert 'title: "Back-propagation, derived"' in config and not other.search(config)


def test_every_erratum_names_a_test_that_exists() -> None:
    """Each entry of book/errata.md (E..., Checked) names at least one test of this module."""
    text = (BOOK / "errata.md").read_text()
    entries = re.split(r"\n(?=\*\*(?:E\d{3}-\d+[^*\n]* —|Checked))", text)[1:]
    entries = [e.split("\n\n## ")[0] for e in entries]
    labels = [re.match(r"\*\*([^*]*?)(?: —|:|\*\*)", e).group(1) for e in entries]
    assert len([lab for lab in labels if lab.startswith("E")]) >= 30
    here = set(globals())
    for label, entry in zip(labels, entries, strict=True):
        named = re.findall(r"`(test_\w+)`", entry)
        assert named, f"{label} names no test"
        assert all(n in here for n in named), f"{label}: {set(named) - here}"


def test_errata_entries_are_in_order() -> None:
    """Within each seed's section the entries run E00s-1, E00s-2, ... with no gap or swap."""
    text = (BOOK / "errata.md").read_text()
    headings = re.findall(r"^\*\*(E\d{3}-\d+(?:, E\d{3}-\d+)*) —", text, re.MULTILINE)
    by_seed: dict[str, list[int]] = {}
    for heading in headings:
        for label in heading.split(", "):
            seed, number = label[1:].split("-")
            by_seed.setdefault(seed, []).append(int(number))
    assert list(by_seed) == ["000", "001", "002", "003"]
    for seed, numbers in by_seed.items():
        assert numbers == list(range(1, len(numbers) + 1)), (seed, numbers)


# --- the notation bridge: the three small models are course_pkg.Network ------------------

def test_bridge_000_is_a_one_by_one_network() -> None:
    for w, x in [(0.4, 1.0), (-2.0, 1.0), (1.5, 0.0)]:
        net = cp.Network([1, 1], activations=["sigmoid"], loss="half_squared_error",
                         weights=[np.array([[w]])], biases=[np.zeros(1)])
        _, dW, _ = net.loss_and_gradients(np.array([[x]]), np.array([[x]]))
        assert np.isclose(dW[0][0, 0], s000.dE_dw(w, x, x))
        assert np.isclose(net.predict(np.array([[x]]))[0, 0], s000.T_hat(w, x))


def test_bridge_001_is_a_tanh_identity_network() -> None:
    """001's output y is Network's g, its target y_hat is Network's Y."""
    w1, w2, x, target = _tanh_net()
    net = cp.Network([3, 4, 2], activations=["tanh", "identity"], loss="half_squared_error",
                     weights=[w1, w2], biases=[np.zeros(4), np.zeros(2)])
    loss, dW, _ = net.loss_and_gradients(x[None, :], target[None, :])
    E, g1, g2 = s001.gradients(w1, w2, x, target)
    assert np.isclose(loss, E)
    assert close(dW[0], g1) and close(dW[1], g2)


def test_bridge_003_Delta_is_minus_delta_and_w_is_transposed() -> None:
    """003's w_ik is (W_l)_{ki}; its Delta_k is -delta_k of 002 (same E = C, one example)."""
    w, x, t = _node_net()
    net = cp.Network([3, 4, 2], activations=["sigmoid", "sigmoid"], loss="half_squared_error",
                     weights=[w[0].T, w[1].T], biases=[np.zeros(4), np.zeros(2)])
    z, a = net.forward(x[None, :])
    delta_L = (a[2] - t[:, None]) * sigmoid_prime(z[2], np)
    _, _, delta = cp.back_propagate(net.W, z, a, delta_L, net.S_prime)
    g, g_prime = s003.derivative("sigmoid")
    inp, acts = s003.forward(w, x, g)
    Delta = s003.error_signals(w, inp, acts, t, g_prime)
    for l in (1, 2):
        assert close(Delta[l], -delta[l][:, 0])
    _, dW, _ = net.loss_and_gradients(x[None, :], t[None, :])
    new = s003.update(w, x, t, eta=1.0)
    for m in range(2):
        assert close((new[m] - w[m]).T, -dW[m])
