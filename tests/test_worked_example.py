"""Every number of the chapter "One worked example by hand" (book/worked_example.md).

The chapter's tables are read from the page itself and compared, number by number, with
``course_pkg.Network`` and with central finite differences, so that a typo in the text fails.
The formulas are those of ``002_ff83eee082f91d18.txt`` with the half squared error of
``000_4a3fe56ce2bc8b6e.txt``; the node form is that of ``003_00675a7c1b711b2c.txt``.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pytest

import course_pkg as cp
from course_pkg import node_delta
from course_pkg.gradcheck import central_differences

PAGE = Path(__file__).resolve().parents[1] / "book" / "worked_example.md"

X = np.array([[1.0, 0.5]])
Y = np.array([[0.0, 1.0]])
W1 = np.array([[0.5, -1.0], [1.0, 1.0]])
B1 = np.array([0.0, -0.5])
W2 = np.array([[1.0, -1.0], [0.5, 0.5]])
B2 = np.array([0.0, 0.0])


def network(loss: str = "half_squared_error") -> cp.Network:
    """The chapter's network (we-data)."""
    return cp.Network([2, 2, 2], "sigmoid", loss=loss, weights=[W1, W2], biases=[B1, B2])


def page_text() -> str:
    return PAGE.read_text(encoding="utf-8")


def table_rows() -> dict[str, list[float]]:
    """The rows F1..F5, B1..B12 of the page's tables: step -> the printed numbers."""
    rows = {}
    for line in page_text().splitlines():
        match = re.match(r"^\| ([FB]\d+) \|(.*)\|\s*$", line)
        if match:
            cells = [c.strip() for c in match.group(2).split("|")[1:]]
            rows[match.group(1)] = [float(c) for c in cells if c]
    return rows


def package_rows(loss: str = "half_squared_error") -> dict[str, np.ndarray]:
    """The same rows, computed by course_pkg only (no hand formula)."""
    net = network(loss)
    z, a = net.forward(X)
    C, dW, db = net.loss_and_gradients(X, Y)
    S_prime = cp.activations.sigmoid_prime
    # delta_l = dC/dz_l; from the package's back_propagate with its own output delta
    delta_L = cp.losses.output_delta(loss, S_prime, z[2], a[2], Y.T, np)
    _, _, delta = cp.back_propagate(net.W, z, a, delta_L, net.S_prime)
    return {
        "F1": z[1][:, 0], "F2": a[1][:, 0], "F3": z[2][:, 0], "F4": a[2][:, 0], "F5": [C],
        "B1": a[2][:, 0] - Y[0],
        "B2": S_prime(z[2], np)[:, 0],
        "B3": delta[2][:, 0],
        "B4": (W2.T @ delta[2])[:, 0],
        "B5": S_prime(z[1], np)[:, 0],
        "B6": delta[1][:, 0],
        "B7": db[1], "B8": dW[1][:, 0], "B9": dW[1][:, 1],
        "B10": db[0], "B11": dW[0][:, 0], "B12": dW[0][:, 1],
    }


def test_every_row_of_the_tables_is_present():
    rows = table_rows()
    assert sorted(rows) == sorted([f"F{i}" for i in range(1, 6)] + [f"B{i}" for i in range(1, 13)])
    assert all(len(v) == 2 for k, v in rows.items() if k != "F5") and len(rows["F5"]) == 1


def test_the_table_matches_course_pkg_to_four_decimals():
    rows, expected = table_rows(), package_rows()
    for step, printed in rows.items():
        np.testing.assert_array_equal(
            printed, np.round(np.asarray(expected[step], dtype=float), 4), err_msg=step)


def test_the_gradients_of_the_table_match_finite_differences():
    """Rows B7..B12 against central differences of C in each parameter (no back-propagation)."""
    rows = table_rows()

    def loss_of(which: int):
        def C(theta: np.ndarray) -> float:
            params = [W1.copy(), B1.copy(), W2.copy(), B2.copy()]
            params[which] = theta
            return cp.Network([2, 2, 2], "sigmoid", weights=[params[0], params[2]],
                              biases=[params[1], params[3]]).loss(X, Y)
        return C

    fd = [central_differences(loss_of(i), p) for i, p in enumerate([W1, B1, W2, B2])]
    np.testing.assert_allclose(fd[3], rows["B7"], atol=5e-5)
    np.testing.assert_allclose(fd[2][:, 0], rows["B8"], atol=5e-5)
    np.testing.assert_allclose(fd[2][:, 1], rows["B9"], atol=5e-5)
    np.testing.assert_allclose(fd[1], rows["B10"], atol=5e-5)
    np.testing.assert_allclose(fd[0][:, 0], rows["B11"], atol=5e-5)
    np.testing.assert_allclose(fd[0][:, 1], rows["B12"], atol=5e-5)
    # delta_l = dC/dz_l (we-delta): perturb z_l itself and run the rest of the network
    s = cp.activations.sigmoid
    z2 = package_rows()["F3"]
    fd_delta2 = central_differences(lambda v: 0.5 * np.sum((s(v, np) - Y[0]) ** 2), z2)
    np.testing.assert_allclose(fd_delta2, rows["B3"], atol=5e-5)
    z1 = package_rows()["F1"]
    fd_delta1 = central_differences(
        lambda v: 0.5 * np.sum((s(W2 @ s(v, np) + B2, np) - Y[0]) ** 2), z1)
    np.testing.assert_allclose(fd_delta1, rows["B6"], atol=5e-5)


