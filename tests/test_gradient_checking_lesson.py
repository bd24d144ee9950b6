"""Every claim of the chapter "A lesson on gradient checking" (book/gradient_checking.md).

The chapter's measurements are redone here on the same network and data (seeded), and each
number or range that the text states is asserted; the error formulas (gc-forward),
(gc-central), (gc-optimum) and (gc-kink) are checked against measured errors. The derivatives
checked are those of ``002_ff83eee082f91d18.txt``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import course_pkg as cp
from course_pkg.gradcheck import relative_error

PAGE = Path(__file__).resolve().parents[1] / "book" / "gradient_checking.md"
HS = np.logspace(-13, 0, 53)
U64 = np.finfo(np.float64).eps
U32 = np.finfo(np.float32).eps


def text() -> str:
    return " ".join(PAGE.read_text(encoding="utf-8").split())


@pytest.fixture(scope="module")
def setup():
    """The chapter's network and batch: the first draws of default_rng(0)."""
    rng = np.random.default_rng(0)
    net = cp.Network([3, 4, 2], ["tanh", "identity"], loss="half_squared_error", seed=1)
    X, Y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    return net, X, Y, rng


def sweep(net, X, Y, dtype="float64"):
    """Forward and central differences for every parameter and every h in HS."""
    _, dW, db = net.loss_and_gradients(X, Y)
    exact = np.concatenate([g.ravel() for g in (*dW, *db)])
    probe = net.copy(dtype=dtype)
    arrays = [probe.W[l] for l in range(1, net.L + 1)] + [probe.b[l] for l in range(1, net.L + 1)]
    f0 = probe.loss(X, Y)
    fwd, cen = np.empty((2, len(HS), exact.size))
    p = 0
    for theta in arrays:
        for idx in np.ndindex(theta.shape):
            t = theta[idx]
            for i, h in enumerate(HS):
                theta[idx] = t + h
                up = probe.loss(X, Y)
                theta[idx] = t - h
                down = probe.loss(X, Y)
                theta[idx] = t
                fwd[i, p] = (up - f0) / h
                cen[i, p] = (up - down) / (2 * h)
            p += 1
    return np.abs(fwd - exact), np.abs(cen - exact), exact, cen


@pytest.fixture(scope="module")
def errors64(setup):
    net, X, Y, _ = setup
    return sweep(net, X, Y)


def fitted_slope(err, lo, hi):
    keep = (HS >= lo) & (HS <= hi)
    return np.polyfit(np.log10(HS[keep]), np.log10(err[keep]), 1)[0]


def test_the_network_has_26_parameters_and_53_steps(setup):
    net = setup[0]
    assert net.num_parameters == 26 and len(HS) == 53
    assert "every one of its 26 parameters and for 53 steps" in text()


def test_slopes_of_truncation_and_round_off(errors64):
    fwd, cen = errors64[:2]
    mf, mc = np.median(fwd, axis=1), np.median(cen, axis=1)
    assert fitted_slope(mf, 1e-6, 1e-2) == pytest.approx(1.0, abs=0.05)      # (gc-forward)
    assert fitted_slope(mc, 1e-4, 1e-2) == pytest.approx(2.0, abs=0.05)      # (gc-central)
    assert fitted_slope(mf, 1e-13, 1e-9) == pytest.approx(-1.0, abs=0.1)     # u|f|/h
    assert fitted_slope(mc, 1e-13, 1e-7) == pytest.approx(-1.0, abs=0.1)


def test_optimal_steps_are_near_the_predicted_powers_of_epsilon(errors64):
    fwd, cen = errors64[:2]
    mf, mc = np.median(fwd, axis=1), np.median(cen, axis=1)
    best_f, best_c = HS[np.argmin(mf)], HS[np.argmin(mc)]
    assert U64 ** 0.5 / 3 <= best_f <= 3 * U64 ** 0.5
    assert U64 ** (1 / 3) / 3 <= best_c <= 3 * U64 ** (1 / 3)
    assert round(float(np.log10(best_c))) == -5                   # "10^{-5} in float64"
    ratio = mf.min() / mc.min()
    assert 100 < ratio < 2000                                     # "several hundred times"
    assert 300 < U64 ** (-1 / 6) < 500                            # "u^{-1/6} ~ 400"


