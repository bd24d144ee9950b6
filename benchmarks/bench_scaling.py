"""Timing tables of the efficiency chapter (``book/efficiency.md``).

Two measurements, each written as a CSV table with a JSON sidecar that records the machine, the
library versions and the date:

``python benchmarks/bench_scaling.py``
    One gradient by back-propagation (``net.loss_and_gradients``) against central finite
    differences (``course_pkg.finite_difference_gradients``, 2P forward passes) for networks
    of growing parameter count P, on one CPU thread -> ``cpu_scaling.csv``.

``python benchmarks/bench_scaling.py --gpu``
    One ``net.train_step`` on NumPy (the CPU, all its cores) against CuPy (the GPU), for growing
    hidden width and batch size -> ``gpu_scaling.csv``. CuPy is imported only in this mode. The
    GPU is timed twice: with the batch already on the device, and with the batch handed over as
    NumPy arrays (so that every step copies it to the device). Each GPU measurement waits for
    the device (``stream.synchronize()``) before the clock stops.

``--quick`` runs a tiny grid (for the tests); ``--out DIR`` writes somewhere else than
``benchmarks/``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import course_pkg as cp
from course_pkg.widgets.cost import cpu_name, time_gradients

HERE = Path(__file__).resolve().parent

CPU_WIDTHS = (4, 8, 16, 24, 32, 48, 64, 128, 256, 512)
CPU_FD_MAX_WIDTH = 48
GPU_WIDTHS = (64, 256, 1024, 4096)
GPU_BATCHES = (32, 256, 2048, 16384)
GPU_DTYPES = ("float32", "float64")


def machine_info() -> dict[str, Any]:
    """Where and when the numbers were taken."""
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "course_pkg": cp.__version__,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def write_table(rows: list[dict[str, Any]], info: dict[str, Any], path: Path) -> None:
    """Write ``rows`` to ``path`` (CSV) and ``info`` next to it (same name, .json)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {path} and {path.with_suffix('.json').name}")


def cpu_scaling(widths: tuple[int, ...], fd_max_width: int, n: int) -> list[dict[str, Any]]:
    """Back-propagation vs finite differences on networks [16, w, w, 4], batch n."""
    rows = []
    for width in widths:
        t = time_gradients([16, width, width, 4], n, repeats=5,
                           finite_differences=width <= fd_max_width)
        rows.append({"width": width, "batch": n, "parameters": int(t["P"]),
                     "forward_s": t["forward"], "backprop_s": t["backprop"],
                     "finite_differences_s": t["finite_differences"]})
        print(rows[-1], flush=True)
    return rows


def median_time(step: Callable[[], Any], sync: Callable[[], None], budget_s: float = 0.5,
                max_repeats: int = 50) -> float:
    """The median wall-clock time of ``step()``; ``sync()`` runs before each clock stop.

    Repeats until ``budget_s`` seconds are spent (at least three runs), after two untimed
    warm-up runs (CUDA kernels are compiled and cuBLAS is initialised on first use).
    """
    for _ in range(2):
        step()
    sync()
    times: list[float] = []
    while len(times) < 3 or (sum(times) < budget_s and len(times) < max_repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_train_step(net: cp.Network, X: Any, y: Any, sync: Callable[[], None]) -> float:
    """The median time of one ``net.train_step(X, y, 0.01)``, waiting for ``sync()``."""
    return median_time(lambda: net.train_step(X, y, 0.01), sync)


def gpu_info(cupy: Any) -> dict[str, Any]:
    """The GPU, driver and CUDA versions as CuPy reports them."""
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    return {"gpu": name.decode() if isinstance(name, bytes) else str(name),
            "gpu_memory_GiB": round(props["totalGlobalMem"] / 2**30, 1),
            "cupy": cupy.__version__,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
            "cuda_driver": cupy.cuda.runtime.driverGetVersion()}


def gpu_scaling(widths: tuple[int, ...], batches: tuple[int, ...],
                dtypes: tuple[str, ...]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One train_step on NumPy and on CuPy for networks [w, w, w, 10] with a softmax output."""
    cp.get_namespace("cupy")  # a clear BackendUnavailableError when there is no CuPy or GPU
    import cupy

    def no_sync() -> None:
        return None

    def gpu_sync() -> None:
        cupy.cuda.get_current_stream().synchronize()

    rows = []
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        for width in widths:
            for batch in batches:
                sizes = [width, width, width, 10]
                X = rng.normal(size=(batch, width)).astype(dtype)
                y = rng.integers(0, 10, size=batch)
                cpu = cp.Network(sizes, loss="cross_entropy", dtype=dtype, seed=0)
                gpu = cpu.copy(backend="cupy")
                row = {
                    "dtype": dtype, "width": width, "batch": batch,
                    "parameters": cpu.num_parameters,
                    "numpy_s": time_train_step(cpu, X, y, no_sync),
                    "cupy_s": time_train_step(gpu, cupy.asarray(X), cupy.asarray(y), gpu_sync),
                    "cupy_host_data_s": time_train_step(gpu, X, y, gpu_sync),
                }
                row["speedup"] = row["numpy_s"] / row["cupy_s"]
                rows.append(row)
                print(row, flush=True)
                cupy.get_default_memory_pool().free_all_blocks()
    return rows, gpu_info(cupy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", action="store_true",
                        help="time train_step on NumPy vs CuPy (needs CuPy and a CUDA GPU)")
    parser.add_argument("--quick", action="store_true", help="a tiny grid, for the tests")
    parser.add_argument("--out", type=Path, default=HERE, help="the folder for the tables")
    args = parser.parse_args(argv)
    info = machine_info()
    if args.gpu:
        grid = ((64, 128), (32, 256), ("float32",)) if args.quick else \
            (GPU_WIDTHS, GPU_BATCHES, GPU_DTYPES)
        try:
            rows, device = gpu_scaling(*grid)
        except cp.BackendUnavailableError as err:
            print(f"bench_scaling.py --gpu: {err}", file=sys.stderr)
            return 2
        info.update(device, numpy_threads="all cores (BLAS default)")
        write_table(rows, info, args.out / "gpu_scaling.csv")
    else:
        widths, fd_max = ((4, 8, 16), 8) if args.quick else (CPU_WIDTHS, CPU_FD_MAX_WIDTH)
        rows = cpu_scaling(widths, fd_max, n=256)
        info.update(numpy_threads=1, network="[16, w, w, 4], tanh, half squared error")
        write_table(rows, info, args.out / "cpu_scaling.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