def test_the_sigmoid_table():
    """The small table of sigma and sigma' at the four points of the chapter."""
    lines = [ln for ln in page_text().splitlines() if ln.startswith("| $\\sigma")]
    numbers = [[float(v) for v in re.findall(r"-?\d+\.\d+", ln)] for ln in lines[:2]]
    zs = np.array([0.0, 1.0, -0.2311, 0.6155])
    rows = package_rows()
    np.testing.assert_allclose(zs, np.round([*rows["F1"], *rows["F3"]], 4))
    exact_z = np.array([*rows["F1"], *rows["F3"]])
    sig = cp.activations.sigmoid(exact_z, np)
    np.testing.assert_array_equal(numbers[0], np.round(sig, 4))
    np.testing.assert_array_equal(numbers[1], np.round(sig * (1 - sig), 4))


def _half_up(v) -> Decimal:
    return Decimal(v).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def pencil_rows() -> dict[str, list[Decimal]]:
    """The table as a pencil computes it: every intermediate rounded half up to 4 decimals."""
    d = Decimal
    x, y = [d(1), d("0.5")], [d(0), d(1)]
    w1 = [[d("0.5"), d(-1)], [d(1), d(1)]]
    b1 = [d(0), d("-0.5")]
    w2 = [[d(1), d(-1)], [d("0.5"), d("0.5")]]

    def sig(z: Decimal) -> Decimal:
        return _half_up(repr(1 / (1 + math.exp(-float(z)))))

    z1 = [_half_up(w1[i][0] * x[0] + w1[i][1] * x[1] + b1[i]) for i in range(2)]
    a1 = [sig(v) for v in z1]
    z2 = [_half_up(w2[i][0] * a1[0] + w2[i][1] * a1[1]) for i in range(2)]
    g = [sig(v) for v in z2]
    e = [_half_up(g[i] - y[i]) for i in range(2)]
    sp2 = [_half_up(v * (1 - v)) for v in g]
    d2 = [_half_up(sp2[i] * e[i]) for i in range(2)]
    back = [_half_up(w2[0][j] * d2[0] + w2[1][j] * d2[1]) for j in range(2)]
    sp1 = [_half_up(v * (1 - v)) for v in a1]
    d1 = [_half_up(sp1[j] * back[j]) for j in range(2)]
    return {"F1": z1, "F2": a1, "F3": z2, "F4": g, "F5": [_half_up(d("0.5") * (e[0]**2 + e[1]**2))],
            "B1": e, "B2": sp2, "B3": d2, "B4": back, "B5": sp1, "B6": d1, "B7": d2,
            "B8": [_half_up(d2[i] * a1[0]) for i in range(2)],
            "B9": [_half_up(d2[i] * a1[1]) for i in range(2)], "B10": d1,
            "B11": [_half_up(d1[i] * x[0]) for i in range(2)],
            "B12": [_half_up(d1[i] * x[1]) for i in range(2)]}


def test_the_pencil_claim():
    """A pencil that rounds each step is off by at most one unit, in exactly the named rows."""
    rows, pencil = table_rows(), pencil_rows()
    off = {}
    for step, printed in rows.items():
        for k, (p, q) in enumerate(zip(printed, pencil[step], strict=True)):
            units = abs(round((float(q) - p) * 1e4))
            assert units <= 1, (step, k, p, q)
            if units:
                off[(step, k)] = float(q)
    assert off == {("F3", 1): 0.6156, ("B4", 0): 0.0693, ("B4", 1): -0.1492, ("B8", 1): -0.04}
    text = " ".join(page_text().split())
    assert "z_{2,2} = 0.6156" in text and "B4 $= (0.0693, -0.1492)$" in text
    assert "$-0.0400$ in row B8" in text


