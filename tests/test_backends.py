"""The same network on every array library gives the same losses and gradients.

NumPy is the reference. ``array_api_strict`` (the Array API standard and nothing more) and
PyTorch run on the CPU; the tests marked ``gpu`` run CuPy and skip cleanly where CuPy or a CUDA
device is missing.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import course_pkg as cp
from course_pkg.backend import GPU_INSTALL, BackendUnavailableError

CASES = {
    "relu-softmax-ce": ([4, 6, 5, 3], ["relu", "sigmoid", "softmax"], "cross_entropy"),
    "tanh-identity-half": ([3, 7, 2], ["tanh", "identity"], "half_squared_error"),
    "sigmoid-tanh-sq": ([5, 4, 4, 3], ["sigmoid", "relu", "tanh"], "squared_error"),
}


def batch(net: cp.Network, n: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, net.sizes[0]))
    if net.loss_name == "cross_entropy":
        return X, rng.integers(0, net.sizes[-1], size=n)
    return X, rng.standard_normal((n, net.sizes[-1]))


def compare_with_numpy(backend, case: str, dtype: str = "float64", tol: float = 1e-12):
    """Loss, gradients and one train_step on ``backend`` against NumPy, same parameters."""
    sizes, activations, loss = CASES[case]
    reference = cp.Network(sizes, activations, loss, seed=3, dtype=dtype)
    other = reference.copy(backend=backend)
    X, Y = batch(reference)
    xp = other.xp
    loss_ref, dW_ref, db_ref = reference.loss_and_gradients(X, Y)
    loss_other, dW, db = other.loss_and_gradients(xp.asarray(X), xp.asarray(Y))
    assert abs(loss_ref - loss_other) <= tol * max(1.0, abs(loss_ref))
    for got, want in zip([*dW, *db], [*dW_ref, *db_ref], strict=True):
        assert type(got) is not np.ndarray or xp is np   # the library's own arrays come back
        np.testing.assert_allclose(cp.to_numpy(got), want, rtol=tol, atol=tol)
    reference.train_step(X, Y, 0.1)
    other.train_step(xp.asarray(X), xp.asarray(Y), 0.1)
    for got, want in zip(other.weights, reference.weights, strict=True):
        np.testing.assert_allclose(cp.to_numpy(got), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(cp.to_numpy(other.predict(xp.asarray(X))), reference.predict(X),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CASES)
def test_array_api_strict_matches_numpy(case):
    import array_api_strict

    compare_with_numpy(array_api_strict, case)


@pytest.mark.parametrize("case", CASES)
def test_array_api_strict_float32(case):
    import array_api_strict

    compare_with_numpy(array_api_strict, case, dtype="float32", tol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_torch_cpu_matches_numpy(case):
    torch = pytest.importorskip("torch", reason="torch is in the 'test' extra")
    compare_with_numpy(torch, case)


def test_backend_by_name():
    net = cp.Network([2, 3, 1], backend="array_api_strict")
    assert "array_api_strict" in net.xp.__name__


def cupy_or_skip():
    try:
        return cp.get_namespace("cupy")
    except BackendUnavailableError as err:
        pytest.skip(f"no CuPy with a CUDA device here: {err}")


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES)
def test_cupy_matches_numpy(case):
    cupy_or_skip()
    compare_with_numpy("cupy", case, tol=1e-10)


@pytest.mark.gpu
def test_cupy_float32_and_training():
    cupy_or_skip()
    compare_with_numpy("cupy", "relu-softmax-ce", dtype="float32", tol=1e-4)
    X, X_test, y, y_test = cp.load_digits_split()
    net = cp.Network([64, 32, 10], ["relu", "softmax"], "cross_entropy", backend="cupy")
    cp.train(net, X, y, lr=0.1, epochs=20, batch_size=16, progress=False)
    assert cp.accuracy(net, X_test, y_test) >= 0.95  # as on the CPU (tests/test_training.py)


def test_cupy_missing_names_the_gpu_extra(monkeypatch):
    """Without CuPy (simulated by blocking its import), the error says how to install it."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(BackendUnavailableError) as info:
        cp.Network([2, 2], backend="cupy")
    assert GPU_INSTALL in str(info.value)
    assert GPU_INSTALL == 'pip install "course_pkg[gpu]"'


def test_importing_the_package_does_not_import_cupy_or_torch():
    code = ("import sys, course_pkg as cp; cp.Network([2, 2]).loss([[0.0, 1.0]], [[1.0, 0.0]]);"
            "print(sorted(m for m in ('cupy', 'torch', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("backend", [42, "no_such_array_library"])
def test_unknown_backend(backend):
    with pytest.raises((ValueError, BackendUnavailableError), match="numpy"):
        cp.Network([2, 2], backend=backend)
