"""The summary page of back-propagation's equations (book/summary.md).

Each equation of the page is computed here in plain NumPy, on random networks of several
depths and activations, and compared with ``course_pkg`` and with central finite differences;
each citation of a seed's own equation number is checked against the seed's text, and each
chapter the page points to exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import course_pkg as cp
from course_pkg import node_delta

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "summary.md"
SEEDS = Path("/work/shared/seeds")

S = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
     "relu": lambda z: np.maximum(z, 0), "identity": lambda z: z}
S_prime = {"tanh": lambda z: 1 - np.tanh(z) ** 2,
           "sigmoid": lambda z: S["sigmoid"](z) * (1 - S["sigmoid"](z)),
           "relu": lambda z: (z > 0) * 1.0, "identity": np.ones_like}


def text() -> str:
    return PAGE.read_text(encoding="utf-8")


def page_equations(net, X, Y, loss):
    """(sum-forward), (sum-delta-L), (sum-recursion), (sum-batch) in plain NumPy."""
    W, b, names, L = net.W, net.b, net.activation_names, net.L
    n = X.shape[0]
    a, z = {0: X.T}, {}
    for l in range(1, L + 1):                                            # (sum-forward)
        z[l] = W[l] @ a[l - 1] + b[l][:, None]
        if names[l - 1] == "softmax":
            e = np.exp(z[l] - z[l].max(axis=0))
            a[l] = e / e.sum(axis=0)
        else:
            a[l] = S[names[l - 1]](z[l])
    if loss == "cross_entropy":                                          # (sum-delta-L) table
        delta = {L: a[L] - np.eye(net.sizes[-1])[:, Y]}
        C = -np.log(a[L][Y, np.arange(n)])
    else:
        factor = 2.0 if loss == "squared_error" else 1.0
        delta = {L: S_prime[names[-1]](z[L]) * factor * (a[L] - Y.T)}
        C = factor / 2 * np.sum((a[L] - Y.T) ** 2, axis=0)
    for l in range(L, 1, -1):                                            # (sum-recursion)
        delta[l - 1] = S_prime[names[l - 2]](z[l - 1]) * (W[l].T @ delta[l])
    dW = [delta[l] @ a[l - 1].T / n for l in range(1, L + 1)]            # (sum-batch)
    db = [delta[l].mean(axis=1) for l in range(1, L + 1)]
    return C.mean(), dW, db, z, a


@given(depth=st.integers(1, 4), hidden=st.sampled_from(["tanh", "sigmoid", "relu"]),
       loss=st.sampled_from(["half_squared_error", "squared_error", "cross_entropy"]),
       seed=st.integers(0, 10_000))
def test_the_equations_against_course_pkg_and_finite_differences(depth, hidden, loss, seed):
    rng = np.random.default_rng(seed)
    sizes = [3] + [4] * depth + [3]
    output = "softmax" if loss == "cross_entropy" else "sigmoid"
    net = cp.Network(sizes, [hidden] * depth + [output], loss=loss, seed=seed)
    X = rng.normal(size=(5, 3))
    Y = rng.integers(0, 3, size=5) if loss == "cross_entropy" else rng.normal(size=(5, 3))
    C, dW, db, z, _ = page_equations(net, X, Y, loss)
    pkg_z, _ = net.forward(X)
    for l in z:
        np.testing.assert_allclose(z[l], pkg_z[l], rtol=1e-12, atol=1e-14)
    pkg_C, pkg_dW, pkg_db = net.loss_and_gradients(X, Y)
    assert C == pytest.approx(pkg_C, rel=1e-12)                          # (sum-loss)
    for mine, pkg in zip([*dW, *db], [*pkg_dW, *pkg_db], strict=True):
        np.testing.assert_allclose(mine, pkg, rtol=1e-10, atol=1e-13)
    if hidden != "relu" or np.min(np.abs(np.concatenate([z[l].ravel() for l in z]))) > 1e-3:
        fd_W, fd_b = cp.finite_difference_gradients(net, X, Y)
        for mine, fd in zip([*dW, *db], [*fd_W, *fd_b], strict=True):
            np.testing.assert_allclose(mine, fd, atol=1e-8)


def test_the_batch_mean_is_the_loop_of_algorithm_2(rng):
    net = cp.Network([4, 5, 2], ["tanh", "identity"], loss="squared_error", seed=3)
    X, Y = rng.normal(size=(7, 4)), rng.normal(size=(7, 2))
    _, dW, db = net.loss_and_gradients(X, Y)
    per_example = [net.loss_and_gradients(X[i:i + 1], Y[i:i + 1]) for i in range(7)]
    for l in range(2):
        np.testing.assert_allclose(np.mean([g[1][l] for g in per_example], axis=0), dW[l],
                                   rtol=1e-12)
        np.testing.assert_allclose(np.mean([g[2][l] for g in per_example], axis=0), db[l],
                                   rtol=1e-12)


def test_the_step_and_the_node_form_with_its_sign(rng):
    w = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    x, t = rng.normal(size=3), rng.normal(size=2)
    g, g_prime = node_delta.derivative("tanh")
    inp, act = node_delta.forward(w, x, g)
    Delta = node_delta.error_signals(w, inp, act, t, g_prime)
    net = cp.Network([3, 4, 2], "tanh", loss="half_squared_error",
                     weights=[w[0].T, w[1].T], biases=[np.zeros(4), np.zeros(2)])
    _, dW, db = net.loss_and_gradients(x[None, :], t[None, :])
    for l in (1, 2):
        np.testing.assert_allclose(Delta[l], -db[l - 1], rtol=1e-12)      # Delta = -delta
    new_w = node_delta.update(w, x, t, 0.3, "tanh")                       # adds eta a Delta
    net.train_step(x[None, :], t[None, :], lr=0.3)                         # subtracts eta grad
    for m in (0, 1):
        np.testing.assert_allclose(new_w[m].T, net.weights[m], rtol=1e-12)
    # the exercise: copying the minus sign into the node update climbs the loss
    wrong = [w_m - 0.01 * (np.array(new) - w_m) / 0.3 for w_m, new in zip(w, new_w, strict=True)]
    before = cp.Network([3, 4, 2], "tanh", weights=[w[0].T, w[1].T],
                        biases=[np.zeros(4), np.zeros(2)]).loss(x[None, :], t[None, :])
    after = cp.Network([3, 4, 2], "tanh", weights=[wrong[0].T, wrong[1].T],
                       biases=[np.zeros(4), np.zeros(2)]).loss(x[None, :], t[None, :])
    assert after > before


def test_the_shapes_of_the_exercise(rng):
    Delta, A = rng.normal(size=(32, 128)), rng.normal(size=(64, 128))
    assert (Delta @ A.T).shape == (32, 64) and Delta.mean(axis=1).shape == (32,)


CITATIONS = {
    "001_ce18104b0c2237dd.txt": ["5.3", "5.4", "5.5", "5.9", "5.11", "5.12", "1.1", "2.1"],
    "000_4a3fe56ce2bc8b6e.txt": ["6"],
    "002_ff83eee082f91d18.txt": ["1"],
    "003_00675a7c1b711b2c.txt": ["1"],
}


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seeds are not in this checkout")
def test_the_cited_equation_numbers_exist_in_the_seeds():
    for seed, tags in CITATIONS.items():
        source = (SEEDS / seed).read_text(encoding="utf-8")
        for tag in tags:
            assert re.search(r"\\tag\{" + re.escape(tag) + r"\}", source), (seed, tag)
    body = " ".join(text().split())
    for cited in ("seed 001's (5.3)–(5.5)", "Seed 002's (1)", "seed 001's (5.11)–(5.12)",
                  "seed 001's (5.9) and (5.12)", "seed 000's (6)", "seed 001's (1.1)",
                  "its (2.1)", "its (1)"):
        assert cited in body, cited


def test_the_algorithm_lines_cited_are_those_of_the_package():
    """The page cites lines 1-4, 5, 8-9 and 10 of seed 002's Algorithm 1, as network.py does."""
    source = (ROOT / "course_pkg" / "network.py").read_text(encoding="utf-8")
    for line, what in (("3", "z_l <- W_l a_{l-1} + b_l"), ("5", "delta_L <-"),
                       ("9", "dC/dW_l <- delta_l a_{l-1}^T"), ("10", "delta_{l-1} <-")):
        assert re.search(rf"^{line}\s+{re.escape(what)}", source, re.M), line
    body = " ".join(text().split())
    for cited in ("lines 1–4 of its Algorithm 1", "line 5 of seed 002's Algorithm 1",
                  "line 10 of its Algorithm 1", "lines 8–9 of Algorithm 1"):
        assert cited in body, cited


