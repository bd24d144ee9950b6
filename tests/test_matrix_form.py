"""Every formula of the chapters "Back-propagation in matrix form" and "The output layer, the kink
and saturation" (book/matrix_form.md, book/output_and_saturation.md; ``002_ff83eee082f91d18.txt``).

Each one is computed by hand in plain NumPy and compared with central finite differences and
with ``course_pkg``.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import course_pkg as cp
from course_pkg import tanh_two_layer
from course_pkg.gradcheck import central_differences
from course_pkg.widgets import saturation

ROOT = Path(__file__).resolve().parent.parent

S = {
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "relu": lambda z: np.maximum(z, 0),
    "identity": lambda z: z,
}
S_prime = {
    "tanh": lambda z: 1 - np.tanh(z) ** 2,
    "sigmoid": lambda z: S["sigmoid"](z) * (1 - S["sigmoid"](z)),
    "relu": lambda z: (z > 0).astype(float),
    "identity": np.ones_like,
}



def forward(net, x):
    """(mf-forward) for one example, in plain NumPy."""
    a, z = {0: x}, {}
    for l, (W, b, name) in enumerate(zip(net.weights, net.biases, net.activation_names,
                                         strict=True), 1):
        z[l] = W @ a[l - 1] + b
        a[l] = S[name](z[l])
    return z, a


def algorithm_1(net, x, y):
    """Algorithm 1 with explicit diagonal matrices D_l; squared error C = ||g - y||^2."""
    z, a = forward(net, x)
    L = net.L
    delta = {L: S_prime[net.activation_names[-1]](z[L]) * 2 * (a[L] - y)}       # (mf-delta-mse)
    for l in range(L, 1, -1):
        D = np.diag(S_prime[net.activation_names[l - 2]](z[l - 1]))             # (mf-D)
        delta[l - 1] = D @ net.weights[l - 1].T @ delta[l]                     # (mf-delta)
    dW = {l: np.outer(delta[l], a[l - 1]) for l in range(1, L + 1)}             # (mf-grad)
    return z, a, delta, dW


@pytest.fixture(params=[("tanh", "sigmoid", "identity"), ("relu", "tanh", "sigmoid")])
def regression(request):
    names = list(request.param)
    net = cp.Network([4, 5, 3, 2], names, loss="squared_error", seed=3)
    rng = np.random.default_rng(len(names[0]))
    for b in net.biases:                     # nonzero biases, so that they are checked too
        b += rng.normal(scale=0.3, size=b.shape)
    return net, rng.normal(size=(7, 4)), rng.normal(size=(7, 2))


@pytest.mark.parametrize("sizes", [[1, 3, 1], [64, 32, 10], [16, 32, 32, 32, 10], [5, 1]])
def test_parameter_count(sizes):
    net = cp.Network(sizes)
    formula = sum(sizes[l - 1] * sizes[l] + sizes[l] for l in range(1, len(sizes)))
    stored = sum(w.size for w in net.weights) + sum(b.size for b in net.biases)
    assert formula == net.num_parameters == stored


def test_exercise_parameter_count():
    assert cp.Network([784, 256, 128, 10], seed=0).num_parameters == 235146
    assert cp.Network([64, 32, 10]).num_parameters == 2410


def test_training_loss_is_mean_of_costs(regression):
    net, X, Y = regression
    costs = [np.sum((forward(net, x)[1][net.L] - y) ** 2) for x, y in zip(X, Y, strict=True)]
    assert net.loss(X, Y) == pytest.approx(np.mean(costs), rel=1e-12)


def test_delta_is_derivative_with_respect_to_z(regression):
    net, X, Y = regression
    x, y = X[0], Y[0]
    z, _, delta, _ = algorithm_1(net, x, y)

    def cost_from(l, z_l):
        a = S[net.activation_names[l - 1]](z_l)
        for k in range(l + 1, net.L + 1):
            a = S[net.activation_names[k - 1]](net.weights[k - 1] @ a + net.biases[k - 1])
        return np.sum((a - y) ** 2)

    for l in range(1, net.L + 1):
        fd = central_differences(lambda v, l=l: cost_from(l, v), z[l])
        np.testing.assert_allclose(delta[l], fd, atol=1e-8)


def test_weight_and_bias_gradients(regression):
    net, X, Y = regression
    x, y = X[:1], Y[:1]
    _, _, delta, dW = algorithm_1(net, x[0], y[0])
    _, pkg_dW, pkg_db = net.loss_and_gradients(x, y)
    fd_dW, fd_db = cp.finite_difference_gradients(net, x, y)
    for l in range(1, net.L + 1):
        np.testing.assert_allclose(dW[l], fd_dW[l - 1], atol=1e-8)
        np.testing.assert_allclose(delta[l], fd_db[l - 1], atol=1e-8)
        np.testing.assert_allclose(dW[l], pkg_dW[l - 1], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(delta[l], pkg_db[l - 1], rtol=1e-10, atol=1e-14)


def test_transpose_is_the_derivative_of_the_linear_map():
    rng = np.random.default_rng(0)
    W, a = rng.normal(size=(3, 5)), rng.normal(size=5)
    # entry (i, j) of dz/da is dz_j/da_i: the matrix is W^T
    jac_T = np.array([central_differences(lambda v, j=j: (W @ v)[j], a) for j in range(3)]).T
    np.testing.assert_allclose(jac_T, W.T, atol=1e-9)


def test_two_layer_case_is_the_tanh_chapter():
    rng = np.random.default_rng(4)
    w1, w2, x, y_hat = (rng.normal(size=s) for s in [(4, 3), (2, 4), 3, 2])
    net = cp.Network([3, 4, 2], ["tanh", "identity"], loss="half_squared_error",
                     weights=[w1, w2])
    a1 = np.tanh(w1 @ x)
    delta2 = w2 @ a1 - y_hat                                    # identity, half squared error
    delta1 = np.diag(1 - a1**2) @ w2.T @ delta2
    _, dW, _ = net.loss_and_gradients(x[None, :], y_hat[None, :])
    _, g1, g2 = tanh_two_layer.gradients(w1, w2, x, y_hat)
    np.testing.assert_allclose(np.outer(delta2, a1), g2, rtol=1e-12)
    np.testing.assert_allclose(np.outer(delta1, x), g1, rtol=1e-12)
    np.testing.assert_allclose(dW[1], g2, rtol=1e-12)


def test_batched_columns_equal_the_loop_of_algorithm_2(regression):
    net, X, Y = regression
    per_example = [algorithm_1(net, x, y) for x, y in zip(X, Y, strict=True)]
    _, dW, db = net.loss_and_gradients(X, Y)
    for l in range(1, net.L + 1):
        np.testing.assert_allclose(np.mean([p[3][l] for p in per_example], axis=0), dW[l - 1],
                                   rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(np.mean([p[2][l] for p in per_example], axis=0), db[l - 1],
                                   rtol=1e-10, atol=1e-14)
    # (mf-batch): the product of the column matrices is the sum of the outer products
    z, a = net.forward(X)
    Delta = np.stack([p[2][1] for p in per_example], axis=1)
    np.testing.assert_allclose(Delta @ a[0].T, sum(p[3][1] for p in per_example), rtol=1e-12)


def test_backward_pass_is_linear_in_delta_L(regression):
    """Dividing delta_L by n once gives the batch mean of every gradient (Algorithm 2)."""
    net, X, Y = regression
    n = len(X)
    z, a = cp.feed_forward(net.W, net.b, net.S, X.T)
    delta_L = S_prime[net.activation_names[-1]](z[net.L]) * 2 * (a[net.L] - Y.T)
    dW_sum, db_sum, _ = cp.back_propagate(net.W, z, a, delta_L, net.S_prime)
    dW_mean, db_mean, _ = cp.back_propagate(net.W, z, a, delta_L / n, net.S_prime)
    _, dW, db = net.loss_and_gradients(X, Y)
    for l in range(1, net.L + 1):
        np.testing.assert_allclose(dW_mean[l], dW_sum[l] / n, rtol=1e-12)
        np.testing.assert_allclose(db_mean[l], db_sum[l] / n, rtol=1e-12)
        np.testing.assert_allclose(dW_mean[l], dW[l - 1], rtol=1e-12)
        np.testing.assert_allclose(db_mean[l], db[l - 1], rtol=1e-12)


def test_diagonal_matrix_product_is_componentwise():
    rng = np.random.default_rng(1)
    for p in (1, 7, 300):
        s, v = rng.normal(size=p), rng.normal(size=p)
        np.testing.assert_allclose(np.diag(s) @ v, s * v, rtol=1e-15)


def test_sigmoid_derivative_bounds_and_saturation():
    z = np.linspace(-30, 30, 2001)
    sig = cp.activations.sigmoid(z, np)
    prime = cp.activations.sigmoid_prime(z, np)
    np.testing.assert_allclose(prime, sig * (1 - sig), rtol=1e-7, atol=1e-15)
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(prime, np.exp(-z) / (1 + np.exp(-z)) ** 2, atol=1e-15)
    fd = (cp.activations.sigmoid(z + 1e-6, np) - cp.activations.sigmoid(z - 1e-6, np)) / 2e-6
    np.testing.assert_allclose(prime, fd, atol=1e-9)
    exact = np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))) ** 2        # sigma' is even
    assert np.all(exact <= 0.25) and np.all(exact <= np.exp(-np.abs(z)))
    # the package computes S' from e^{-|z|}: accurate in relative terms even in the far tails
    np.testing.assert_allclose(prime, exact, rtol=1e-13)
    assert np.all(prime <= 0.25)
    assert np.all(prime <= np.exp(-np.abs(z)) * (1 + 1e-12))
    assert np.all(cp.activations.tanh_prime(z, np) <= 4 * np.exp(-2 * np.abs(z)) + 1e-15)
    relu_prime = cp.activations.relu_prime(z, np)
    assert np.all(relu_prime[z > 0] == 1) and np.all(relu_prime[z < 0] == 0)


def test_relu_network_passes_the_gradient_check():
    """The ReLU kink does not trip back-propagation: C is differentiable almost everywhere."""
    rng = np.random.default_rng(2)
    net = cp.Network([5, 6, 6, 3], ["relu", "relu", "softmax"], loss="cross_entropy", seed=2)
    X, y = rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)
    z, _ = net.forward(X)
    assert np.min(np.abs(z[1])) > 1e-5               # no pre-activation near the kink
    assert cp.gradient_check(net, X, y) < 1e-6


def test_gradient_norms_vanish_for_deep_sigmoid_networks():
    X, y = saturation.sample_batch()
    for depth in (8, 10):
        sig = saturation.layer_norms(depth, "sigmoid")
        relu = saturation.layer_norms(depth, "relu")
        assert len(sig) == depth + 1
        assert sig[0] < 1e-3 * sig[-1]
        assert relu[0] > 1e-2 * relu[-1]
        # the norms are those of the package's gradients
        net = saturation.deep_network(depth, "sigmoid")
        _, dW, _ = net.loss_and_gradients(X, y)
        np.testing.assert_allclose(sig, [np.linalg.norm(g) for g in dW])
    # each hidden sigmoid layer shrinks the gradient by about the bound 1/4 of sigma'
    ratios = sig[1:-2] / sig[2:-1]
    assert np.all(ratios < 0.35)


def test_softmax_cross_entropy_delta():
    rng = np.random.default_rng(3)
    p_L = 5
    for label in range(p_L):                        # Python's 0-based label = seed's y
        z = rng.normal(size=p_L)
        g = np.exp(z) / np.sum(np.exp(z))                                     # (mf-softmax)
        np.testing.assert_allclose(cp.activations.softmax(z[:, None], np)[:, 0], g, rtol=1e-12)
        assert g.sum() == pytest.approx(1.0) and np.all(g > 0)
        seed_form = [g[k - 1] - (label == k - 1) for k in range(1, p_L + 1)]   # g_k - I{y=k-1}

        def C(v, label=label):
            return -v[label] + np.log(np.sum(np.exp(v)))                      # (mf-ce)

        assert C(z) == pytest.approx(-np.log(g[label]), rel=1e-12)
        fd = central_differences(C, z)
        np.testing.assert_allclose(g - np.eye(p_L)[label], fd, atol=1e-9)
        np.testing.assert_allclose(seed_form, fd, atol=1e-9)
        pkg = cp.losses.softmax_cross_entropy_delta(g[:, None], np.array([label]), np)[:, 0]
        np.testing.assert_allclose(pkg, g - np.eye(p_L)[label], rtol=1e-12)
        assert cp.losses.cross_entropy(z[:, None], np.array([label]), np)[0] == pytest.approx(C(z))


def test_softmax_cross_entropy_delta_in_the_network():
    rng = np.random.default_rng(5)
    net = cp.Network([3, 4, 4], ["tanh", "softmax"], loss="cross_entropy", seed=5)
    x, label = rng.normal(size=(1, 3)), np.array([2])
    _, a = net.forward(x)
    _, _, db = net.loss_and_gradients(x, label)
    np.testing.assert_allclose(db[-1], a[2][:, 0] - np.eye(4)[2], rtol=1e-12)


def test_log_sum_exp_is_stable_and_softmax_shift_invariant():
    big = np.array([[1000.0], [0.0], [-1000.0]])
    costs = cp.losses.cross_entropy(np.repeat(big, 3, axis=1), np.arange(3), np)
    np.testing.assert_allclose(costs, [0.0, 1000.0, 2000.0], atol=1e-12)
    z = np.random.default_rng(0).normal(size=(4, 1))
    np.testing.assert_allclose(cp.activations.softmax(z + 7.5, np), cp.activations.softmax(z, np))
    g = cp.activations.softmax(z, np)[:, 0]
    assert g[0] == pytest.approx(1 - g[1:].sum())


def test_multi_output_regression_delta():
    rng = np.random.default_rng(6)
    net = cp.Network([3, 4, 2], ["tanh", "sigmoid"], loss="squared_error", seed=1)
    x, y = rng.normal(size=(1, 3)), rng.normal(size=(1, 2))
    z, a = net.forward(x)
    delta_L = S_prime["sigmoid"](z[2][:, 0]) * 2 * (a[2][:, 0] - y[0])          # (mf-delta-mse)
    fd = central_differences(lambda v: np.sum((S["sigmoid"](v) - y[0]) ** 2), z[2][:, 0])
    np.testing.assert_allclose(delta_L, fd, atol=1e-9)
    _, _, db = net.loss_and_gradients(x, y)
    np.testing.assert_allclose(delta_L, db[-1], rtol=1e-10)


def test_exercise_identity_half_squared_error_delta():
    rng = np.random.default_rng(7)
    net = cp.Network([2, 3, 2], ["tanh", "identity"], loss="half_squared_error", seed=7)
    x, y = rng.normal(size=(1, 2)), rng.normal(size=(1, 2))
    _, _, db = net.loss_and_gradients(x, y)
    np.testing.assert_allclose(db[-1], net.predict(x)[0] - y[0], rtol=1e-12)


def test_digits_training_learns():
    X_train, X_test, y_train, y_test = cp.load_digits_split()
    net = cp.Network([64, 32, 10], ["relu", "softmax"], loss="cross_entropy", seed=0)
    assert net.num_parameters == 2410
    hist = cp.train(net, X_train, y_train, lr=0.1, epochs=30, batch_size=32,
                    X_val=X_test, Y_val=y_test, progress=False)
    assert hist.loss[-1] < 0.5 * hist.loss[0]
    assert 0.95 < hist.val_accuracy[-1] < 0.975          # the chapter: "about 96%" after 30
    assert hist.val_accuracy[-1] == pytest.approx(cp.accuracy(net, X_test, y_test))


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="positive integer"):
        saturation.deep_network(0, "relu")
    with pytest.raises(ValueError, match="unknown activation"):
        saturation.deep_network(3, "softplus")


def _deltas(net, X, Y):
    """delta_l of every example (columns), half squared error on an identity output layer."""
    z, a = net.forward(X)
    L = len(net.weights)
    _, _, delta = cp.back_propagate(net.W, z, a, a[L] - Y.T, net.S_prime)
    return z, a, delta


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0, 6.0])
def test_vanishing_gradient_bound_includes_the_norm_of_W(activation, scale):
    """(mf-vanishing-bound): ||delta_{l-1}|| <= max|S'(z_{l-1})| ||W_l||_2 ||delta_l||, per
    example and layer, for small and large weights."""
    rng = np.random.default_rng(int(10 * scale))
    sizes = [8] + [16] * 5 + [3]
    Ws = [scale * rng.normal(size=(q, p)) / np.sqrt(p) for p, q in zip(sizes, sizes[1:],
                                                                      strict=False)]
    net = cp.Network(sizes, [activation] * 5 + ["identity"], loss="half_squared_error",
                     weights=Ws, biases=[rng.normal(size=q) for q in sizes[1:]])
    X, Y = rng.normal(size=(20, 8)), rng.normal(size=(20, 3))
    z, _, delta = _deltas(net, X, Y)
    for l in range(len(Ws), 1, -1):
        s_max = np.max(np.abs(S_prime[activation](z[l - 1])), axis=0)
        bound = s_max * np.linalg.norm(net.W[l], 2) * np.linalg.norm(delta[l], axis=0)
        assert np.all(np.linalg.norm(delta[l - 1], axis=0) <= bound * (1 + 1e-12))


def test_the_bound_on_S_prime_alone_does_not_bound_the_shrinking():
    """Sigmoid units (S' <= 1/4): with the package's scale of weights some layer passes back
    more than 1/4 of the error's norm, and with large weights the error grows (ratio > 1)."""
    def worst_ratio(scale):
        rng = np.random.default_rng(0)
        sizes = [8] + [16] * 5 + [3]
        Ws = [scale * rng.normal(size=(q, p)) / np.sqrt(p) for p, q in zip(sizes, sizes[1:],
                                                                          strict=False)]
        net = cp.Network(sizes, ["sigmoid"] * 5 + ["identity"], loss="half_squared_error",
                         weights=Ws, biases=[np.zeros(q) for q in sizes[1:]])
        _, _, delta = _deltas(net, rng.normal(size=(20, 8)), rng.normal(size=(20, 3)))
        return max(np.max(np.linalg.norm(delta[l - 1], axis=0) / np.linalg.norm(delta[l], axis=0))
                   for l in range(6, 1, -1))

    assert worst_ratio(1.0) > 0.25
    assert worst_ratio(6.0) > 1.0


def test_chapter_numbers_for_the_deep_sigmoid_network():
    """The chapter's reading of the saturation network: ||W_l||_2 about 2 for the 32 x 32
    layers, bound factor up to about 1/2, measured typical factor about 1/4 (0.15 to 0.3)."""
    deep = saturation.deep_network(10, "sigmoid")
    X, y = saturation.sample_batch()
    z, a = deep.forward(X)
    delta_top = cp.losses.softmax_cross_entropy_delta(a[11], y, np)
    _, _, delta = cp.back_propagate(deep.W, z, a, delta_top, deep.S_prime)
    for l in range(2, 11):                      # the 32 x 32 hidden-to-hidden matrices
        assert 1.5 < np.linalg.norm(deep.W[l], 2) < 2.5
    for l in range(11, 1, -1):
        ratio = np.median(np.linalg.norm(delta[l - 1], axis=0) / np.linalg.norm(delta[l], axis=0))
        assert 0.15 < ratio < 0.3


def _algorithm_lines(text, title):
    """The numbered lines of the prf:algorithm whose title starts with ``title``."""
    start = text.index("```{prf:algorithm} " + title)
    body = text[start:text.index("\n```\n", start)]
    lines, current = {}, None
    for row in body.splitlines():
        match = re.match(r"(\d+)\. (.*)", row)
        if match:
            current = int(match.group(1))
            lines[current] = match.group(2)
        elif current is not None and row.startswith("   "):
            lines[current] += " " + row.strip()
    return lines


def test_algorithm_lines_are_the_seeds_and_the_packages():
    """Algorithm 1 is numbered 1..11 like the seed's, each line holds the seed's step, and the
    '# line N' comments of course_pkg/network.py point at the same steps."""
    text = (ROOT / "book" / "matrix_form.md").read_text()
    lines = _algorithm_lines(text, "Gradient of the cost of one example")
    assert sorted(lines) == list(range(1, 12))
    expected = {1: r"\mathbf a_0 \leftarrow", 2: r"l = 1, \dots, L", 3: r"\mathbf z_l \leftarrow",
                4: r"\mathbf a_l \leftarrow", 5: r"\boldsymbol\delta_L \leftarrow",
                6: r"\mathbf z_0", 7: r"l = L, \dots, 1", 8: r"\partial\mathbf b_l \leftarrow",
                9: r"\partial\mathbf W_l \leftarrow", 10: r"\boldsymbol\delta_{l-1} \leftarrow",
                11: "return"}
    for n, fragment in expected.items():
        assert fragment in lines[n], (n, lines[n])
    assert sorted(_algorithm_lines(text, "Gradient of the training loss")) == [1, 2, 3]
    code = (ROOT / "course_pkg" / "network.py").read_text()
    cited = re.findall(r"# line (\d+): ([^\n]*)", code)
    assert cited
    keys = {3: "z_l", 4: "a_l", 8: "b_l", 9: "delta_l a_{l-1}^T", 10: "W_l^T delta_l"}
    for n, comment in cited:
        assert int(n) in keys and keys[int(n)].split()[0] in comment, (n, comment)
    for n in re.findall(r"[Ll]ine (\d+)", text):
        assert 1 <= int(n) <= 11


def _chapter_text() -> str:
    """The matrix-form chapter and its sequel on output layers and saturation, as one text."""
    pages = [ROOT / "book" / name for name in ("matrix_form.md", "output_and_saturation.md")]
    return "\n".join(p.read_text() for p in pages if p.exists())


def test_the_theorem_asks_for_derivatives_at_the_point():
    """The theorem's hypothesis is pointwise (each S_l at z_l, the loss at g), and D_l carries
    the layer's own S_l'; 'almost everywhere' gives no conclusion at one point."""
    text = _chapter_text()
    start = text.index("```{prf:theorem} Gradient of the cost of one example")
    theorem = " ".join(text[start:text.index("\n```\n", start)].split())
    assert "almost everywhere" not in theorem
    assert r"$\mathbf S_l$ is differentiable at $\mathbf z_l$" in theorem
    assert r"is differentiable at $\mathbf g = \mathbf a_L$" in theorem
    assert r"\mathrm{diag}\big(S_l'(z_{l,1}), \dots, S_l'(z_{l,p_l})\big)" in text
    assert r"\mathbf S_l(\mathbf z) = [S_l(z_1), \dots, S_l(z_{p_l})]^\top" in text
    assert "[S(z_1)" not in text
    # at a point where a ReLU pre-activation is exactly 0 the hypothesis fails, and the two
    # one-sided slopes of C differ: no value of S'(0) makes both right
    net = cp.Network([2, 2, 1], ["relu", "identity"], loss="squared_error", seed=0,
                     weights=[np.eye(2), np.ones((1, 2))], biases=[np.zeros(2), np.zeros(1)])
    x, y = np.array([[0.0, 1.0]]), np.array([[0.0]])
    z, _ = net.forward(x)
    assert z[1][0, 0] == 0.0
    h = 1e-6

    def cost(bias):
        return cp.Network([2, 2, 1], ["relu", "identity"], loss="squared_error",
                          weights=[np.eye(2), np.ones((1, 2))],
                          biases=[np.array([bias, 0.0]), np.zeros(1)]).loss(x, y)

    right, left = (cost(h) - cost(0.0)) / h, (cost(0.0) - cost(-h)) / h
    assert right == pytest.approx(2.0, rel=1e-5) and left == pytest.approx(0.0, abs=1e-9)


def test_one_softmax_unit_is_redundant_by_shift_invariance():
    """Subtracting unit 1's row from every row of W_L and b_L (c = -z_1) changes no output; the
    text gives shift invariance as the reason, not the identity g_1 = 1 - sum g_k."""
    text = " ".join(_chapter_text().split())
    assert "Equivalently, adding the same constant" not in text
    assert "The reason is *shift invariance*" in text
    rng = np.random.default_rng(11)
    net = cp.Network([3, 4, 5], ["tanh", "softmax"], loss="cross_entropy", seed=4)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 5, size=6)
    W, b = net.weights[1], net.biases[1]
    reduced = cp.Network([3, 4, 5], ["tanh", "softmax"], loss="cross_entropy",
                         weights=[net.weights[0], W - W[0]], biases=[net.biases[0], b - b[0]])
    assert np.all(reduced.weights[1][0] == 0) and reduced.biases[1][0] == 0
    np.testing.assert_allclose(reduced.forward(X)[1][2], net.forward(X)[1][2], rtol=1e-12)
    assert reduced.loss(X, y) == pytest.approx(net.loss(X, y), rel=1e-12)


