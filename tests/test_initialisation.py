"""The variance argument of the chapter "Exploding gradients and initialisation".

(book/initialisation.md.) The predicted per-layer scales of (init-forward), (init-backward) and
(init-map) are compared with the scales measured on deep tanh and ReLU networks built with
``course_pkg.Network(weights=...)``; the recursion is that of ``002_ff83eee082f91d18.txt``.
Each number that the chapter states is asserted here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import course_pkg as cp

PAGE = Path(__file__).resolve().parents[1] / "book" / "initialisation.md"
rng_quad = np.random.default_rng(7)


def text() -> str:
    return " ".join(PAGE.read_text(encoding="utf-8").split())


def gains(kind: str, sizes: list[int]) -> dict[int, float]:
    """gamma_l for l = 1..L under a rule of (init-rules), or a constant gain."""
    L = len(sizes) - 1
    if kind == "xavier":
        return {l: 2 * sizes[l - 1] / (sizes[l - 1] + sizes[l]) for l in range(1, L + 1)}
    value = {"lecun": 1.0, "he": 2.0, "small": 0.25, "large": 4.0}[kind]
    return {l: value for l in range(1, L + 1)}


def draw(sizes, gain, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, np.sqrt(gain[l] / sizes[l - 1]), size=(sizes[l], sizes[l - 1]))
            for l in range(1, len(sizes))]


def monte_carlo(f, q, m=200_000):
    """E[f(z)], z ~ N(0, q), by sampling: independent of the chapter's quadrature."""
    return float(np.mean(f(np.sqrt(q) * rng_quad.normal(size=m))))


def predict(name, sizes, gain, q1, delta_sq):
    S_sq = {"tanh": lambda q: monte_carlo(lambda z: np.tanh(z) ** 2, q), "relu": lambda q: q / 2}
    Sp_sq = {"tanh": lambda q: monte_carlo(lambda z: (1 - np.tanh(z) ** 2) ** 2, q),
             "relu": lambda q: 0.5}
    L = len(sizes) - 1
    q = {1: q1}
    for l in range(2, L):
        q[l] = gain[l] * S_sq[name](q[l - 1])
    d = {L: delta_sq}
    for l in range(L, 1, -1):
        d[l - 1] = gain[l] * sizes[l] / sizes[l - 1] * Sp_sq[name](q[l - 1]) * d[l]
    return np.sqrt([q[l] for l in range(1, L)]), np.sqrt([d[l] for l in range(1, L)])


def measure(name, sizes, gain, n=512, seed=0):
    L = len(sizes) - 1
    net = cp.Network(sizes, [name] * (L - 1) + ["identity"], weights=draw(sizes, gain, seed))
    X = np.random.default_rng(1).normal(size=(n, sizes[0]))
    delta_L = np.random.default_rng(2).normal(size=(sizes[-1], n))
    z, a = net.forward(X)
    _, _, delta = cp.back_propagate(net.W, z, a, delta_L, net.S_prime)
    rms_z = np.array([np.sqrt(np.mean(z[l] ** 2)) for l in range(1, L)])
    rms_d = np.array([np.sqrt(np.mean(delta[l] ** 2)) for l in range(1, L)])
    return rms_z, rms_d, float(np.mean(delta_L ** 2))


SIZES = [256] * 16 + [10]


@pytest.fixture(scope="module")
def results():
    out = {}
    for name in ("tanh", "relu"):
        for kind in ("small", "lecun", "xavier", "he", "large"):
            g = gains(kind, SIZES)
            rms_z, rms_d, d_sq = measure(name, SIZES, g)
            out[name, kind] = rms_z, rms_d, predict(name, SIZES, g, rms_z[0] ** 2, d_sq)
    return out


