"""Time one ``Network.train_step`` against PyTorch, scikit-learn and the GEMM floor.

One SGD step on one batch is timed, in one process, for four implementations of the same
network (relu hidden layers, softmax output, cross-entropy, plain SGD without momentum or
weight decay):

* ``course_pkg``: ``Network.train_step(X, y, lr)``;
* PyTorch CPU: an equivalent ``nn.Sequential`` with ``nn.CrossEntropyLoss`` and ``optim.SGD``
  (zero_grad, forward, backward, step);
* scikit-learn: ``MLPClassifier(solver="sgd", batch_size=n).partial_fit`` on the batch;
* the GEMM floor: only the matrix products of Algorithm 1 in NumPy, L forward products
  W_l a_{l-1}, L weight-gradient products delta_l a_{l-1}^T and L - 1 delta products
  W_l^T delta_l (8 products for 784-512-512-10). No implementation of the step can beat it.

The implementations are timed in interleaved rounds (one call of each per round), so that the
load of a shared machine falls on all of them alike, and the table reports medians. All
libraries get the same number of threads: the BLAS thread count (``threadpoolctl``) and
``torch.set_num_threads``.

Usage::

    python benchmarks/bench_train_step.py            # CPU, writes benchmarks/results.md
    python benchmarks/bench_train_step.py --gpu      # CuPy, writes benchmarks/results_gpu.md
    python benchmarks/bench_train_step.py --quick    # few repeats, a smoke test
    python benchmarks/bench_train_step.py --threads 1 --clock cpu \
        --output benchmarks/results_cpu_1thread.md   # CPU time: robust on a shared machine
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import course_pkg as cp  # noqa: E402


@dataclass(frozen=True)
class Case:
    """One benchmark configuration."""

    sizes: tuple[int, ...]
    batch: int
    dtype: str
    repeats: int

    @property
    def label(self) -> str:
        return f"{'-'.join(map(str, self.sizes))}, n={self.batch}, {self.dtype}"


LR = 1e-3


def make_batch(case: Case, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random batch: X of shape (n, p_0) in the case's dtype, integer labels y."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((case.batch, case.sizes[0])).astype(case.dtype)
    y = rng.integers(0, case.sizes[-1], size=case.batch)
    return X, y


def course_step(case: Case, X, y, backend: str = "numpy") -> Callable[[], object]:
    L = len(case.sizes) - 1
    net = cp.Network(list(case.sizes), ["relu"] * (L - 1) + ["softmax"], loss="cross_entropy",
                     backend=backend, dtype=case.dtype)
    Xb, yb = net.xp.asarray(X), net.xp.asarray(y)
    return lambda: net.train_step(Xb, yb, LR)


def torch_step(case: Case, X, y) -> Callable[[], object]:
    import torch

    layers: list = []
    for p_in, p_out in zip(case.sizes[:-2], case.sizes[1:-1], strict=True):
        layers += [torch.nn.Linear(p_in, p_out), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(case.sizes[-2], case.sizes[-1]))
    model = torch.nn.Sequential(*layers).to(getattr(torch, case.dtype))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(Xt), yt)
        loss.backward()
        optimizer.step()
        return loss

    return step


def sklearn_step(case: Case, X, y) -> Callable[[], object]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    mlp = MLPClassifier(
        hidden_layer_sizes=case.sizes[1:-1], activation="relu", solver="sgd",
        batch_size=case.batch, learning_rate_init=LR, momentum=0.0, nesterovs_momentum=False,
        alpha=0.0, shuffle=False, random_state=0,
    )
    classes = np.arange(case.sizes[-1])
    mlp.partial_fit(X, y, classes=classes)
    return lambda: mlp.partial_fit(X, y)


def gemm_floor(case: Case, X, xp=np) -> Callable[[], object]:
    """Only the matrix products of one step, with the shapes and layouts of ``network.py``."""
    rng = np.random.default_rng(1)
    p, n = case.sizes, case.batch
    L = len(p) - 1
    W = {l: xp.asarray(rng.standard_normal((p[l], p[l - 1])).astype(case.dtype))
         for l in range(1, L + 1)}
    a = {l: xp.asarray(rng.standard_normal((p[l], n)).astype(case.dtype)) for l in range(L + 1)}
    a[0] = xp.asarray(X).T
    delta = {l: xp.asarray(rng.standard_normal((p[l], n)).astype(case.dtype))
             for l in range(1, L + 1)}

    def products():
        for l in range(1, L + 1):
            W[l] @ a[l - 1]                  # forward
        for l in range(L, 0, -1):
            delta[l] @ a[l - 1].T            # weight gradient
            if l > 1:
                W[l].T @ delta[l]            # delta of the layer below

    return products


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""wall: elapsed time, what a user waits. cpu: CPU time of the process (all its threads),
which other processes on a shared machine barely disturb; with one thread, the work done."""