def test_exercise_bias_is_a_weight_on_a_constant_input():
    """mf-ex-bias: the last column of delta [a; 1]^T is delta, the bias gradient."""
    rng = np.random.default_rng(8)
    net = cp.Network([3, 4, 2], ["tanh", "identity"], loss="squared_error", seed=5)
    for b in net.biases:
        b += rng.normal(size=b.shape)
    X, Y = rng.normal(size=(1, 3)), rng.normal(size=(1, 2))
    _, dW, db = net.loss_and_gradients(X, Y)
    z, a = net.forward(X)
    for l in (1, 2):
        delta = db[l - 1]
        enlarged = np.outer(delta, np.append(a[l - 1][:, 0], 1.0))   # (mf-grad), [W b]
        np.testing.assert_allclose(enlarged[:, :-1], dW[l - 1], rtol=1e-12)
        np.testing.assert_allclose(enlarged[:, -1], db[l - 1], rtol=1e-12)
    _, fd_b = cp.finite_difference_gradients(net, X, Y)
    np.testing.assert_allclose(fd_b[0], db[0], atol=1e-8)


def test_exercise_what_the_diagonal_matrix_costs():
    """mf-ex-diag-cost: the multiplication counts of one step back, p = 1024."""
    p = 1024
    transpose, full, componentwise = p * p, p * p, p
    assert (transpose, transpose + full, transpose + componentwise) == (1048576, 2097152, 1049600)
    assert round((transpose + full) / (transpose + componentwise), 3) == 1.998
    assert p * p - p == 1023 * 1024
    # the counts match what a diagonal matrix product does: p^2 products, p of them nonzero
    s, v = np.arange(1.0, p + 1), np.ones(p)
    assert np.count_nonzero(np.diag(s) * v[None, :]) == p
    text = " ".join((ROOT / "book" / "matrix_form.md").read_text().split())
    for number in ("1048576", "2097152", "1049600", "2097152/1049600 \\approx 1.998"):
        assert number in text