def test_single_layer_variance_formulas():
    """(init-forward) and (init-backward) for one wide layer, with many draws of the weights."""
    rng = np.random.default_rng(0)
    p_in, p_out, gamma, draws = 300, 150, 1.7, 30
    a = np.maximum(rng.normal(size=(p_in, 500)), 0)       # relu outputs of N(0, 1)
    zprev = rng.normal(size=(p_in, 500))
    delta = rng.normal(size=(p_out, 500))
    forward, backward = [], []
    for _ in range(draws):                                 # expectations over the weights too
        W = rng.normal(0, np.sqrt(gamma / p_in), size=(p_out, p_in))
        forward.append(np.mean((W @ a) ** 2))
        backward.append(np.mean(((zprev > 0) * (W.T @ delta)) ** 2))
    assert np.mean(forward) == pytest.approx(gamma * np.mean(a ** 2), rel=0.03)
    assert np.mean(a ** 2) == pytest.approx(0.5, rel=0.02)              # E[relu(z)^2] = q/2
    assert np.mean(backward) == pytest.approx(gamma * p_out / p_in * 0.5, rel=0.03)


def test_predictions_match_measurements_within_the_stated_factor(results):
    worst = 0.0
    for rms_z, rms_d, (pz, pd) in results.values():
        worst = max(worst, np.max(np.abs(np.log(rms_z / pz))), np.max(np.abs(np.log(rms_d / pd))))
    assert np.exp(worst) < 1.2                     # the chapter prints "within a factor 1.13"


def test_relu_rules(results):
    z_he, d_he, _ = results["relu", "he"]
    assert np.max(np.abs(np.log(z_he / z_he[0]))) < np.log(1.2)           # flat
    assert np.max(np.abs(np.log(d_he / d_he[-1]))) < np.log(1.2)
    z_lc, d_lc, _ = results["relu", "lecun"]
    per_layer = np.exp(np.polyfit(np.arange(15), np.log(z_lc), 1)[0])
    assert per_layer == pytest.approx(2 ** -0.5, rel=0.03)                 # "2^{-1/2} per layer"
    z_big, d_big, _ = results["relu", "large"]
    assert np.exp(np.polyfit(np.arange(15), np.log(z_big), 1)[0]) == pytest.approx(2 ** 0.5,
                                                                                   rel=0.03)
    assert 80 < d_big[0] / d_big[-1] < 200                                # "about a hundred"


def test_tanh_claims(results):
    z_lc, d_lc, _ = results["tanh", "lecun"]
    assert z_lc[-1] < z_lc[0] / 3 and np.all(np.diff(z_lc) < 0)          # decays, slowly
    assert 2.5 < d_lc[-1] / d_lc[0] < 6                                   # "a factor of about 4"
    bad = [results["tanh", "small"], results["relu", "small"], results["relu", "large"],
           results["relu", "lecun"]]
    factors = [max(d[0] / d[-1], d[-1] / d[0]) for _, d, _ in bad]
    assert min(factors) >= 1e2 and max(factors) <= 1e7                   # "10^2 to 10^6"
    z_big, d_big, _ = results["tanh", "large"]
    assert np.max(z_big) < 2.5 and d_big[0] > d_big[-1]                   # bounded, grows back
    q_star = z_big[-1] ** 2
    chi = monte_carlo(lambda z: (1 - np.tanh(z) ** 2) ** 2, q_star)
    assert 4 * chi > 1                                                     # chi gamma > 1


def test_lecun_equals_xavier_on_equal_widths(results):
    z_lc, d_lc, _ = results["tanh", "lecun"]
    z_xa, d_xa, _ = results["tanh", "xavier"]
    np.testing.assert_allclose(z_lc, z_xa)                # same hidden layers, same draws
    assert not np.allclose(d_lc, d_xa)                    # the output layer differs
    assert gains("xavier", SIZES)[16] == pytest.approx(2 * 256 / 266)


def test_stated_expectations_and_powers():
    assert 0.5 ** 15 == pytest.approx(3e-5, rel=0.05) and 2 ** 15 == pytest.approx(3e4, rel=0.1)
    assert monte_carlo(lambda z: np.tanh(z) ** 2, 1.0) == pytest.approx(0.39, abs=0.01)
    assert monte_carlo(lambda z: (1 - np.tanh(z) ** 2) ** 2, 1.0) == pytest.approx(0.46, abs=0.01)
    t = text()
    assert "about 39%" in t and "about 46%" in t
    # the uniform Xavier bound: Var U(-r, r) = r^2 / 3 with r = sqrt(6 / (p_in + p_out))
    r = np.sqrt(6 / (400 + 100))
    sample = np.random.default_rng(0).uniform(-r, r, size=1_000_000)
    assert np.var(sample) == pytest.approx(2 / (400 + 100), rel=0.01)