def test_every_equation_is_labelled_and_every_chapter_exists():
    body = text()
    labels = re.findall(r"^\$\$ \((sum-[A-Za-z-]+)\)$", body, re.M)
    assert labels == ["sum-forward", "sum-loss", "sum-delta-L", "sum-recursion",
                      "sum-gradients", "sum-batch", "sum-step", "sum-node"]
    for doc in set(re.findall(r"\{doc\}`([a-z_]+)`", body)):
        assert (ROOT / "book" / f"{doc}.md").is_file(), doc


def test_exercise_a_network_without_activations():
    """sum-ex-linear: identity activations give delta_1 = W_2^T ... W_L^T delta_L and one
    affine map W_L ... W_1 x + c."""
    rng = np.random.default_rng(13)
    net = cp.Network([3, 4, 5, 2], "identity", loss="squared_error", seed=6)
    for b in net.biases:
        b += rng.normal(size=b.shape)
    X, Y = rng.normal(size=(1, 3)), rng.normal(size=(1, 2))
    _, _, db = net.loss_and_gradients(X, Y)
    W = net.weights
    np.testing.assert_allclose(db[0], W[1].T @ W[2].T @ db[2], rtol=1e-12)
    product = W[2] @ W[1] @ W[0]
    c = net.forward(np.zeros((1, 3)))[1][3][:, 0]
    Xs = rng.normal(size=(5, 3))
    np.testing.assert_allclose(net.forward(Xs)[1][3], product @ Xs.T + c[:, None], rtol=1e-12)