def test_the_error_model_of_gc_central_for_one_parameter(setup):
    """(central - exact) / h^2 -> f'''/6, with f''' from an independent 5-point stencil."""
    net, X, Y, _ = setup
    probe = net.copy()
    t0 = float(probe.W[1][0, 0])

    def f(t):
        probe.W[1][0, 0] = t
        value = probe.loss(X, Y)
        probe.W[1][0, 0] = t0
        return value

    exact = net.loss_and_gradients(X, Y)[1][0][0, 0]
    k = 2e-2
    f3 = (f(t0 + 2 * k) - 2 * f(t0 + k) + 2 * f(t0 - k) - f(t0 - 2 * k)) / (2 * k ** 3)
    h = 1e-3
    central = (f(t0 + h) - f(t0 - h)) / (2 * h)
    assert (central - exact) / h ** 2 == pytest.approx(f3 / 6, rel=2e-2)
    f2 = (f(t0 + k) - 2 * f(t0) + f(t0 - k)) / k ** 2
    forward = (f(t0 + h) - f(t0)) / h
    assert (forward - exact) / h == pytest.approx(f2 / 2, rel=2e-2)        # (gc-forward)
    # (gc-optimum): h* = (3 u |f| / |f'''|)^(1/3) is within a decade of u^(1/3)
    h_star = (3 * U64 * abs(f(t0)) / abs(f3)) ** (1 / 3)
    assert U64 ** (1 / 3) / 10 < h_star < 10 * U64 ** (1 / 3)


def test_the_stated_powers_of_epsilon():
    assert f"{U64 ** (1 / 3):.0e}" == "6e-06" and f"{U64 ** 0.5:.1e}" == "1.5e-08"
    assert f"{U64 ** (2 / 3):.0e}" == "4e-11"
    assert f"{U32:.1e}" == "1.2e-07" and f"{U32 ** (1 / 3):.0e}" == "5e-03"
    assert f"{U32 ** (2 / 3):.0e}" == "2e-05"
    assert f"{U64 ** (1 / 5):.0e}" == "7e-04" and f"{U64 ** (4 / 5):.0e}" == "3e-13"
    t = text()
    for claim in ("u^{1/3} \\approx 6\\times 10^{-6}", "u^{1/2} \\approx 1.5\\times 10^{-8}",
                  "u^{2/3} \\approx 4\\times 10^{-11}", "u = 1.2\\times 10^{-7}",
                  "u^{1/3} \\approx 5\\times 10^{-3}", "2\\times 10^{-5}",
                  "h^\\ast \\sim u^{1/5} \\approx 7\\times 10^{-4}",
                  "u^{4/5} \\approx 3\\times 10^{-13}"):
        assert claim in t, claim


def test_the_fourth_order_stencil_of_the_package(setup, errors64):
    net, X, Y, _ = setup
    exact = errors64[2]
    fd_W, fd_b = cp.finite_difference_gradients(net, X, Y)
    fd = np.concatenate([g.ravel() for g in (*fd_W, *fd_b)])
    err = np.abs(fd - exact)
    assert 1e-13 < np.median(err) < 2e-12 and np.max(err) < 3e-12     # "near 10^{-12}"
    # the exercise: order 4 at h = 1e-4 is on the round-off side, u |f| / h ~ 1e-12
    assert 5e-13 < U64 * net.loss(X, Y) / 1e-4 < 2e-12


MISTAKES = [None, "squared error without the 1/2", "no S' in the recursion",
            "S' evaluated at a instead of z", "bias gradient summed, not averaged"]


def buggy_gradients(net, X, Y, mistake):
    """An independent hand back-propagation (tanh hidden, identity output, half squared error)."""
    W = [net.W[l] for l in (1, 2)]
    b = [net.b[l] for l in (1, 2)]
    n = X.shape[0]
    z1 = X @ W[0].T + b[0]                      # rows are examples here
    a1 = np.tanh(z1)
    g = a1 @ W[1].T + b[1]
    d2 = (g - Y) / n * (2 if mistake == MISTAKES[1] else 1)
    back = d2 @ W[1]
    if mistake == MISTAKES[2]:
        d1 = back
    elif mistake == MISTAKES[3]:
        d1 = back * (1 - np.tanh(a1) ** 2)
    else:
        d1 = back * (1 - a1 ** 2)
    scale = n if mistake == MISTAKES[4] else 1
    return [d1.T @ X, d2.T @ a1], [scale * d1.sum(0), scale * d2.sum(0)]


