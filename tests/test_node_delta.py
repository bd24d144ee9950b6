"""Chapter 5 (book/node_delta.md): every formula, against finite differences and course_pkg.

The chapter follows ``003_00675a7c1b711b2c.txt``: in_k = sum_i w_ik a_i, a_k = g(in_k),
E_n = 1/2 sum_k (t_k - a_k)^2, Delta_k = g'(in_k)(t_k - a_k) at the outputs, eq. (1) at the
hidden nodes, the update w_ik <- w_ik + eta a_i Delta_k, the partials (nd-partials), the
theorem Delta_j = -dE_n/d in_j and -dE_n/dw_ij = a_i Delta_j, and the bridge Delta = -delta.
"""

from __future__ import annotations

import numpy as np
import pytest

import course_pkg as cp
from course_pkg import node_delta
from course_pkg.gradcheck import central_differences

H = 1e-6
CASES = [([3, 4, 3, 2], "sigmoid", 0), ([2, 5, 1], "tanh", 1), ([4, 3, 3, 3, 2], "sigmoid", 2),
         ([3, 2], "tanh", 3), ([2, 3, 4, 2, 3], "tanh", 4)]


def make_case(layout, seed):
    rng = np.random.default_rng(seed)
    w = [rng.normal(0, 1, size=(p, q)) for p, q in zip(layout, layout[1:], strict=False)]
    x = rng.normal(0, 1, size=layout[0])
    t = rng.uniform(0, 1, size=layout[-1])
    return w, x, t


def signals(w, x, t, activation):
    g, g_prime = node_delta.derivative(activation)
    inp, a = node_delta.forward(w, x, g)
    return g, g_prime, inp, a, node_delta.error_signals(w, inp, a, t, g_prime)


def error_from_layer(w, m, in_m, t, g):
    """E_n as a function of the inputs of layer m (the layers above recomputed)."""
    _, a = node_delta.forward(w[m:], g(in_m), g)
    return 0.5 * np.sum((t - a[-1]) ** 2)



@pytest.mark.parametrize("layout, activation, seed", CASES)
def test_forward_is_the_weighted_sum(layout, activation, seed):
    """(nd-forward): in_k = sum_i w_ik a_i and a_k = g(in_k), written as w[m]^T a[m]."""
    w, x, t = make_case(layout, seed)
    g, _, inp, a, _ = signals(w, x, t, activation)
    for m in range(1, len(layout)):
        np.testing.assert_allclose(inp[m], w[m - 1].T @ a[m - 1], rtol=1e-12)
        np.testing.assert_allclose(a[m], g(inp[m]), rtol=1e-12)


@pytest.mark.parametrize("layout, activation, seed", CASES)
def test_error_is_half_squared_error(layout, activation, seed):
    """(nd-error): node_delta.error is 1/2 sum (t_k - a_k)^2 and equals the package's loss."""
    w, x, t = make_case(layout, seed)
    _, _, _, a, _ = signals(w, x, t, activation)
    E = node_delta.error(w, x, t, activation)
    assert E == pytest.approx(0.5 * np.sum((t - a[-1]) ** 2), rel=1e-12)
    net = cp.Network(layout, activations=activation, loss="half_squared_error",
                     weights=[w_m.T for w_m in w])
    assert net.loss(x[None, :], t[None, :]) == pytest.approx(E, rel=1e-12)


@pytest.mark.parametrize("layout, activation, seed", CASES)
def test_output_and_hidden_deltas_are_the_formulas(layout, activation, seed):
    """(nd-output-delta) and eq. (1) (nd-hidden-delta), written out in vector form."""
    w, x, t = make_case(layout, seed)
    _, g_prime, inp, a, Delta = signals(w, x, t, activation)
    M = len(layout) - 1
    np.testing.assert_allclose(Delta[M], g_prime(inp[M]) * (t - a[M]), rtol=1e-12)
    for j_layer in range(M - 1, 0, -1):
        expected = np.array([g_prime(inp[j_layer][j]) * sum(
            w[j_layer][j, k] * Delta[j_layer + 1][k] for k in range(layout[j_layer + 1]))
            for j in range(layout[j_layer])])
        np.testing.assert_allclose(Delta[j_layer], expected, rtol=1e-12)


