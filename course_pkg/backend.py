"""Which array library does the arithmetic.

The package is written once against the Array API standard, so the same code runs on NumPy
(the default), on CuPy (a CUDA GPU) and on any library that provides an Array API namespace,
such as ``array_api_strict`` or PyTorch. This module turns the user's ``backend=`` argument
into a namespace ``xp`` and moves arrays in and out of it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import array_namespace

GPU_INSTALL = 'pip install "course_pkg[gpu]"'
DTYPES = ("float64", "float32")


class BackendUnavailableError(RuntimeError):
    """The requested array library, or the device it needs, is not available here."""


def _cupy() -> ModuleType:
    try:
        import cupy
    except ImportError as err:
        raise BackendUnavailableError(
            f"backend='cupy' needs CuPy, which is not installed; install it with {GPU_INSTALL}"
        ) from err
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken
        raise BackendUnavailableError(
            f"backend='cupy' needs a CUDA device, and CUDA reported: {err}. "
            f"On a machine with an NVIDIA GPU, install CuPy with {GPU_INSTALL}"
        ) from err
    if count == 0:
        raise BackendUnavailableError(
            f"backend='cupy' needs a CUDA device and none was found; "
            f"on a machine with an NVIDIA GPU, install CuPy with {GPU_INSTALL}"
        )
    return array_namespace(cupy.zeros(1))


def get_namespace(backend: str | ModuleType = "numpy") -> ModuleType:
    """Return the Array API namespace ``xp`` for ``backend``.

    Parameters
    ----------
    backend
        ``"numpy"`` (the default), ``"cupy"``, the importable name of an array library, or the
        library's module itself (``array_api_strict``, ``torch``, ...).

    Raises
    ------
    BackendUnavailableError
        If the library cannot be imported, or ``"cupy"`` has no CUDA device.
    ValueError
        If ``backend`` is neither a string nor a module.
    """
    if isinstance(backend, str):
        if backend == "numpy":
            return np
        if backend == "cupy":
            return _cupy()
        try:
            backend = importlib.import_module(backend)
        except ImportError as err:
            raise BackendUnavailableError(
                f"backend={backend!r} is not an importable array library; "
                "expected 'numpy', 'cupy' or an Array API namespace module"
            ) from err
    if not isinstance(backend, ModuleType):
        raise ValueError(
            f"backend must be 'numpy', 'cupy' or an array library module, got {backend!r}"
        )
    if backend is np:
        return np
    if backend.__name__ == "cupy":
        return _cupy()
    if not hasattr(backend, "asarray"):
        raise ValueError(f"backend module {backend.__name__!r} has no asarray(); "
                         "expected an Array API namespace")
    return array_namespace(backend.asarray([0.0]))


def dtype_of(xp: ModuleType, dtype: str) -> Any:
    """The namespace's floating dtype named ``"float64"`` or ``"float32"``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return getattr(xp, dtype)


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any supported library to a NumPy array (on the host)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "get"):  # CuPy
        return x.get()
    if hasattr(x, "detach"):  # PyTorch
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError, RuntimeError):
        # array_api_strict refuses implicit conversion but exports DLPack
        return np.from_dlpack(x)