def test_relative_error_of_correct_and_buggy_gradients(setup):
    net, X, Y, _ = setup
    fd_W, fd_b = cp.finite_difference_gradients(net, X, Y)
    r = {}
    for mistake in MISTAKES:
        dW, db = buggy_gradients(net, X, Y, mistake)
        pairs = zip((*dW, *db), (*fd_W, *fd_b), strict=True)
        r[mistake] = max(relative_error(a, b) for a, b in pairs)
    assert 1e-9 < r[None] < 1e-8                                   # "a few times 10^{-9}"
    assert r[MISTAKES[1]] == pytest.approx(1 / 3, abs=1e-8)
    assert all(r[m] >= 1 / 3 - 1e-8 for m in MISTAKES[1:])
    assert r[MISTAKES[2]] == pytest.approx(1.0) and r[MISTAKES[3]] == pytest.approx(1.0)
    assert np.log10(min(r[m] for m in MISTAKES[1:]) / r[None]) > 7.5   # "eight orders"
    # the correct gradient's worst entry is a derivative of size 4e-5, absolute error ~3e-13
    _, dW, db = net.loss_and_gradients(X, Y)
    worst = max(((np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))), a, b)
                 for a, b in zip((*dW, *db), (*fd_W, *fd_b), strict=True)), key=lambda t: t[0])
    a, b = worst[1], worst[2]
    i = np.argmax(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))
    assert 3e-5 < abs(a.ravel()[i]) < 5e-5
    assert 1e-13 < abs(a.ravel()[i] - b.ravel()[i]) < 5e-13
    # and the sign flips behind r = 1 are in the bias gradients (sums of both signs)
    dW, db = buggy_gradients(net, X, Y, MISTAKES[2])
    assert np.any(np.sign(db[0]) != np.sign(fd_b[0]))


def test_the_floor_of_relative_error():
    """Without the floor, a zero gradient against rounding noise gives r = 1."""
    assert relative_error(np.array([0.0]), np.array([1e-12]), floor=0.0) == 1.0
    assert relative_error(np.array([0.0]), np.array([1e-12])) == pytest.approx(1e-4)


def relu_kink(setup, h, c=1e-6):
    net, X, Y, _ = setup
    relu_net = cp.Network([3, 4, 2], ["relu", "identity"], loss="half_squared_error", seed=2)
    x1, y1 = X[:1], Y[:1]
    z, _ = relu_net.forward(x1)
    relu_net.b[1][0] += c - z[1][0, 0]
    z, _ = relu_net.forward(x1)
    assert z[1][0, 0] == pytest.approx(c, rel=1e-6)
    s = relu_net.loss_and_gradients(x1, y1)[2][0][0]
    assert abs(s) > 1e-3                                      # the unit matters
    probe = relu_net.copy()
    probe.b[1][0] += h
    up = probe.loss(x1, y1)
    probe.b[1][0] -= 2 * h
    down = probe.loss(x1, y1)
    return relative_error(s, (up - down) / (2 * h))


@pytest.mark.parametrize("h", [1e-8, 1e-7, 5e-7, 2e-6, 1e-5, 1e-4, 1e-3])
def test_the_relu_kink_formula(setup, h):
    c = 1e-6
    r = relu_kink(setup, h, c)
    if h < c:
        assert r < 1e-8
    else:
        assert r == pytest.approx((h - c) / (3 * h + c), abs=2e-3)       # (gc-kink)
        assert r < 1 / 3 + 1e-3


def test_how_often_a_step_meets_a_kink():
    rng = np.random.default_rng(0)
    rng.normal(size=(5, 3)), rng.normal(size=(5, 2))          # the chapter's draws so far
    wide = cp.Network([20, 100, 10], ["relu", "identity"], seed=3)
    X_many = rng.normal(size=(1000, 20))
    z, _ = wide.forward(X_many)
    scale = np.max(np.abs(X_many))
    near = {h: np.mean(np.abs(z[1]) < h * scale) for h in (1e-6, 1e-4, 1e-2)}
    assert near[1e-4] < 1e-3 and near[1e-2] > 1e-2                  # rare, and not rare


@pytest.fixture(scope="module")
def errors32(setup):
    net, X, Y, _ = setup
    return sweep(net, X, Y, dtype="float32")