def test_the_hand_arithmetic_in_the_text():
    text = " ".join(page_text().split())
    rows = package_rows()
    C = rows["F5"][0]
    e = rows["B1"]
    assert ("\\frac12(0.4425^2 + 0.3508^2) = \\frac12(0.195806 + 0.123061) = 0.159433$, which "
            "rounds to $0.1594$") in text
    # the pencil's squares of the rounded errors, to six decimals, and their half
    assert round(0.4425 ** 2, 6) == 0.195806 and round(0.3508 ** 2, 6) == 0.123061
    assert round(0.5 * (0.4425 ** 2 + 0.3508 ** 2), 6) == 0.159433
    assert round(C, 4) == 0.1594
    # rounding the squares first: 0.15945, which rounds half up to 0.1595 (one unit too high)
    assert round(e[0] ** 2, 4) == 0.1958 and round(e[1] ** 2, 4) == 0.1231
    half = _half_up(Decimal("0.5") * (Decimal("0.1958") + Decimal("0.1231")))
    assert Decimal("0.5") * (Decimal("0.1958") + Decimal("0.1231")) == Decimal("0.15945")
    assert half == Decimal("0.1595") and half - Decimal(str(round(C, 4))) == Decimal("0.0001")
    assert "$\\frac12(0.1958 + 0.1231) = 0.15945$, which rounds half up to $0.1595$" in text
    assert math.isclose(0.5 * 0.5 + 0.5 * 0.7311, 0.61555)
    assert round(0.5 * 0.5 + 0.5 * cp.activations.sigmoid(np.array(1.0), np), 5) == 0.61553


def test_the_gradient_step_and_its_first_order_prediction():
    net = network()
    C, dW, db = net.loss_and_gradients(X, Y)
    grad_sq = sum(np.sum(d ** 2) for d in (*dW, *db))
    stepped = net.copy()
    stepped.train_step(X, Y, lr=1.0)
    after = stepped.loss(X, Y)
    assert round(grad_sq, 4) == 0.0353
    assert round(C - grad_sq, 4) == 0.1242
    assert round(after, 4) == 0.1267
    assert after < C
    assert round(stepped.weights[1][0, 0], 4) == 0.9454
    text = " ".join(page_text().split())
    assert "$\\|\\nabla C\\|^2 = 0.0353$" in text
    assert "$0.1594 - 0.0353 = 0.1242$" in text and "gives $0.1267$" in text


def test_node_form_of_seed_003():
    """Delta_k = -delta_k (we-node), and the node update equals the gradient step."""
    g, g_prime = node_delta.derivative("sigmoid")
    w = [np.vstack([W1.T, B1]), W2.T]          # the bias as the weight from a node that is 1
    x = np.append(X[0], 1.0)
    inp, a = node_delta.forward(w, x, g)
    Delta = node_delta.error_signals(w, inp, a, Y[0], g_prime)
    rows = package_rows()
    np.testing.assert_allclose(Delta[2], -np.asarray(rows["B3"]), rtol=1e-13)
    np.testing.assert_allclose(Delta[1], -np.asarray(rows["B6"]), rtol=1e-13)
    assert list(np.round(Delta[2], 4)) == [-0.1092, 0.0799]
    new_w = node_delta.update(w, x, Y[0], 1.0, "sigmoid")
    stepped = network()
    stepped.train_step(X, Y, lr=1.0)
    np.testing.assert_allclose(new_w[1].T, stepped.weights[1], rtol=1e-13)
    np.testing.assert_allclose(new_w[0][:2].T, stepped.weights[0], rtol=1e-13)
    np.testing.assert_allclose(new_w[0][2], stepped.biases[0], rtol=1e-13)
    assert round(1 + 0.5 * Delta[2][0], 4) == 0.9454


def test_exercise_no_half():
    """Seed 002's ||g - y||^2 doubles C and every backward row except B2 and B5."""
    half, full = package_rows(), package_rows("squared_error")
    for step in half:
        factor = 1.0 if step[0] == "F" and step != "F5" or step in ("B2", "B5") else 2.0
        if step == "B1":
            continue                    # B1 is g - y in both tables: dC/dg is 2(g - y)
        np.testing.assert_allclose(full[step], factor * np.asarray(half[step]), rtol=1e-13)
    assert round(full["F5"][0], 4) == 0.3189
    assert list(np.round(full["B3"], 4)) == [0.2183, -0.1598]


def test_exercise_pencil_finite_difference():
    def C(w11: float) -> float:
        w = W1.copy()
        w[0, 0] = w11
        return cp.Network([2, 2, 2], "sigmoid", weights=[w, W2], biases=[B1, B2]).loss(X, Y)

    up, down = C(0.51), C(0.49)
    assert (round(up, 6), round(down, 6)) == (0.159602, 0.159256)
    assert round((round(up, 6) - round(down, 6)) / 0.02, 4) == 0.0173
    assert round((round(up, 4) - round(down, 4)) / 0.02, 4) == 0.015