def test_package_default_initialisation():
    for name, gain in (("relu", 2.0), ("tanh", 1.0)):
        net = cp.Network([400, 300, 200], [name, "identity"], seed=0)
        assert net.weights[0].var() == pytest.approx(gain / 400, rel=0.02)
        assert net.weights[1].var() == pytest.approx(1 / 300, rel=0.02)


def step_table():
    sizes = SIZES
    n = 512
    X = np.random.default_rng(1).normal(size=(n, 256))
    Y = np.random.default_rng(3).normal(size=(n, 10))
    out = {}
    for name in ("tanh", "relu"):
        for kind in ("small", "lecun", "he", "large"):
            net = cp.Network(sizes, [name] * 15 + ["identity"], loss="half_squared_error",
                             weights=draw(sizes, gains(kind, sizes)))
            loss, dW, _ = net.loss_and_gradients(X, Y)
            rel = [np.linalg.norm(dW[i]) / np.linalg.norm(net.weights[i]) for i in (0, 14)]
            out[name, kind] = loss, rel[0], rel[1]
    return out


def test_the_gradient_step_claims():
    t = step_table()
    for name in ("tanh", "relu"):
        loss, r1, r15 = t[name, "small"]
        assert loss == pytest.approx(5.0, rel=0.02)                 # ~ predicting g = 0
        assert 1e-8 < min(r1, r15) and max(r1, r15) < 1e-5
    loss, r1, r15 = t["relu", "large"]
    assert 1e5 <= loss < 1e6 and min(r1, r15) > 1e3
    for key in (("tanh", "lecun"), ("relu", "he")):
        loss, r1, r15 = t[key]
        assert 4 < loss < 10 and 1e-2 < min(r1, r15) and max(r1, r15) < 2
    _, r1, r15 = t["relu", "lecun"]
    assert 1e-4 < min(r1, r15) and max(r1, r15) < 1e-2               # "already 10^{-3}"
    _, r1, r15 = t["tanh", "large"]
    assert r1 > r15


def test_width_shrinks_the_fluctuations():
    """The exercise: at width 512 the He-ReLU activation scale stays closer to flat than at 64."""
    spread = {}
    for width in (64, 512):
        sizes = [width] * 16 + [10]
        spreads = []
        for seed in range(3):
            rms_z, _, _ = measure("relu", sizes, gains("he", sizes), n=128, seed=seed)
            spreads.append(np.std(np.log(rms_z / rms_z[0])))
        spread[width] = np.mean(spreads)
    assert spread[512] < spread[64] / 2


def test_the_xavier_exercise_ratio_and_product():
    """Forward factor gamma, backward gamma p_l / p_{l-1}: the ratio is free of gamma, the
    product is gamma^2 p_l / p_{l-1}, and Xavier's gain makes it 4 p q / (p + q)^2."""
    p_in, p_out = 400, 100
    for gamma in (0.5, 1.0, 1.6, 3.0):
        forward, backward = gamma, gamma * p_out / p_in
        assert backward / forward == pytest.approx(0.25)
        assert forward * backward == pytest.approx(gamma ** 2 * p_out / p_in)
    xavier = 2 * p_in / (p_in + p_out)
    assert xavier == pytest.approx(1.6) and xavier * p_out / p_in == pytest.approx(0.4)
    product = xavier ** 2 * p_out / p_in
    assert product == pytest.approx(4 * p_in * p_out / (p_in + p_out) ** 2) == pytest.approx(0.64)
    # the same layer measured: a linear layer's forward and backward variance factors
    rng = np.random.default_rng(4)
    W = rng.normal(0, np.sqrt(xavier / p_in), size=(p_out, p_in))
    x, d = rng.normal(size=(p_in, 2000)), rng.normal(size=(p_out, 2000))
    assert np.mean((W @ x) ** 2) == pytest.approx(1.6, rel=0.05)
    assert np.mean((W.T @ d) ** 2) == pytest.approx(0.4, rel=0.05)
    t = text()
    assert "is $4p_{l-1}p_l/(p_{l-1}+p_l)^2$ for every $\\gamma$" not in t
    assert "What does not depend on $\\gamma$ is the *ratio* of the two factors" in t


