"""Every correction in book/errata.md and every bridge in book/notation.md, checked numerically.

Each test is named after the erratum it checks (E000-2 is the second slip listed for
``000_4a3fe56ce2bc8b6e.txt``, and so on). Derivatives are compared with central finite
differences and, where the package has the quantity, with ``course_pkg``.
"""

from __future__ import annotations

import numpy as np
import pytest

import course_pkg as cp
from course_pkg import identity_sigmoid as s000
from course_pkg import node_delta as s003
from course_pkg import tanh_two_layer as s001
from course_pkg.activations import sigmoid, sigmoid_prime, softmax
from course_pkg.gradcheck import central_differences

RNG = np.random.default_rng(20260123)



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