def test_exercise_shifting_the_logits():
    """os-ex-shift: C and delta_L = g - e_y do not change, and delta_L sums to zero."""
    rng = np.random.default_rng(12)
    z, y = rng.normal(size=(6, 4)), rng.integers(0, 6, size=4)
    for c in (-3.0, 0.5, 40.0):
        np.testing.assert_allclose(cp.losses.cross_entropy(z + c, y, np),
                                   cp.losses.cross_entropy(z, y, np), rtol=1e-12)
        g, g_shift = cp.activations.softmax(z, np), cp.activations.softmax(z + c, np)
        np.testing.assert_allclose(cp.losses.softmax_cross_entropy_delta(g_shift, y, np),
                                   cp.losses.softmax_cross_entropy_delta(g, y, np), atol=1e-14)
    delta = cp.losses.softmax_cross_entropy_delta(cp.activations.softmax(z, np), y, np)
    np.testing.assert_allclose(delta.sum(axis=0), 0.0, atol=1e-15)


def test_exercise_the_loss_at_chance():
    """os-ex-chance: equal logits give C = ln 10 = 2.3026 and delta_L = 0.1 - e_3."""
    z = np.zeros((10, 1))
    C = cp.losses.cross_entropy(z, np.array([3]), np)
    assert C == pytest.approx(np.log(10)) and round(float(np.log(10)), 4) == 2.3026
    delta = cp.losses.softmax_cross_entropy_delta(cp.activations.softmax(z, np), np.array([3]), np)
    expected = np.full(10, 0.1)
    expected[3] = -0.9
    np.testing.assert_allclose(delta[:, 0], expected, atol=1e-15)