@pytest.mark.parametrize("loss", ["half_squared_error"])
def test_the_page_states_its_loss(loss):
    text = page_text()
    assert f'loss="{loss}"' in text and "\\tfrac12\\,\\|\\mathbf g - \\mathbf y\\|^2" in text


def test_a_step_back_multiplies_by_D_and_W_transpose():
    """The step delta_2 -> delta_1 is bounded by max sigma' * ||W_2||_2, not by 1/4 alone."""
    text = " ".join(page_text().split())
    rows = package_rows()
    d1, d2 = np.asarray(rows["B6"]), np.asarray(rows["B3"])
    spectral = np.linalg.norm(W2, 2)
    assert spectral == pytest.approx(math.sqrt(2))
    assert round(spectral, 3) == 1.414 and round(0.25 * spectral, 3) == 0.354
    ratio = np.linalg.norm(d1) / np.linalg.norm(d2)
    assert ratio <= np.max(rows["B5"]) * spectral
    assert (round(np.linalg.norm(d1), 4), round(np.linalg.norm(d2), 4), round(ratio, 2)) == (
        0.0340, 0.1353, 0.25)
    assert round(0.0340 / 0.1353, 2) == 0.25
    ratio_text = r"\|\boldsymbol\delta_1\| / \|\boldsymbol\delta_2\| = 0.0340 / 0.1353 \approx 0.25"
    assert ratio_text in text
    assert "at most $\\frac14\\cdot 1.414 = 0.354$ times" in text
    assert "at most $\\frac14$" not in text
    # a W with ||W||_2 > 4 lets the error grow through a sigmoid layer at z = 0
    big = 5 * np.eye(2)
    assert np.linalg.norm(0.25 * (big.T @ d2)) > np.linalg.norm(d2)


def test_a_delta_is_the_cost_s_sensitivity_to_a_unit_s_input():
    """(we-nudge): nudging z_1,j by eps = 0.01 changes C by about delta_1,j * eps; the page
    quotes the predicted and the measured changes."""
    net = network()
    z, _ = net.forward(X)
    rows = package_rows()

    def cost_from_z1(z1: np.ndarray) -> float:
        a1 = cp.activations.sigmoid(z1, np)
        g = cp.activations.sigmoid(W2 @ a1 + B2, np)
        return 0.5 * float(np.sum((g - Y[0]) ** 2))

    z1, eps = z[1][:, 0], 0.01
    changes = []
    for j in (0, 1):
        nudged = z1.copy()
        nudged[j] += eps
        changes.append(cost_from_z1(nudged) - cost_from_z1(z1))
        assert changes[j] == pytest.approx(rows["B6"][j] * eps, rel=0.01)
    assert [round(c, 6) for c in changes] == [0.000173, -0.000292]
    assert [round(float(d) * eps, 6) for d in rows["B6"]] == [0.000173, -0.000293]
    text = " ".join(page_text().split())
    assert "finds $0.000173$ and $-0.000292$" in text
    assert "about $0.000173$" in text and "about $0.000293$" in text


def test_after_many_steps():
    """The page's numbers for 10000 steps of lr = 1 on the one example, and the 1/steps tail."""
    net = network().copy()
    costs, sizes = [], []
    for step in range(10000):
        costs.append(net.train_step(X, Y, lr=1.0))
        if step in (999, 4999):
            sizes.append(sum(np.linalg.norm(w) for w in net.weights))
    costs.append(net.loss(X, Y))
    sizes.append(sum(np.linalg.norm(w) for w in net.weights))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]          # the weights keep growing
    assert [round(costs[k], 4) for k in (0, 1)] == [0.1594, 0.1267]
    assert round(costs[100], 4) == 0.0028 and round(costs[1000], 5) == 0.00023
    assert round(costs[10000], 6) == 0.000020
    assert np.all(np.diff(costs) < 0)
    assert np.all(np.diff(-np.diff(costs)) < 0)             # every step gains less
    g = net.forward(X)[1][2][:, 0]
    assert [round(v, 4) for v in g] == [0.0046, 0.9956]
    steps = np.arange(1, len(costs))
    slope = np.polyfit(np.log(steps[1000:]), np.log(costs[1001:]), 1)[0]
    assert -1.2 < slope < -0.9
    before = network()
    assert all(np.linalg.norm(a) > np.linalg.norm(b)
               for a, b in zip(net.weights, before.weights, strict=True))
    text = " ".join(page_text().split())
    for quoted in ("to $0.0028$ in the first hundred steps", "to $0.00023$ after a thousand",
                   "to $0.000020$ after ten thousand", "$0.0046$ and $0.9956$"):
        assert quoted in text

