"""What one gradient costs: back-propagation against finite differences.

The chapter on efficiency counts the multiply-adds of the matrix products of Algorithm 1 of
``002_ff83eee082f91d18.txt`` (the componentwise work, O(n sum_l p_l), is of lower order). For a
batch of n examples and widths p_0, ..., p_L:

* the feed-forward pass, z_l = W_l a_{l-1} + b_l, costs  F = n sum_l p_l p_{l-1};
* the backward pass costs dC/dW_l = delta_l a_{l-1}^T for every layer (n p_l p_{l-1} each) and
  delta_{l-1} = S'(z_{l-1}) * W_l^T delta_l for l >= 2 (the same again), so
  B = 2F - n p_1 p_0, at most twice the forward pass;
* central finite differences evaluate the loss twice per parameter: 2P forward passes, 2P F,
  where P = sum_l (p_{l-1} p_l + p_l) is the number of parameters.

For a fixed depth F grows like n P, so one back-propagation costs O(P) and finite differences
O(P^2). This module computes those counts, fits log-log slopes to timings, and draws the widget.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from course_pkg.gradcheck import finite_difference_gradients
from course_pkg.network import Network
from course_pkg.network import _check_sizes as check_sizes

INPUTS, OUTPUTS, BATCH = 64, 10, 32
"""The widget's network: 64 inputs and 10 outputs (the digits), a batch of 32 examples."""

WIDTHS = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128)
"""The hidden widths the widget offers."""

DEPTHS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
"""The numbers of hidden layers the widget offers."""


def parameter_count(sizes: Sequence[int]) -> int:
    """P = sum_l (p_{l-1} p_l + p_l): the weights and biases (``002_ff83eee082f91d18.txt``)."""
    p = check_sizes(sizes)
    return sum(p[l - 1] * p[l] + p[l] for l in range(1, len(p)))


def multiply_adds(sizes: Sequence[int], n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The multiply-adds of the matrix products of each layer, forward and backward.

    Parameters
    ----------
    sizes
        The widths [p_0, ..., p_L].
    n
        The batch size.

    Returns
    -------
    forward, backward
        Arrays of length L: ``forward[l-1] = n p_l p_{l-1}`` (line 3 of Algorithm 1);
        ``backward[l-1] = n p_l p_{l-1}`` for dC/dW_l (line 9) plus, for l >= 2, another
        ``n p_l p_{l-1}`` for W_l^T delta_l (line 10).
    """
    p = check_sizes(sizes)
    if int(n) != n or n < 1:
        raise ValueError(f"expected a positive integer batch size n, got {n}")
    forward = np.array([n * p[l] * p[l - 1] for l in range(1, len(p))], dtype=np.int64)
    backward = forward.copy()
    backward[1:] *= 2
    return forward, backward


def gradient_cost(sizes: Sequence[int], n: int = 1) -> dict[str, int]:
    """Multiply-adds of one gradient: ``backprop`` = F + B and ``finite_differences`` = 2P F."""
    forward, backward = multiply_adds(sizes, n)
    F = int(forward.sum())
    return {"forward": F, "backward": int(backward.sum()), "backprop": F + int(backward.sum()),
            "finite_differences": 2 * parameter_count(sizes) * F}


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """The slope k of the least-squares line log y = k log x + c."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"expected two 1-d sequences of equal length >= 2, "
                         f"got shapes {x.shape} and {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("a log-log fit needs positive x and y")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def best_time(f: Callable[[], Any], repeats: int = 3) -> float:
    """The shortest of ``repeats`` wall-clock times of ``f()``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def time_gradients(sizes: Sequence[int], n: int, repeats: int = 3, seed: int = 0,
                   finite_differences: bool = True) -> dict[str, float]:
    """Time one loss, one back-propagated gradient and one finite-difference gradient.

    The network has tanh hidden layers and an identity output (half squared error); the data
    are random. The timings run on one BLAS thread, so that they measure the arithmetic and
    not how busy the other cores of a shared machine are.

    Returns
    -------
    dict
        ``P`` (the parameter count), ``forward`` (best time of ``net.loss`` over ``repeats``
        runs), ``backprop`` (best time of ``net.loss_and_gradients``) and
        ``finite_differences`` (one :func:`course_pkg.finite_difference_gradients` with the
        central stencil of order 2, 2P loss evaluations; NaN when
        ``finite_differences`` is False), in seconds.
    """
    from threadpoolctl import threadpool_limits

    sizes = check_sizes(sizes)
    rng = np.random.default_rng(seed)
    net = Network(sizes, activations=["tanh"] * (len(sizes) - 2) + ["identity"], seed=seed)
    X, Y = rng.normal(size=(n, sizes[0])), rng.normal(size=(n, sizes[-1]))
    with threadpool_limits(limits=1):
        times = {"P": float(net.num_parameters),
                 "forward": best_time(lambda: net.loss(X, Y), repeats),
                 "backprop": best_time(lambda: net.loss_and_gradients(X, Y), repeats),
                 "finite_differences": float("nan")}
        if finite_differences:
            times["finite_differences"] = best_time(
                lambda: finite_difference_gradients(net, X, Y, order=2), 1)
    return times


def _plain_log_ticks(ax: Any) -> None:
    """Label the decades of both log axes as 1e3, 1e4, ... (plain text draws fast)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    def decade(v: float, _pos: int) -> str:
        k = np.log10(v) if v > 0 else np.nan
        return f"1e{k:.0f}" if np.isfinite(k) and abs(k - round(k)) < 1e-9 else ""

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(numticks=6))
        axis.set_major_formatter(FuncFormatter(decade))
        axis.set_minor_locator(NullLocator())