@pytest.mark.parametrize("layout, activation, seed", CASES)
def test_theorem_part1_delta_is_minus_dE_din_at_every_layer(layout, activation, seed):
    """The claim C(m) of the proof, for every layer m = M, ..., 1 (base case and steps)."""
    w, x, t = make_case(layout, seed)
    g, _, inp, _, Delta = signals(w, x, t, activation)
    for m in range(1, len(layout)):
        fd = central_differences(lambda v, m=m: error_from_layer(w, m, v, t, g), inp[m])
        np.testing.assert_allclose(Delta[m], -fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("layout, activation, seed", CASES)
def test_theorem_part2_minus_dE_dw_is_a_i_Delta_j(layout, activation, seed):
    """-dE_n/dw_ij = a_i Delta_j for every edge, against finite differences on the weights."""
    w, x, t = make_case(layout, seed)
    _, _, _, a, Delta = signals(w, x, t, activation)
    for m in range(len(w)):
        def E_of(w_m, m=m):
            return node_delta.error([*w[:m], w_m, *w[m + 1:]], x, t, activation)

        fd = central_differences(E_of, w[m])
        np.testing.assert_allclose(np.outer(a[m], Delta[m + 1]), -fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_partials_of_in_k(activation):
    """(nd-partials): d in_k/d w_jk = a_j, d in_k/d a_j = w_jk, d in_k/d in_j = w_jk g'(in_j)."""
    w, x, t = make_case([3, 4, 3], 7)
    g, g_prime, inp, a, _ = signals(w, x, t, activation)
    m = 1  # j in layer 1, k in layer 2
    for j in range(4):
        for k in range(3):
            def in_k_of_w(v, j=j, k=k):
                w_m = w[m].copy()
                w_m[j, k] = v
                return w_m[:, k] @ a[m]

            def in_k_of_a(v, j=j, k=k):
                a_m = a[m].copy()
                a_m[j] = v
                return w[m][:, k] @ a_m

            def in_k_of_in(v, j=j, k=k):
                in_m = inp[m].copy()
                in_m[j] = v
                return w[m][:, k] @ g(in_m)

            for f, at, expected in ((in_k_of_w, w[m][j, k], a[m][j]),
                                    (in_k_of_a, a[m][j], w[m][j, k]),
                                    (in_k_of_in, inp[m][j], w[m][j, k] * g_prime(inp[m][j]))):
                fd = (f(at + H) - f(at - H)) / (2 * H)
                assert fd == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("layout, activation, seed", CASES)
def test_bridge_Delta_is_minus_delta(layout, activation, seed):
    """The bridge table: Delta = -delta of back_propagate (002's delta = +dC/dz)."""
    w, x, t = make_case(layout, seed)
    _, _, inp, _, Delta = signals(w, x, t, activation)
    net = cp.Network(layout, activations=activation, loss="half_squared_error",
                     weights=[w_m.T for w_m in w])
    L = net.L
    z, a = cp.feed_forward(net.W, net.b, net.S, x[:, None])
    delta_L = cp.losses.output_delta("half_squared_error", net.S_prime[L], z[L], a[L],
                                     t[:, None], np)
    _, _, delta = cp.back_propagate(net.W, z, a, delta_L, net.S_prime)
    for m in range(1, L + 1):
        np.testing.assert_allclose(z[m][:, 0], inp[m], rtol=1e-12)
        np.testing.assert_allclose(delta[m][:, 0], -Delta[m], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("layout, activation, seed", CASES)
@pytest.mark.parametrize("eta", [0.1, 0.5, 2.0])
def test_node_update_equals_one_train_step(layout, activation, seed, eta):
    """The chapter's demonstration: node_delta.update == Network.train_step on one example."""
    w, x, t = make_case(layout, seed)
    net = cp.Network(layout, activations=activation, loss="half_squared_error",
                     weights=[w_m.T for w_m in w], biases=[np.zeros(p) for p in layout[1:]])
    new = node_delta.update(w, x, t, eta, activation)
    net.train_step(x[None, :], t[None, :], lr=eta)
    for w_m, W_m in zip(new, net.weights, strict=True):
        np.testing.assert_allclose(w_m.T, W_m, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layout, activation, seed", CASES[:3])
def test_node_update_is_a_gradient_descent_step(layout, activation, seed):
    """The theorem's conclusion: the update is w - eta dE_n/dw, with dE_n/dw by differences."""
    w, x, t = make_case(layout, seed)
    eta = 0.3
    new = node_delta.update(w, x, t, eta, activation)
    for m in range(len(w)):
        def E_of(w_m, m=m):
            return node_delta.error([*w[:m], w_m, *w[m + 1:]], x, t, activation)

        np.testing.assert_allclose(new[m], w[m] - eta * central_differences(E_of, w[m]),
                                   rtol=1e-6, atol=1e-9)


def test_update_does_not_modify_its_input():
    w, x, t = make_case([3, 4, 2], 0)
    saved = [w_m.copy() for w_m in w]
    node_delta.update(w, x, t, 1.0)
    for w_m, s in zip(w, saved, strict=True):
        np.testing.assert_array_equal(w_m, s)


def test_exercise_tanh_delta_in_terms_of_activations():
    """Exercise nd-ex-tanh: with g = tanh, Delta_k = (1 - a_k^2)(t_k - a_k) and eq. (1)."""
    w, x, t = make_case([3, 4, 3, 2], 11)
    _, _, _, a, Delta = signals(w, x, t, "tanh")
    np.testing.assert_allclose(Delta[3], (1 - a[3] ** 2) * (t - a[3]), rtol=1e-12)
    np.testing.assert_allclose(Delta[2], (1 - a[2] ** 2) * (w[2] @ Delta[3]), rtol=1e-12)


def test_exercise_without_the_half_doubles_the_gradient():
    """Exercise nd-ex-half: for sum (t - a)^2, -dE/dw = 2 a_i Delta_j (package: squared_error)."""
    layout = [3, 4, 2]
    w, x, t = make_case(layout, 5)
    _, _, _, a, Delta = signals(w, x, t, "sigmoid")

    def E_full(w0):
        return 2 * node_delta.error([w0, w[1]], x, t)

    fd = central_differences(E_full, w[0])
    np.testing.assert_allclose(-fd, 2 * np.outer(a[0], Delta[1]), rtol=1e-6, atol=1e-9)
    net = cp.Network(layout, activations="sigmoid", loss="squared_error",
                     weights=[w_m.T for w_m in w])
    _, dW, _ = net.loss_and_gradients(x[None, :], t[None, :])
    np.testing.assert_allclose(dW[0], -2 * np.outer(a[0], Delta[1]).T, rtol=1e-10)


def test_exercise_constant_node_is_a_bias():
    """Exercise nd-ex-bias: a constant input node's weights move exactly like b_1."""
    rng = np.random.default_rng(9)
    w = [rng.normal(size=(4, 3)), rng.normal(size=(3, 2))]  # input node 3 is the constant 1
    x, t, eta = np.array([0.3, -0.7, 1.1, 1.0]), np.array([0.2, 0.9]), 0.7
    new = node_delta.update(w, x, t, eta)
    net = cp.Network([3, 3, 2], activations="sigmoid", loss="half_squared_error",
                     weights=[w[0][:3].T, w[1].T], biases=[w[0][3], np.zeros(2)])
    assert net.predict(x[None, :3])[0] == pytest.approx(
        node_delta.forward(w, x, node_delta.derivative("sigmoid")[0])[1][-1], rel=1e-12)
    net.train_step(x[None, :3], t[None, :], lr=eta)
    np.testing.assert_allclose(new[0][3], net.biases[0], rtol=1e-12)
    np.testing.assert_allclose(new[0][:3].T, net.weights[0], rtol=1e-12)


def test_zero_tanh_weights_are_a_saddle_the_rule_never_leaves():
    """The chapter's correction of the seed's 'finds local minima': with g = tanh and w = 0
    every a_i Delta_k is 0 (a stationary point), yet E_n falls along one pattern and rises
    along another: a saddle, from which the rule never moves."""
    x, t = np.array([1.0, -0.5]), np.array([0.6])
    w0 = [np.zeros((2, 3)), np.zeros((3, 1))]
    g, g_prime = node_delta.derivative("tanh")
    inp, a = node_delta.forward(w0, x, g)
    Delta = node_delta.error_signals(w0, inp, a, t, g_prime)
    assert np.all(a[1] == 0) and np.all(Delta[1] == 0) and np.all(Delta[2] != 0)
    w = w0
    for _ in range(50):
        w = node_delta.update(w, x, t, eta=0.5, activation="tanh")
    assert all(np.array_equal(u, v) for u, v in zip(w, w0, strict=True))
    pattern = [0.1 * np.outer(x, np.ones(3)), 0.1 * np.ones((3, 1))]
    E0 = node_delta.error(w0, x, t, "tanh")
    assert node_delta.error(pattern, x, t, "tanh") < E0
    assert node_delta.error([pattern[0], -pattern[1]], x, t, "tanh") > E0


@pytest.mark.parametrize("eta, behaviour", [(0.2, "converges"), (0.5, "two-cycle"),
                                            (0.6, "diverges")])
def test_fixed_step_converges_oscillates_or_diverges(eta, behaviour):
    """One identity node, x = 2, t = 1: w - w* is multiplied by 1 - eta x^2 per update."""
    w, path = [np.array([[0.0]])], []
    for _ in range(30):
        w = node_delta.update(w, np.array([2.0]), np.array([1.0]), eta, activation="identity")
        path.append(w[0][0, 0])
    gaps = np.array(path) - 0.5
    np.testing.assert_allclose(gaps[1:], (1 - 4 * eta) * gaps[:-1], rtol=1e-12, atol=1e-15)
    if behaviour == "converges":
        assert abs(gaps[-1]) < 1e-9
    elif behaviour == "two-cycle":
        assert sorted(path[-2:]) == pytest.approx([0.0, 1.0])
    else:
        assert abs(gaps[-1]) > 1e3


def test_the_opening_matches_the_order_of_the_chapters():
    """node_delta no longer follows matrix_form directly: its opening names the chapter."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    text = (root / "book" / "node_delta.md").read_text()
    assert "The previous chapter proved the matrix-form theorem" not in text
    assert "The chapter {doc}`matrix_form` proved the matrix-form theorem" in text
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    chapters = [entry["file"] for part in toc["parts"] if part.get("caption") == "Chapters"
                for entry in part["chapters"]]
    between = chapters[chapters.index("book/matrix_form") + 1:chapters.index("book/node_delta")]
    assert between == ["book/output_and_saturation", "book/gradient_checking",
                       "book/initialisation"]
    order = ["book/tanh_two_layer", "book/worked_example", "book/matrix_form"]
    assert [chapters.index(c) for c in order] == sorted(chapters.index(c) for c in order)