def test_float32(errors32, errors64):
    _, cen32, exact, estimates32 = errors32
    rel32 = np.median(cen32 / np.abs(exact), axis=1)
    rel64 = np.median(errors64[1] / np.abs(exact), axis=1)
    best = HS[np.argmin(rel32)]
    assert U32 ** (1 / 3) / 3 <= best <= 3 * U32 ** (1 / 3)
    assert round(float(np.log10(best))) == -2                      # "near 10^{-2}"
    assert 1e-5 < rel32.min() < 1e-4                              # "about 3 x 10^{-5}"
    i = np.argmin(np.abs(np.log(HS / 1e-5)))
    assert rel32[i] > 1e-2 and rel64[i] < 1e-9                   # h = 1e-5: bug-like in float32
    assert np.all(rel32[HS < 2e-7] == 1.0)         # f(t + h) and f(t - h) round to the same
    assert np.all(rel32[HS > 1e-6] < 1.0)
    assert np.spacing(np.float32(0.6)) == pytest.approx(6e-8, rel=0.01)
    assert np.spacing(np.float32(0.5)) / 2 == pytest.approx(3e-8, rel=0.01)
    assert rel32.min() > 100 * rel64.min()
    # the check's r at h = 1e-5 in float32 lies in the table's top band (above 1e-3)
    r32 = relative_error(exact, estimates32[i])
    assert r32 > 1e-3
    assert f"{r32:.1e}" == "1.0e+00"                       # some small entry changes sign
    assert "lies in the top band of the table" in text()


def test_the_package_tests_require_what_the_chapter_says():
    """'the package's tests require r < 1e-6' (tests/test_gradients.py and others)."""
    source = (Path(__file__).parent / "test_gradients.py").read_text(encoding="utf-8")
    assert "TOLERANCE = 1e-6" in source
    assert "the package's tests require $r < 10^{-6}$" in text()


# -- the remainders of (gc-taylor) and (gc-central), and the bounds of r (gc-relative) --------


def test_the_central_remainder_needs_five_derivatives():
    """With five derivatives (sin) the error after the h^2 term is O(h^4); with four
    (sign(t)|t|^(9/2) at 0) the central difference is exactly h^(7/2), not O(h^4)."""
    t = 0.3
    for h in (1e-1, 5e-2, 2.5e-2):
        central = (np.sin(t + h) - np.sin(t - h)) / (2 * h)
        rest = central - np.cos(t) - h ** 2 / 6 * (-np.cos(t))       # f''' = -cos
        assert rest / h ** 4 == pytest.approx(np.cos(t) / 120, rel=1e-2)

    def four(s):
        return np.sign(s) * np.abs(s) ** 4.5

    ratios = []
    for h in (1e-1, 1e-2, 1e-3):
        central = (four(h) - four(-h)) / (2 * h)                    # f'(0) = f'''(0) = 0
        assert central == pytest.approx(h ** 3.5, rel=1e-12)
        ratios.append(central / h ** 4)
    assert ratios[0] < ratios[1] < ratios[2] and ratios[2] > 30     # not bounded by C h^4
    t_ = text()
    assert "for an $f$ with four continuous derivatives near $t$" in t_
    assert "when $f$ has five continuous derivatives" in t_
    assert "its central difference there is $h^{7/2}$" in t_


def test_r_is_at_most_one_and_one_exactly_when_signs_differ_or_a_value_is_zero():
    rng = np.random.default_rng(5)
    a = rng.normal(size=4000) * 10.0 ** rng.integers(-3, 3, size=4000)
    b = rng.normal(size=4000) * 10.0 ** rng.integers(-3, 3, size=4000)
    a[:200] = 0.0
    b[200:300] = 0.0
    r = np.array([relative_error(x, y, floor=1e-12) for x, y in zip(a, b, strict=True)])
    assert np.all(r <= 1.0)
    differ = (a * b <= 0) & (np.abs(a) + np.abs(b) > 0)
    assert np.all(r[differ] == pytest.approx(1.0, abs=1e-15))
    assert np.all(r[~differ] < 1.0)
    assert "so $r \\le 1$ for every pair, and $r = 1$ exactly when" in text()
    assert "opposite signs or one of them is $0$" in text()


def test_the_verdict_table_states_its_conditions_and_the_exceptions_are_in_its_top_band(setup):
    t = text()
    assert "| $r$ (float64, no kink within $h$, $h$ near its optimum) | verdict |" in t
    assert "a correct back-propagation lands in the *top* band" in t
    top = 1e-3
    assert relu_kink(setup, 1e-4) > top                              # kink: up to 1/3
    c, h = 1e-6, 1e-3
    assert (h - c) / (3 * h + c) > top
    # the kink from the other side (exercise): exact 0 against an estimate of size |s|/2 -> 1
    assert relative_error(np.array([0.0]), np.array([0.05]), floor=1e-8) == 1.0