def widget_sizes(width: int, depth: int) -> list[int]:
    """The widget's network: 64 inputs, ``depth`` hidden layers of ``width``, 10 outputs."""
    return [INPUTS, *[width] * depth, OUTPUTS]


def draw(width: int = 16, depth: int = 2) -> Any:
    """Left: multiply-adds of one gradient against P; right: per-layer forward vs backward."""
    import matplotlib.pyplot as plt

    if width not in WIDTHS or depth not in DEPTHS:
        raise ValueError(f"width must be one of {WIDTHS} and depth one of {DEPTHS}, "
                         f"got {width}, {depth}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    grid = np.unique(np.geomspace(2, 256, 40).astype(int))
    costs = [gradient_cost(widget_sizes(w, depth), BATCH) for w in grid]
    P = [parameter_count(widget_sizes(w, depth)) for w in grid]
    left.loglog(P, [c["backprop"] for c in costs], color="tab:blue", label="back-propagation")
    left.loglog(P, [c["finite_differences"] for c in costs], color="tab:red",
                label="finite differences")
    here = gradient_cost(widget_sizes(width, depth), BATCH)
    P_here = parameter_count(widget_sizes(width, depth))
    left.plot([P_here, P_here], [here["backprop"], here["finite_differences"]], "ko", ms=4)
    _plain_log_ticks(left)
    left.set_xlabel("parameters P")
    left.set_ylabel("multiply-adds per gradient")
    left.set_title(f"P = {P_here}: finite differences cost "
                   f"{here['finite_differences'] / here['backprop']:.0f}x", fontsize=9)
    left.legend(fontsize=8, loc="upper left")

    forward, backward = multiply_adds(widget_sizes(width, depth), BATCH)
    layers = np.arange(1, len(forward) + 1)
    right.bar(layers - 0.2, forward, width=0.4, color="tab:gray", label="forward")
    right.bar(layers + 0.2, backward, width=0.4, color="tab:blue", label="backward")
    right.set_xticks(layers)
    right.set_xlabel("layer l")
    right.set_ylabel("multiply-adds")
    right.set_title(f"backward / forward = {backward.sum() / forward.sum():.2f}", fontsize=9)
    right.legend(fontsize=8)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.16, top=0.9, wspace=0.35)
    return fig


