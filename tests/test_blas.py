"""course_pkg.blas: C <- alpha A B + beta C in C's own memory, checked against NumPy's ``@``.

Both routes are checked: NumPy's own BLAS reached through ctypes (what NumPy's wheels bring,
and what CI runs) and SciPy's wrapper (where NumPy links another BLAS); every storage order of
A, B and C, read-only operands, transposed views, an empty inner dimension, and the errors.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from course_pkg import blas

TOLERANCE = {"float64": 1e-12, "float32": 1e-5}
ROUTES = {"numpy": blas._bind_cblas, "scipy": lambda dtype: blas._scipy_gemm}


@pytest.fixture(params=sorted(ROUTES))
def route(request, monkeypatch):
    """Make blas.gemm take one route for both dtypes."""
    library = blas._Library()
    for dtype in map(np.dtype, TOLERANCE):
        routine = ROUTES[request.param](dtype)
        if routine is None:
            pytest.fail(f"NumPy {np.__version__} brings no 64-bit OpenBLAS gemm for {dtype}: "
                        "expected with NumPy's wheels")
        library[dtype] = routine
    monkeypatch.setattr(blas, "_LIBRARY", library)
    return request.param


@pytest.mark.parametrize("dtype", TOLERANCE)
@pytest.mark.parametrize("orders", list(itertools.product("CF", repeat=3)))
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 1.0), (-1.0, 1.0), (0.5, 0.0), (2.0, -3.0)])
def test_gemm_is_alpha_AB_plus_beta_C_in_place(route, dtype, orders, alpha, beta, rng):
    tol = TOLERANCE[dtype]
    A, B, C = (np.asarray(rng.standard_normal(shape), dtype=dtype, order=order)
               for shape, order in zip([(5, 3), (3, 4), (5, 4)], orders, strict=True))
    expected = alpha * (A.astype(float) @ B.astype(float)) + beta * C.astype(float)
    address = C.__array_interface__["data"][0]
    blas.gemm(alpha, A, B, beta, C)
    assert C.__array_interface__["data"][0] == address
    np.testing.assert_allclose(C, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", TOLERANCE)
def test_gemm_reads_transposed_and_read_only_operands(route, dtype, rng):
    """W <- W - delta a^T with a^T a view of a read-only array, as for the input layer."""
    tol = TOLERANCE[dtype]
    W = rng.standard_normal((6, 4)).astype(dtype)
    delta = rng.standard_normal((6, 9)).astype(dtype)
    X = rng.standard_normal((9, 4)).astype(dtype)
    X.flags.writeable = False
    expected = W - delta @ X
    blas.gemm(-1.0, delta, X.T.T, 1.0, W)
    np.testing.assert_allclose(W, expected, rtol=tol, atol=tol)
    a = rng.standard_normal((4, 9)).astype(dtype)
    expected = W - delta @ a.T
    blas.gemm(-1.0, delta, a.T, 1.0, W)
    np.testing.assert_allclose(W, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", TOLERANCE)
def test_gemm_copies_strided_and_other_dtype_operands_but_never_C(route, dtype, rng):
    """A row-strided batch (X[::2]) or operands of another dtype are read correctly, never as
    raw memory of the wrong layout or type; a C that cannot be updated in place is refused."""
    tol = TOLERANCE[dtype]
    W = rng.standard_normal((6, 4)).astype(dtype)
    X = rng.standard_normal((18, 4))[::2]               # float64, neither C- nor F-ordered
    delta = rng.standard_normal((6, 9)).astype(np.float32)
    expected = W - delta.astype(float) @ X
    blas.gemm(-1.0, delta, X, 1.0, W)
    np.testing.assert_allclose(W, expected, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="stored by rows or by columns"):
        blas.gemm(1.0, delta, X, 1.0, np.zeros((12, 4), dtype)[::2])
    W.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        blas.gemm(1.0, delta, X, 1.0, W)
    np.testing.assert_allclose(W, expected, rtol=tol, atol=tol)


def test_gemm_with_an_empty_inner_dimension_scales_C(route):
    """A B is the zero matrix: C <- beta C, and beta = 0 clears C, NaN included (as BLAS)."""
    C = np.full((3, 2), 2.0)
    blas.gemm(1.0, np.empty((3, 0)), np.empty((0, 2)), 0.5, C)
    np.testing.assert_array_equal(C, np.ones((3, 2)))
    C[0, 0] = np.nan
    blas.gemm(1.0, np.empty((3, 0)), np.empty((0, 2)), 0.0, C)
    np.testing.assert_array_equal(C, np.zeros((3, 2)))


def test_gemm_refuses_other_dtypes():
    A = np.ones((2, 2), dtype=np.int64)
    with pytest.raises(TypeError, match="float32 or float64"):
        blas.gemm(1.0, A, A, 1.0, A)


def test_numpy_wheels_get_numpy_s_own_blas():
    """Where NumPy was built on the OpenBLAS of its wheels, gemm calls that library, so that
    the whole training step runs in one BLAS library (and one pool of threads)."""
    config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    if config["name"] != "scipy-openblas":
        pytest.skip(f"NumPy links {config['name']}: SciPy's BLAS is the route there")
    assert blas.library() == "NumPy's BLAS"
    for dtype in map(np.dtype, TOLERANCE):
        assert blas._bind_cblas(dtype) is not None