def test_the_exercise_on_cost_uses_three_forward_passes():
    t = text()
    assert "costs at most about three forward passes" in t
    assert "forward pass costing about as much as a whole back-propagation" not in t


# -- sanity checks before training ---------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return cp.load_digits_split()


def test_the_initial_loss_is_near_ln_C_and_raw_pixels_are_not(digits):
    X_train, _, y_train, _ = digits
    for seed in (0, 1, 2):
        clf = cp.Network([64, 32, 10], ["relu", "softmax"], loss="cross_entropy", seed=seed)
        scaled, raw = clf.loss(X_train, y_train), clf.loss(16 * X_train, y_train)
        assert abs(scaled / np.log(10) - 1) < 0.05                 # "within a few per cent"
        assert 3 < raw / np.log(10) < 6                            # "three to six times"
    assert "and a loss three to six times too large" in text()


def test_a_tiny_batch_is_overfitted(digits):
    X_train, _, y_train, _ = digits
    clf = cp.Network([64, 32, 10], ["relu", "softmax"], loss="cross_entropy", seed=0)
    assert clf.num_parameters == 2410 and "a network with 2,410 parameters" in text()
    for _ in range(200):
        clf.train_step(X_train[:20], y_train[:20], 0.5)
    assert clf.loss(X_train[:20], y_train[:20]) < 1e-2
    assert cp.accuracy(clf, X_train[:20], y_train[:20]) == 1.0


def bias_left_out(net, X, Y):
    """The chapter's mistake, written independently (rows are examples)."""
    W1, W2, b1, b2 = net.W[1], net.W[2], net.b[1], net.b[2]
    n = X.shape[0]
    z1 = X @ W1.T + b1
    a1 = np.tanh(z1)
    d2 = (a1 @ W2.T + b2 - Y) / n
    d1 = (d2 @ W2) * (1 - np.tanh(X @ W1.T) ** 2)
    return [d1.T @ X, d2.T @ a1], [d1.sum(0), d2.sum(0)]


def max_r(net, X, Y, dW, db):
    fd_W, fd_b = cp.finite_difference_gradients(net, X, Y)
    return max(relative_error(g, f) for g, f in zip((*dW, *db), (*fd_W, *fd_b), strict=True))


def test_a_mistake_hidden_at_initialisation_shows_after_a_burn_in(setup):
    net, X, Y, _ = setup
    assert all(np.all(b == 0) for b in net.biases)                  # zero biases at the start
    assert max_r(net, X, Y, *bias_left_out(net, X, Y)) < 1e-8
    burned = net.copy()
    for _ in range(20):
        burned.train_step(X, Y, 0.1)
    assert max_r(burned, X, Y, *bias_left_out(burned, X, Y)) > 1e-2


def test_the_penalty_gradient_must_be_in_the_back_propagated_gradient(setup):
    net, X, Y, _ = setup
    burned = net.copy()
    for _ in range(20):
        burned.train_step(X, Y, 0.1)
    lam, h = 0.1, 1e-5
    _, dW, _ = burned.loss_and_gradients(X, Y)
    fd = []
    for W_l in burned.weights:
        g = np.empty_like(W_l)
        for idx in np.ndindex(W_l.shape):
            t = W_l[idx]
            values = []
            for s in (t + h, t - h):
                W_l[idx] = s
                values.append(burned.loss(X, Y) + lam / 2 * sum(np.sum(W ** 2)
                                                                 for W in burned.weights))
            W_l[idx] = t
            g[idx] = (values[0] - values[1]) / (2 * h)
        fd.append(g)
    forgot = max(relative_error(g, f) for g, f in zip(dW, fd, strict=True))
    with_penalty = max(relative_error(g + lam * W, f)
                       for g, f, W in zip(dW, fd, burned.weights, strict=True))
    assert forgot > 0.5 and with_penalty < 1e-7


def test_the_loss_at_chance_exercise():
    for C in (2, 10):
        logits = np.zeros(C)
        g = np.exp(logits) / np.exp(logits).sum()
        assert -np.log(g[0]) == pytest.approx(np.log(C))
    entropy = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))
    assert f"{entropy:.3f}" == "0.325" and f"{np.log(2):.3f}" == "0.693"