def test_the_prediction_holds_for_the_delta_of_a_real_loss():
    """delta_L = g - y depends on W_L; at initialisation the prediction still holds."""
    X = np.random.default_rng(1).normal(size=(512, 256))
    Y = np.random.default_rng(3).normal(size=(512, 10))
    L = len(SIZES) - 1
    for name, kind in (("tanh", "lecun"), ("relu", "he"), ("relu", "large")):
        g = gains(kind, SIZES)
        net = cp.Network(SIZES, [name] * 15 + ["identity"], loss="half_squared_error",
                         weights=draw(SIZES, g))
        z, a = net.forward(X)
        delta_L = a[L] - Y.T
        _, _, delta = cp.back_propagate(net.W, z, a, delta_L, net.S_prime)
        rms_z = np.array([np.sqrt(np.mean(z[l] ** 2)) for l in range(1, L)])
        rms_d = np.array([np.sqrt(np.mean(delta[l] ** 2)) for l in range(1, L)])
        _, pd = predict(name, SIZES, g, rms_z[0] ** 2, float(np.mean(delta_L ** 2)))
        assert np.exp(np.max(np.abs(np.log(rms_d / pd)))) < 1.2
    assert "For a real loss even the top layer is an approximation" in text()


@pytest.fixture(scope="module")
def digits():
    return cp.load_digits_split()


def trained(digits, weights):
    X_train, X_test, y_train, y_test = digits
    clf = cp.Network([64, 32, 10], ["tanh", "softmax"], loss="cross_entropy", seed=0,
                     weights=weights)
    history = cp.train(clf, X_train, y_train, lr=0.5, epochs=30, progress=False)
    return clf, history.loss[-1], cp.accuracy(clf, X_test, y_test)


def test_a_constant_initialisation_cannot_break_the_symmetry(digits):
    _, acc_random = trained(digits, None)[1:]
    clf, loss, acc = trained(digits, [np.zeros((32, 64)), np.zeros((10, 32))])
    assert np.all(clf.weights[0] == 0) and np.all(clf.weights[1] == 0)    # only b_2 moved
    assert np.any(clf.biases[1] != 0)
    assert abs(loss - np.log(10)) < 0.02 and acc == pytest.approx(0.1, abs=0.02)
    clf, loss, acc_const = trained(digits, [np.full((32, 64), 0.1), np.full((10, 32), 0.1)])
    W1, W2 = clf.weights
    assert np.all(W1 == W1[0]) and np.all(W2 == W2[:, :1])                # bit for bit
    assert np.linalg.matrix_rank(W1) == 1
    assert acc_random > 0.95 and 0.2 < acc_const < 0.6
    steps = 30 * int(np.ceil(len(digits[0]) / 32))
    assert steps == 1290 and "1,290 steps (30 epochs of 43 batches)" in text()


def test_one_random_layer_breaks_the_symmetry(digits):
    """The exercise: W_1 random, W_2 zero, and the network learns."""
    W1 = np.random.default_rng(0).normal(0, np.sqrt(1 / 64), size=(32, 64))
    clf, _, acc = trained(digits, [W1, np.zeros((10, 32))])
    W2 = clf.weights[1]
    assert acc > 0.9 and np.abs(W2 - W2[:, :1]).max() > 0.1           # columns differ
    # rank 9, not 10: each column of a softmax delta_L sums to 0, so from W_2 = 0 the rows of
    # W_2 keep summing to 0
    assert np.linalg.matrix_rank(W2) == 9 and np.allclose(W2.sum(axis=0), 0)