def test_exercise_when_the_error_grows():
    """os-ex-grow: at z = 0 with W = 5 I, one step back multiplies the error by exactly 1.25,
    the bound (mf-vanishing-bound) holds with equality, and ten layers give 1.25^10 = 9.3."""
    W = 5 * np.eye(2)
    S_p = cp.activations.sigmoid_prime(np.zeros(2), np)
    for delta in (np.array([1.0, 0.0]), np.array([0.3, -2.0])):
        back = S_p * (W.T @ delta)                                  # (mf-delta)
        ratio = np.linalg.norm(back) / np.linalg.norm(delta)
        assert ratio == pytest.approx(1.25)
        assert ratio == pytest.approx(np.max(S_p) * np.linalg.norm(W, 2))
    assert round(1.25 ** 10, 1) == 9.3



def test_the_saturation_chapter_quotes_its_figure():
    """output_and_saturation: with ten hidden layers the sigmoid network's first layer gets a
    gradient 'millions of times smaller' than its last; tanh and ReLU stay 'within about one
    order of magnitude'."""
    sig = saturation.layer_norms(10, "sigmoid")
    assert 1e6 <= sig[-1] / sig[0] < 1e7
    for name in ("tanh", "relu"):
        norms = saturation.layer_norms(10, name)
        assert norms.max() / norms.min() < 10
    text = " ".join((ROOT / "book" / "output_and_saturation.md").read_text().split())
    assert "a gradient millions of times smaller than its last" in text
    assert "within about one order of magnitude of each other" in text