def cost_explorer(static: bool | None = None) -> Any:
    """The widget: how the cost of a gradient grows with the hidden width and the depth."""
    from course_pkg.widgets import explorer

    return explorer(draw, {"width": list(WIDTHS), "depth": list(DEPTHS)},
                    initial={"width": 16, "depth": 2}, static=static)


def load_benchmark(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """A table written by ``benchmarks/bench_scaling.py`` and its JSON sidecar, or None.

    Returns
    -------
    rows, info
        The CSV rows (numbers converted to int or float) and the sidecar's record of the
        machine and date; None when the CSV does not exist.
    """
    path = Path(path)
    if not path.exists():
        return None
    with path.open(newline="") as f:
        rows = [{key: _number(value) for key, value in row.items()} for row in csv.DictReader(f)]
    sidecar = path.with_suffix(".json")
    info = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    return rows, info


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def draw_timings(P: Sequence[float], backprop: Sequence[float], forward: Sequence[float],
                 finite_differences: Sequence[float]) -> Any:
    """Log-log plot of measured gradient times against P (NaN marks an unmeasured point).

    Draws the measured back-propagation and finite-difference times and, as a dashed line,
    2P times the measured time of one forward pass: the cost that the pass count predicts
    for finite differences where they were too slow to run.
    """
    import matplotlib.pyplot as plt

    P, bp, fw, fd = (np.asarray(v, dtype=float) for v in (P, backprop, forward,
                                                          finite_differences))
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.loglog(P, bp, "o-", color="tab:blue", label="back-propagation (measured)")
    measured = np.isfinite(fd)
    ax.loglog(P[measured], fd[measured], "s-", color="tab:red",
              label="finite differences (measured)")
    ax.loglog(P, 2 * P * fw, "--", color="tab:red", alpha=0.6,
              label="2P x one forward pass (measured)")
    _plain_log_ticks(ax)
    ax.set_xlabel("parameters P")
    ax.set_ylabel("seconds per gradient")
    ax.legend(fontsize=8, loc="upper left")
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.16, top=0.95)
    return fig


def draw_gpu_speedup(rows: Sequence[dict[str, Any]]) -> Any:
    """Speed-up numpy_s / cupy_s of one train_step against the batch size, per width."""
    import matplotlib.pyplot as plt

    dtypes = sorted({row["dtype"] for row in rows})
    fig, axes = plt.subplots(1, len(dtypes), figsize=(8, 3.2), sharey=True, squeeze=False)
    for ax, dtype in zip(axes[0], dtypes, strict=True):
        for width in sorted({row["width"] for row in rows}):
            sel = sorted((r["batch"], r["speedup"]) for r in rows
                         if r["dtype"] == dtype and r["width"] == width)
            ax.loglog(*zip(*sel, strict=True), "o-", label=f"width {width}")
        ax.axhline(1.0, color="k", lw=0.8)
        _plain_log_ticks(ax)
        ax.set_xlabel("batch size n")
        ax.set_title(dtype, fontsize=9)
    axes[0, 0].set_ylabel("CPU time / GPU time")
    axes[0, 0].legend(fontsize=8)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.16, top=0.9)
    return fig


def cpu_name() -> str:
    """The processor's model name, from /proc/cpuinfo where there is one."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe_machine(info: dict[str, Any]) -> str:
    """One sentence saying when, and on which GPU and CPU, a table was measured."""
    def get(key: str) -> str:
        return str(info.get(key, "unrecorded"))

    return (f"Measured {get('date_utc')} (UTC) on the GPU {get('gpu')} (CuPy {get('cupy')}), "
            f"against the CPU {get('cpu')} with {get('cpu_count')} cores "
            f"(NumPy {get('numpy')}).")


def table_html(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """An HTML table of ``rows`` (floats to three significant digits)."""
    def cell(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r[c])}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