def time_rounds(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 5,
                sync: Callable[[], None] = lambda: None,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per call of each function, interleaved: one call of each per round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            sync()
            times[name].append(clock() - start)
    return times


def page_faults_per_call(fn: Callable[[], object], calls: int = 10) -> float:
    """Minor page faults per call: memory that the allocator gave back and takes again."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    By default glibc serves blocks above a (dynamic) threshold with fresh ``mmap`` pages and
    trims the top of the heap when a large block is freed, so a step that frees ~10 MB of
    temporaries pays for the same pages again (zero-filled page faults) in the next step.
    Equivalent to starting Python with ``MALLOC_MMAP_THRESHOLD_=33554432
    MALLOC_TRIM_THRESHOLD_=268435456``. Applies to the whole process, so to every library
    timed here alike. Returns False where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
                    and libc.mallopt(M_TRIM_THRESHOLD, 256 * 2**20))
    except (OSError, AttributeError):
        return False


def blas_threads() -> int:
    from threadpoolctl import threadpool_info

    counts = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return max(counts) if counts else 1


def machine_info(threads: int | None) -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- command: `{' '.join(['python', *sys.argv])}` (from the repository root)",
        f"- machine: {platform.machine()}, {cpu}, {os.cpu_count()} logical CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start (the machine is shared)",
        f"- Python {platform.python_version()}, NumPy {np.__version__}, "
        f"course_pkg {cp.__version__}",
    ]
    if threads is not None:
        lines.append(f"- threads: {threads} for every library (BLAS via threadpoolctl, "
                     f"torch.set_num_threads({threads}))")
    return lines


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


CPU_HEADER = (
    "| network, batch, dtype | repeats | course_pkg ms | GEMM floor ms | course/GEMM "
    "| PyTorch ms | PyTorch/course | sklearn ms | sklearn/course | page faults/step |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def cpu_cases(quick: bool) -> list[Case]:
    scale = 0.05 if quick else 1.0
    return [
        Case((784, 512, 512, 10), 256, "float64", int(300 * scale)),
        Case((784, 512, 512, 10), 256, "float32", int(300 * scale)),
        Case((64, 32, 10), 32, "float64", int(3000 * scale)),
        Case((64, 32, 10), 32, "float32", int(3000 * scale)),
    ]


def cpu_table(cases: list[Case], threads: int, clock: str) -> list[str]:
    """Time the four implementations on each case; one markdown table row per case."""
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(limits=threads):
        for case in cases:
            X, y = make_batch(case)
            fns = {
                "course_pkg": course_step(case, X, y),
                "torch": torch_step(case, X, y),
                "sklearn": sklearn_step(case, X, y),
                "gemm": gemm_floor(case, X),
            }
            times = time_rounds(fns, case.repeats, clock=CLOCKS[clock])
            med = {name: statistics.median(t) for name, t in times.items()}
            faults = page_faults_per_call(fns["course_pkg"])
            c = med["course_pkg"]
            rows.append(
                f"| {case.label} | {case.repeats} | {fmt_ms(c)} | {fmt_ms(med['gemm'])} "
                f"| {c / med['gemm']:.2f} | {fmt_ms(med['torch'])} | {med['torch'] / c:.2f} "
                f"| {fmt_ms(med['sklearn'])} | {med['sklearn'] / c:.2f} | {faults:.0f} |"
            )
            print(rows[-1], flush=True)
    return rows


def standalone_row(case: Case, threads: int, clock: str) -> str:
    """Time course_pkg's train_step in a fresh process that imports nothing else."""
    import json
    import subprocess

    spec = json.dumps({"sizes": case.sizes, "batch": case.batch, "dtype": case.dtype,
                       "repeats": case.repeats, "threads": threads, "clock": clock})
    out = subprocess.run([sys.executable, __file__, "--standalone", spec],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    row = (f"| {case.label} | {case.repeats} | {fmt_ms(result['median'])} "
           f"| {result['faults']:.0f} |")
    print(row, "(fresh process)", flush=True)
    return row


def run_standalone(spec: str) -> None:
    """The child of :func:`standalone_row`: print {"median": s, "faults": n} as JSON."""
    import json

    from threadpoolctl import threadpool_limits

    args = json.loads(spec)
    case = Case(tuple(args["sizes"]), args["batch"], args["dtype"], args["repeats"])
    X, y = make_batch(case)
    step = course_step(case, X, y)
    with threadpool_limits(limits=args["threads"]):
        times = time_rounds({"course_pkg": step}, case.repeats, clock=CLOCKS[args["clock"]])
        faults = page_faults_per_call(step)
    print(json.dumps({"median": statistics.median(times["course_pkg"]), "faults": faults}))


def run_cpu(quick: bool, threads: int | None = None, clock: str = "wall") -> str:
    import sklearn
    import torch

    threads = threads or blas_threads()
    torch.set_num_threads(threads)
    info = machine_info(threads)
    cases = cpu_cases(quick)
    alone_rows = [standalone_row(case, threads, clock) for case in cases[:2]]
    default_rows = cpu_table(cases, threads, clock)
    kept = keep_freed_memory()
    kept_rows = cpu_table(cases, threads, clock) if kept else ["(not glibc: skipped)"]

    lines = [
        "# Benchmark: one training step (CPU)",
        "",
        "One SGD step (forward, backward, update) of a relu network with a softmax output and",
        "cross-entropy loss on one batch, written by `benchmarks/bench_train_step.py`.",
        f"Times are medians in milliseconds of {clock} time (`{CLOCKS[clock].__name__}`) over",
        "interleaved rounds (one call of each per round);",
        "`PyTorch/course` and `sklearn/course` divide their median by course_pkg's (> 1: slower",
        "than course_pkg); `course/GEMM` divides course_pkg's median by the GEMM floor's (the",
        "floor = only the 2L - 1 matrix products of the step, in NumPy). `page faults/step` are",
        "course_pkg's minor page faults per step.",
        "",
        "## Default process (glibc malloc as it comes)",
        "",
        CPU_HEADER,
        *default_rows,
        "",
        "## Same process after `mallopt` keeps freed memory",
        "",
        "glibc returns the ~10 MB of temporaries that a float64 step at the large size frees to",
        "the OS, and takes them back as zero-filled pages in the next step. The second pass sets",
        "`M_MMAP_THRESHOLD` = 32 MiB and `M_TRIM_THRESHOLD` = 256 MiB (what the environment",
        "variables `MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456` do),",
        "for every library in the process alike.",
        "",
        CPU_HEADER,
        *kept_rows,
        "",
        "## course_pkg alone in a fresh process",
        "",
        "The page faults depend on what the process allocated before: above, PyTorch and",
        "scikit-learn share the process. Here a fresh Python process imports only course_pkg",
        "and times its train_step (same clock and threads, default glibc settings):",
        "",
        "| network, batch, dtype | repeats | course_pkg ms | page faults/step |",
        "| --- | ---: | ---: | ---: |",
        *alone_rows,
        "",
        "Machine and settings:",
        "",
        *info,
        f"- PyTorch {torch.__version__} (CPU build), scikit-learn {sklearn.__version__}; "
        f"sklearn's `MLPClassifier(solver='sgd', momentum=0, alpha=0, batch_size=n)`"
        f".partial_fit does one step per call",
        f"- learning rate {LR}; the same batch is reused for every step",
        "",
    ]
    return "\n".join(lines)


def run_gpu(quick: bool) -> str:
    try:
        import cupy
    except ImportError:
        sys.exit("--gpu needs CuPy: pip install cupy-cuda12x (or course_pkg[gpu])")
    scale = 0.05 if quick else 1.0
    cases = [
        Case((784, 512, 512, 10), 256, "float64", int(1000 * scale)),
        Case((784, 512, 512, 10), 256, "float32", int(1000 * scale)),
        Case((64, 32, 10), 32, "float64", int(1000 * scale)),
        Case((64, 32, 10), 32, "float32", int(1000 * scale)),
    ]

    def sync():
        cupy.cuda.Device().synchronize()

    info = machine_info(None)
    rows = []
    for case in cases:
        X, y = make_batch(case)
        fns = {"course_pkg": course_step(case, X, y, backend="cupy"),
               "gemm": gemm_floor(case, X, xp=cupy)}
        times = time_rounds(fns, case.repeats, warmup=20, sync=sync)
        med = {name: statistics.median(t) for name, t in times.items()}
        rows.append((case, med))
        print(case.label, {k: fmt_ms(v) for k, v in med.items()}, flush=True)

    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    lines = [
        "# Benchmark: one training step (GPU, CuPy)",
        "",
        "`Network(..., backend='cupy').train_step` on a batch already on the device, timed with",
        "a device synchronisation after each call; medians in milliseconds. The GEMM floor is",
        "the 2L - 1 matrix products of the step alone, in CuPy. A train_step ends with",
        "`float(loss)`, one device-to-host copy, which the floor does not pay.",
        "",
        "| network, batch, dtype | repeats | course_pkg ms | GEMM floor ms | course/GEMM |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for case, med in rows:
        c = med["course_pkg"]
        lines.append(f"| {case.label} | {case.repeats} | {fmt_ms(c)} | {fmt_ms(med['gemm'])} "
                     f"| {c / med['gemm']:.2f} |")
    lines += [
        "",
        "Machine and settings:",
        "",
        *info,
        f"- GPU: {name}, CuPy {cupy.__version__}, CUDA runtime "
        f"{cupy.cuda.runtime.runtimeGetVersion()}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", action="store_true", help="time backend='cupy' instead")
    parser.add_argument("--quick", action="store_true", help="few repeats (a smoke test)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every library (default: NumPy's BLAS thread count)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: elapsed time (default); cpu: process CPU time, robust to "
                             "other load on a shared machine (use with --threads 1)")
    parser.add_argument("--output", type=Path, default=None,
                        help="where to write the table (default benchmarks/results[_gpu].md)")
    parser.add_argument("--standalone", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.standalone:
        run_standalone(args.standalone)
        return
    report = run_gpu(args.quick) if args.gpu else run_cpu(args.quick, args.threads, args.clock)
    default = "results_gpu.md" if args.gpu else "results.md"
    output = args.output or Path(__file__).resolve().parent / default
    output.write_text(report)
    print(report)
    print(f"written to {output}")


if __name__ == "__main__":
    main()
