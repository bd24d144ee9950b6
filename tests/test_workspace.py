"""course_pkg.workspace: the buffers and BLAS calls of a NumPy training step.

Each operation of :class:`Workspace` is compared with the allocating formula of
:class:`ArrayOps` (the lines of Algorithm 1 of ``002_ff83eee082f91d18.txt`` written as plain
expressions); the folded update W_l <- W_l - delta_l a_{l-1}^T is checked to happen in place;
a step in the steady state is checked to allocate nothing of the size of a layer; the input
checks (all_finite, labels_in_range) are checked on every kind of bad entry.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import course_pkg as cp
from course_pkg import activations as act
from course_pkg import blas, workspace
from course_pkg.network import descend, feed_forward
from course_pkg.workspace import (
    MAX_WORKSPACES,
    ArrayOps,
    Workspace,
    all_finite,
    labels_in_range,
    ops_for,
)

DTYPES = {"float64": 1e-12, "float32": 2e-5}


def F(rng, p, n, dtype):
    """A (p, n) array stored by columns (the workspace reads either layout)."""
    return np.asfortranarray(rng.standard_normal((p, n)).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_and_activations_equal_the_plain_formulas(dtype, rng):
    tol = DTYPES[dtype]
    sizes, n = [6, 5, 4], 7
    ws, plain = Workspace(sizes, dtype, n), ArrayOps(np)
    W = rng.standard_normal((5, 6)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    x = rng.standard_normal((n, 6)).astype(dtype).T
    z = ws.affine(W, x, b, 1)
    assert z is ws.z[1]
    np.testing.assert_allclose(z, W @ x + b[:, None], rtol=tol, atol=tol)
    for S in (act.relu, act.tanh, act.identity, act.sigmoid, act.softmax):
        np.testing.assert_allclose(ws.activation(S, z, 1), plain.activation(S, z.copy(), 1),
                                   rtol=tol, atol=tol)
    assert ws.activation(act.relu, z, 1) is ws.a[1]          # into the buffer
    np.testing.assert_allclose(ws.activation(act.softmax, z, 1).sum(axis=0), 1.0, rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "tanh", "identity", "sigmoid"])
def test_error_below_is_line_10(dtype, name, rng):
    """delta_l = (W_{l+1}^T delta_{l+1}) * S'(z_l), with a_l = S(z_l) from the workspace."""
    tol = DTYPES[dtype]
    sizes, n = [3, 6, 4], 5
    ws = Workspace(sizes, dtype, n)
    S, S_prime = act.get(name)
    z = ws.z[1]
    z[...] = rng.standard_normal((6, n))
    a = ws.activation(S, z, 1)
    W2 = rng.standard_normal((4, 6)).astype(dtype)
    delta2 = F(rng, 4, n, dtype)
    expected = (W2.T @ delta2) * S_prime(z, np)
    np.testing.assert_allclose(ws.error_below(W2, delta2, S_prime, z, a, 1), expected,
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("fold_min", [0, 10**9])
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_step_is_taken_in_place(dtype, fold_min, monkeypatch, rng):
    """W_l <- W_l - delta_l a_{l-1}^T in W_l's own memory (by one gemm, or by a product in a
    buffer for a small W_l); b_l <- b_l - delta_l 1 likewise."""
    monkeypatch.setattr(workspace, "FOLD_MIN", fold_min)
    tol = DTYPES[dtype]
    ws = Workspace([6, 5], dtype, 8)
    W = rng.standard_normal((5, 6)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    delta, a_prev = F(rng, 5, 8, dtype), F(rng, 6, 8, dtype)
    W_before, b_before = W.copy(), b.copy()
    address = W.__array_interface__["data"][0], b.__array_interface__["data"][0]
    ws.subtract_product(W, delta, a_prev)
    ws.subtract_column_sum(b, delta)
    assert (W.__array_interface__["data"][0], b.__array_interface__["data"][0]) == address
    np.testing.assert_allclose(W, W_before - delta @ a_prev.T, rtol=tol, atol=tol)
    np.testing.assert_allclose(b, b_before - delta.sum(axis=1), rtol=tol, atol=tol)
    # stored by columns, W is still updated in place; a strided view gets the plain formula
    for W_other in (np.asfortranarray(W_before), np.repeat(W_before, 2, axis=1)[:, ::2]):
        ws.subtract_product(W_other, delta, a_prev)
        np.testing.assert_allclose(W_other, W_before - delta @ a_prev.T, rtol=tol, atol=tol)


CASES = [
    ([7, 9, 8, 4], ["relu", "relu", "softmax"], "cross_entropy"),
    ([5, 6, 3], ["tanh", "identity"], "half_squared_error"),
    ([5, 6, 3], ["sigmoid", "tanh"], "squared_error"),
    ([4, 3], ["relu"], "squared_error"),
]


def batch(rng, sizes, loss, n, dtype):
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        return X, rng.integers(0, sizes[-1], size=n)
    return X, rng.standard_normal((n, sizes[-1])).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("sizes", "names", "loss"), CASES)
def test_train_step_equals_the_allocating_step(sizes, names, loss, dtype, rng):
    """Workspace + descend against ArrayOps + back_propagate: theta - lr * grad, the same loss."""
    tol = DTYPES[dtype]
    net = cp.Network(sizes, names, loss, seed=2, dtype=dtype)
    twin = net.copy()
    lr = 0.3
    for n in (9, 1, 9):   # a second batch size, then the first again (buffers reused)
        X, Y = batch(rng, sizes, loss, n, dtype)
        y = Y if Y.ndim == 1 else Y.T
        z, a = feed_forward(twin.W, twin.b, twin.S, X.T, np)            # allocating
        L = twin.L
        expected_loss = twin._mean_cost(z, a, Y)
        delta_L = cp.losses.output_delta(loss, twin.S_prime[L], z[L], a[L], y, np) * (lr / n)
        dW, db, _ = cp.back_propagate(twin.W, z, a, delta_L, twin.S_prime)
        for l in dW:
            twin.W[l] -= dW[l]
            twin.b[l] -= db[l]
        assert net.train_step(X, Y, lr) == pytest.approx(expected_loss, rel=tol)
        for got, want in zip([*net.weights, *net.biases], [*twin.weights, *twin.biases],
                             strict=True):
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert sorted(net._workspaces) == [1, 9]


@pytest.mark.parametrize("dtype", DTYPES)
def test_folded_and_plain_products_give_the_same_step(monkeypatch, dtype, rng):
    """Whether a product is added into z_l or W_l by one gemm (FOLD_MIN = 0) or formed in a
    buffer first (FOLD_MIN beyond every size), the step is the same."""
    tol = DTYPES[dtype]
    sizes, names, loss = CASES[0]
    X, Y = batch(rng, sizes, loss, 9, dtype)
    nets, losses, calls = [], [], []
    for fold_min in (0, 10**9):
        monkeypatch.setattr(workspace, "FOLD_MIN", fold_min)
        monkeypatch.setattr(workspace, "gemm", lambda *args, tag=fold_min: calls.append(tag)
                            or blas.gemm(*args))
        net = cp.Network(sizes, names, loss, seed=4, dtype=dtype)
        losses.append(net.train_step(X, Y, 0.2))
        nets.append(net)
    assert calls == [0] * 6                        # three z_l and three W_l, by gemm only
    assert losses[0] == pytest.approx(losses[1], rel=tol)
    for got, want in zip(nets[1].weights + nets[1].biases, nets[0].weights + nets[0].biases,
                         strict=True):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_a_strided_batch_gives_the_step_of_its_copy(rng):
    """X[::2] (rows two apart) feeds gemm through a copy: the same step as a contiguous X."""
    sizes, n = [40, 200, 10], 96
    X, y = batch(rng, sizes, "cross_entropy", 2 * n, "float64")
    strided, contiguous = (cp.Network(sizes, ["relu", "softmax"], "cross_entropy", seed=3)
                           for _ in range(2))
    assert strided._workspaces == {} and 200 * n >= workspace.FOLD_MIN
    assert strided.train_step(X[::2], y[::2], 0.1) == contiguous.train_step(
        np.ascontiguousarray(X[::2]), y[::2].copy(), 0.1)
    for got, want in zip(strided.weights + strided.biases,
                         contiguous.weights + contiguous.biases, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("sizes", "names", "loss"), CASES)
def test_descend_with_array_ops_is_the_same_step(sizes, names, loss, rng):
    """descend() is generic: with ArrayOps it takes the step of back_propagate's gradient."""
    net = cp.Network(sizes, names, loss, seed=5)
    X, Y = batch(rng, sizes, loss, 6, "float64")
    _, dW, db = net.loss_and_gradients(X, Y)
    W0, b0 = [w.copy() for w in net.weights], [v.copy() for v in net.biases]
    y = Y if Y.ndim == 1 else Y.T
    ops = ArrayOps(np)
    z, a = feed_forward(net.W, net.b, net.S, X.T, np, ops)
    L = net.L
    delta_L = ops.output_delta(loss, net.S_prime[L], z[L], a[L], y) * (0.5 / 6)
    descend(net.W, net.b, z, a, delta_L, net.S_prime, ops)
    for l in range(L):
        np.testing.assert_allclose(net.weights[l], W0[l] - 0.5 * dW[l], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(net.biases[l], b0[l] - 0.5 * db[l], rtol=1e-13, atol=1e-15)


def step_peaks(sizes, n, rng, steps=3):
    """The tracemalloc peak of each of a few steps after the first, and the workspace."""
    net = cp.Network(sizes, ["relu"] * (len(sizes) - 2) + ["softmax"], "cross_entropy")
    X, y = batch(rng, sizes, "cross_entropy", n, "float64")
    net.train_step(X, y, 0.01)
    peaks = []
    tracemalloc.start()
    try:
        for _ in range(steps):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            net.train_step(X, y, 0.01)
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    return peaks, net._workspaces[n]


def test_steady_state_step_allocates_nothing_the_size_of_a_layer(rng):
    """After the first step, a step reuses its buffers: what it allocates (NumPy's fixed cast
    buffer of 8192 entries, vectors of n numbers) does not grow with the layers, and stays far
    below one (p_l, n) array; z, a, delta are the same arrays at every step."""
    small, _ = step_peaks([100, 200, 200, 10], 128, rng)
    large, _ = step_peaks([100, 800, 800, 10], 512, rng)
    layer_bytes = 800 * 512 * 8                   # one z_l of the large network: 3.3 MB
    assert max(large) < layer_bytes / 30, large
    assert max(large) < max(small) + 32 * 1024, (small, large)
    X, y = batch(rng, [100, 800, 800, 10], "cross_entropy", 512, "float64")
    net = cp.Network([100, 800, 800, 10], ["relu", "relu", "softmax"], "cross_entropy")
    net.train_step(X, y, 0.01)
    ws = net._workspaces[512]
    buffers = [id(v) for d in (ws.z, ws.a, ws.delta) for v in d.values()]
    net.train_step(X, y, 0.01)
    assert [id(v) for d in (ws.z, ws.a, ws.delta) for v in d.values()] == buffers


def test_the_allocating_path_does_allocate_layer_sized_arrays(rng):
    """The measurement above can fail: ArrayOps (what the Array API path runs) allocates."""
    sizes, n = [100, 200, 200, 10], 128
    net = cp.Network(sizes, ["relu", "relu", "softmax"], "cross_entropy")
    X, y = batch(rng, sizes, "cross_entropy", n, "float64")
    tracemalloc.start()
    try:
        feed_forward(net.W, net.b, net.S, X.T, np)
        assert tracemalloc.get_traced_memory()[1] > 200 * n * 8
    finally:
        tracemalloc.stop()


def test_workspaces_are_kept_for_a_few_batch_sizes_only(rng):
    net = cp.Network([3, 4, 2], ["tanh", "identity"])
    for n in range(1, MAX_WORKSPACES + 3):
        X, Y = batch(rng, [3, 4, 2], "half_squared_error", n, "float64")
        net.train_step(X, Y, 0.1)
    assert len(net._workspaces) == MAX_WORKSPACES
    assert max(net._workspaces) == MAX_WORKSPACES + 2


def test_only_numpy_gets_a_workspace():
    """CuPy, torch, array_api_strict: ArrayOps, which allocates and calls no BLAS of its own."""
    import array_api_strict

    cache: dict = {}
    assert type(ops_for(array_api_strict, [2, 3], array_api_strict.float64, 4, cache)) is ArrayOps
    assert not cache
    assert isinstance(ops_for(np, [2, 3], np.float64, 4, cache), Workspace)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite_finds_every_bad_entry(dtype, bad, rng):
    X = rng.standard_normal((37, 29)).astype(dtype)
    assert all_finite(X, np) and all_finite(X.T, np) and all_finite(X[:, ::3], np)
    for index in [(0, 0), (36, 28), (17, 5), (36, 0)]:
        Y = X.copy()
        Y[index] = bad
        assert not all_finite(Y, np)
        assert not all_finite(np.asfortranarray(Y), np)
        assert not all_finite(Y[:, ::2] if index[1] % 2 == 0 else Y[:, 1::2], np)


def test_all_finite_accepts_huge_finite_numbers():
    """X . X overflows for entries near the largest float; the entrywise test then decides."""
    X = np.full((4, 3), np.finfo(np.float64).max)
    assert all_finite(X, np)
    assert all_finite(np.full((4, 3), 1e30, dtype=np.float32), np)


@pytest.mark.parametrize("dtype", ["int64", "int32", "int8", "uint16"])
def test_labels_in_range(dtype):
    y = np.array([0, 3, 9, 2], dtype=dtype)
    assert labels_in_range(y, 10, np)
    assert not labels_in_range(y, 9, np)
    if np.dtype(dtype).kind == "i":
        assert not labels_in_range(np.array([0, -1, 2], dtype=dtype), 10, np)
    assert labels_in_range(np.array([], dtype=dtype), 3, np)
    swapped = np.dtype(dtype).newbyteorder()              # stored in the other byte order
    assert labels_in_range(np.array([0, 3, 9], dtype=swapped), 10, np)
    assert not labels_in_range(np.array([0, 3, 10], dtype=swapped), 10, np)
