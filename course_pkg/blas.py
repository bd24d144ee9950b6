"""C <- alpha A B + beta C: the one BLAS call of a training step that NumPy does not offer.

``numpy.matmul(A, B, out=C)`` is a BLAS ``gemm`` that overwrites C (beta = 0). The folded
gradient step of :mod:`course_pkg.workspace` needs beta = 1 on C = W_l, so that
W_l <- W_l - delta_l a_{l-1}^T happens inside the product and the gradient is never stored.
:func:`gemm` makes that call in the BLAS library that NumPy itself links, so that every product
of the course (``@`` everywhere, and this one) runs in one library with one pool of threads.
NumPy's wheels bring OpenBLAS built with 64-bit integers, whose C interface names end in
``64_`` (``scipy_cblas_dgemm64_``); it is reached with ``ctypes`` and checked once against
``@`` on a small product. Where NumPy links another BLAS (Accelerate, MKL, a system OpenBLAS),
:func:`gemm` calls SciPy's wrapper of its own BLAS instead (``scipy.linalg.blas``).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112       # the CBLAS enumerations
_TYPES = {np.dtype(np.float64): ("d", ctypes.c_double), np.dtype(np.float32): ("s", ctypes.c_float)}


def gemm(alpha: float, A: np.ndarray, B: np.ndarray, beta: float, C: np.ndarray) -> None:
    """C <- alpha A B + beta C, in C's own memory.

    Parameters
    ----------
    alpha, beta
        The scalars of the update.
    A, B
        Matrices of shapes (m, k) and (k, n). One stored by rows or by columns, in C's dtype,
        is read where it is (a transposed view too); any other is copied first.
    C
        The (m, n) matrix that is updated, stored by rows or by columns, of the same dtype
        (float32 or float64).
    """
    if not (C.flags.c_contiguous or C.flags.f_contiguous):
        raise ValueError("gemm updates C in its own memory: C must be stored by rows or by "
                         f"columns, got strides {C.strides} for shape {C.shape}")
    if not C.flags.writeable:
        raise ValueError("gemm updates C in its own memory: C is read-only")
    routine = _LIBRARY.get(C.dtype)
    A, B = _operand(A, C.dtype), _operand(B, C.dtype)
    if not C.flags.c_contiguous:                     # C stored by columns: C^T = B^T A^T
        A, B, C = B.T, A.T, C.T
    routine(alpha, A, B, beta, C)


def library() -> str:
    """Which BLAS :func:`gemm` calls: NumPy's (through ctypes) or SciPy's."""
    numpy_s = _LIBRARY.get(np.dtype(np.float64)) is not _scipy_gemm
    return "NumPy's BLAS" if numpy_s else "SciPy's BLAS"


def _operand(M: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """M as BLAS must read it: of C's dtype, stored by rows or by columns (else a copy)."""
    if M.dtype != dtype or not (M.flags.c_contiguous or M.flags.f_contiguous):
        return np.ascontiguousarray(M, dtype=dtype)
    return M


def _stored_by_rows(M: np.ndarray) -> tuple[np.ndarray, int]:
    """(array, CBLAS transposition) with op(array) = M and array stored by rows."""
    return (M, _NO_TRANS) if M.flags.c_contiguous else (M.T, _TRANS)


def _address(M: np.ndarray) -> int:
    """The address of the first entry of M (C-contiguous, non-empty)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(M))   # fast: ~0.3 us
    except TypeError:                                           # a read-only array
        return M.ctypes.data


def _bind_cblas(dtype: np.dtype) -> Callable[..., None] | None:
    """NumPy's ``cblas_?gemm`` with 64-bit integers, or None where NumPy does not bring it."""
    letter, scalar = _TYPES[dtype]
    try:
        from numpy._core import _multiarray_umath as core
    except ImportError:                                          # NumPy 1.26
        from numpy.core import _multiarray_umath as core
    try:
        handle = ctypes.CDLL(core.__file__)
    except OSError:
        return None
    for name in (f"scipy_cblas_{letter}gemm64_", f"cblas_{letter}gemm64_"):
        function = getattr(handle, name, None)
        if function is not None:
            break
    else:
        return None
    n, p = ctypes.c_int64, ctypes.c_void_p
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, n, n, n, scalar, p, n, p, n,
                         scalar, p, n]
    function.restype = None

    def cblas_gemm(alpha: float, A: np.ndarray, B: np.ndarray, beta: float,
                   C: np.ndarray) -> None:
        (m, k), nc = A.shape, C.shape[1]
        if C.size == 0 or k == 0:                  # no product: C <- beta C (0 if beta = 0)
            if beta:
                C *= beta
            else:
                C.fill(0)
            return
        (a, trans_a), (b, trans_b) = _stored_by_rows(A), _stored_by_rows(B)
        function(_ROW_MAJOR, trans_a, trans_b, m, nc, k, alpha, _address(a), a.shape[1],
                 _address(b), b.shape[1], beta, _address(C), nc)

    return cblas_gemm if _agrees_with_matmul(cblas_gemm, dtype) else None


def _scipy_gemm(alpha: float, A: np.ndarray, B: np.ndarray, beta: float, C: np.ndarray) -> None:
    """The same update by ``scipy.linalg.blas.?gemm``, which reads matrices stored by columns:
    C (stored by rows) is updated as C^T = B^T A^T."""
    from scipy.linalg import blas

    routine = blas.dgemm if C.dtype == np.float64 else blas.sgemm
    (a, trans_a), (b, trans_b) = _stored_by_columns(B.T), _stored_by_columns(A.T)
    routine(alpha, a, b, beta, C.T, trans_a=trans_a, trans_b=trans_b, overwrite_c=1)


def _stored_by_columns(M: np.ndarray) -> tuple[np.ndarray, int]:
    """(array, transposition flag of SciPy's wrappers) with op(array) = M, array by columns."""
    return (M, 0) if M.flags.f_contiguous else (M.T, 1)


def _agrees_with_matmul(routine: Callable[..., None], dtype: np.dtype) -> bool:
    """One small update by ``routine`` against NumPy's own product, both storage orders."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((3, 2)).astype(dtype), rng.standard_normal((4, 2)).astype(dtype).T
    C = rng.standard_normal((3, 4)).astype(dtype)
    expected = 2.0 * (A @ B) + C
    routine(2.0, A, B, 1.0, C)
    return bool(np.allclose(C, expected, rtol=1e-4, atol=1e-4))


class _Library(dict):
    """gemm by dtype, bound at the first use of that dtype."""

    def get(self, dtype: Any) -> Callable[..., None]:
        routine = dict.get(self, dtype)
        if routine is None:
            dtype = np.dtype(dtype)
            if dtype not in _TYPES:
                raise TypeError(f"gemm needs float32 or float64 arrays, got {dtype}")
            routine = self[dtype] = _bind_cblas(dtype) or _scipy_gemm
        return routine


_LIBRARY = _Library()
