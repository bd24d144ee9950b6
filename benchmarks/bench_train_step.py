"""Time one training step of course_pkg, PyTorch, scikit-learn and the GEMM floor.

One SGD step on one batch is timed for four implementations of the same network (relu hidden
layers, softmax output, cross-entropy, plain SGD without momentum or weight decay):

* ``course_pkg``: ``Network.train_step(X, y, lr)``;
* PyTorch CPU: an equivalent ``nn.Sequential`` with ``nn.CrossEntropyLoss`` and ``optim.SGD``
  (zero_grad, forward, backward, step);
* scikit-learn: ``MLPClassifier(solver="sgd", batch_size=n).partial_fit`` on the batch;
* the GEMM floor: only the matrix products of Algorithm 1, in NumPy, written into preallocated
  outputs (``np.matmul(..., out=)``): L forward products W_l a_{l-1}, L weight-gradient
  products delta_l a_{l-1}^T and L - 1 delta products W_l^T delta_l (8 for 784-512-512-10).

How it is measured, so that each number is one a user would see:

* every contender runs alone in its own fresh Python process, which imports only its own
  library (one child process per contender and network), so that no library inherits the
  allocator state or the thread pools of another;
* the children are timed in interleaved rounds: in each round each child in turn runs a block
  of steps (about ``--block`` seconds) while the others wait, then the next round starts; a
  pause between blocks lets the BLAS threads of the child that just ran fall asleep. Load from
  other users of a shared machine thus falls on all contenders alike;
* a sample is the mean of a few consecutive steps (at least ~1 ms of them); the table gives the
  median sample of all rounds, and the spread of the per-round medians;
* every library gets the same number of threads (``--threads``, default 2): the environment
  variables OMP/OPENBLAS/MKL_NUM_THREADS of the child, ``threadpoolctl`` and
  ``torch.set_num_threads``;
* ``--clock cpu`` times with the CPU time of the child process instead of the wall clock; with
  ``--threads 1`` this is the work done, which other load on the machine barely changes.

The course_pkg child also reports its minor page faults per step (memory that the allocator
gave back to the system and takes again), the tracemalloc peak of one step (the memory a step
allocates through Python's tracked allocators, NumPy's included), and the time of the input
checks of a step (shape, dtype, NaN/inf in X, label range).

Usage::

    python benchmarks/bench_train_step.py            # writes benchmarks/results.md (+ .json)
    python benchmarks/bench_train_step.py --threads 1 --clock cpu \
        --output benchmarks/results_cpu_1thread.md   # CPU time: robust on a shared machine
    python benchmarks/bench_train_step.py --quick    # few rounds, a smoke test
    python benchmarks/bench_train_step.py --gpu      # CuPy (in one process), results_gpu.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LR = 1e-3
CONTENDERS = ("course_pkg", "floor", "torch", "sklearn")
EXPERIMENTS = ("two_blas",)
"""Contenders run only when named in --contenders (see :func:`two_blas_step`)."""
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""wall: elapsed time, what a user waits. cpu: CPU time of the process (all its threads)."""


@dataclass(frozen=True)
class Case:
    """One benchmark configuration."""

    sizes: tuple[int, ...]
    batch: int
    dtype: str

    @property
    def label(self) -> str:
        return f"{'-'.join(map(str, self.sizes))}, n={self.batch}, {self.dtype}"


CASES = [
    Case((784, 512, 512, 10), 256, "float64"),
    Case((784, 512, 512, 10), 256, "float32"),
    Case((64, 32, 10), 32, "float64"),
    Case((64, 32, 10), 32, "float32"),
]
TARGETS = {
    # sizes: (course/floor at most, PyTorch/course at least)
    (784, 512, 512, 10): (1.05, 1.0),
    (64, 32, 10): (4.0, 2.0),
}


# -- the contenders, each built inside its own child process ---------------------------------
def make_batch(case: Case, seed: int = 0):
    """A random batch: X of shape (n, p_0) in the case's dtype, integer labels y."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((case.batch, case.sizes[0])).astype(case.dtype)
    y = rng.integers(0, case.sizes[-1], size=case.batch)
    return X, y


def course_step(case: Case, X, y, backend: str = "numpy"):
    sys.path.insert(0, str(ROOT))
    import course_pkg as cp

    L = len(case.sizes) - 1
    net = cp.Network(list(case.sizes), ["relu"] * (L - 1) + ["softmax"], loss="cross_entropy",
                     backend=backend, dtype=case.dtype)
    Xb, yb = net.xp.asarray(X), net.xp.asarray(y)
    step = lambda: net.train_step(Xb, yb, LR)  # noqa: E731
    step.net = net
    return step


def two_blas_step(case: Case, X, y):
    """course_pkg with its folded updates sent to SciPy's BLAS while NumPy's BLAS does the
    other products: two libraries, each with its pool of threads (what course_pkg.blas avoids;
    chapter 6 quotes ``--contenders course_pkg,two_blas --output results_two_blas.md``)."""
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from course_pkg import blas

    for dtype in (np.float64, np.float32):
        blas._LIBRARY[np.dtype(dtype)] = blas._scipy_gemm
    step = course_step(case, X, y)
    assert blas.library() == "SciPy's BLAS"
    return step


def torch_step(case: Case, X, y):
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


def sklearn_step(case: Case, X, y):
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    mlp = MLPClassifier(
        hidden_layer_sizes=case.sizes[1:-1], activation="relu", solver="sgd",
        batch_size=case.batch, learning_rate_init=LR, momentum=0.0, nesterovs_momentum=False,
        alpha=0.0, shuffle=False, random_state=0,
    )
    mlp.partial_fit(X, y, classes=np.arange(case.sizes[-1]))
    return lambda: mlp.partial_fit(X, y)


def gemm_floor(case: Case, X, xp=None):
    """Only the matrix products of one step, into preallocated outputs, with the layouts of
    ``course_pkg.workspace`` (the (p, n) arrays of a batch stored by rows)."""
    import numpy as np

    xp = np if xp is None else xp
    rng = np.random.default_rng(1)
    p, n, dtype = case.sizes, case.batch, case.dtype
    L = len(p) - 1

    def F(rows, cols):
        return xp.asarray(rng.standard_normal((rows, cols)).astype(dtype))

    W = {l: xp.asarray(rng.standard_normal((p[l], p[l - 1])).astype(dtype))
         for l in range(1, L + 1)}
    a = {l: F(p[l], n) for l in range(1, L + 1)}
    a[0] = xp.asarray(X).T
    delta = {l: F(p[l], n) for l in range(1, L + 1)}
    z = {l: F(p[l], n) for l in range(1, L + 1)}
    below = {l: F(p[l], n) for l in range(1, L + 1)}
    dW = {l: xp.empty_like(W[l]) for l in range(1, L + 1)}

    def products():
        for l in range(1, L + 1):
            xp.matmul(W[l], a[l - 1], out=z[l])                  # forward
        for l in range(L, 0, -1):
            xp.matmul(delta[l], a[l - 1].T, out=dW[l])           # weight gradient
            if l > 1:
                xp.matmul(W[l].T, delta[l], out=below[l - 1])    # delta of the layer below

    return products


BUILDERS = {"course_pkg": course_step, "floor": lambda case, X, y: gemm_floor(case, X),
            "torch": torch_step, "sklearn": sklearn_step, "two_blas": two_blas_step}


# -- the child process ------------------------------------------------------------------------
def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def run_child(spec: str) -> None:
    """One contender alone in this process: build, warm up, then serve commands on stdin.

    ``block`` runs steps for about ``block_s`` seconds and prints the samples (seconds per
    step); ``extras`` prints page faults, tracemalloc peak and input-check time (course_pkg).
    """
    from threadpoolctl import threadpool_limits

    args = json.loads(spec)
    case = Case(tuple(args["sizes"]), args["batch"], args["dtype"])
    clock = CLOCKS[args["clock"]]
    threads = args["threads"]
    if args["contender"] == "torch":
        import torch

        torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        X, y = make_batch(case)
        step = BUILDERS[args["contender"]](case, X, y)
        for _ in range(5):
            step()
        start = time.perf_counter()
        calls = 0
        while time.perf_counter() - start < 0.2 or calls < 3:
            step()
            calls += 1
        per_step = (time.perf_counter() - start) / calls
        group = max(1, int(1e-3 / per_step))         # steps per sample: ~1 ms or one step
        print(json.dumps({"ready": True, "group": group}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "block":                   # samples for about block_s seconds
                samples = []
                end = time.perf_counter() + args["block_s"]
                while not samples or time.perf_counter() < end:
                    t = clock()
                    for _ in range(group):
                        step()
                    samples.append((clock() - t) / group)
                print(json.dumps({"samples": samples}), flush=True)
            elif command == "extras":
                print(json.dumps(extras(step, X, y, args["contender"], clock)), flush=True)
            else:
                break


def extras(step: Callable[[], object], X, y, contender: str,
           clock: Callable[[], float]) -> dict[str, float]:
    """Page faults per step, the tracemalloc peak of one step, and (course_pkg) input checks."""
    import resource
    import tracemalloc

    calls = 50
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        step()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls
    tracemalloc.start()
    peaks = []
    for _ in range(5):
        tracemalloc.reset_peak()
        current = tracemalloc.get_traced_memory()[0]
        step()
        peaks.append(tracemalloc.get_traced_memory()[1] - current)
    tracemalloc.stop()
    result = {"faults": faults, "tracemalloc_peak": max(peaks), "pid": os.getpid(),
              "other_libraries_loaded": sorted({"torch", "sklearn", "course_pkg"}
                                               & set(sys.modules) - {contender})}
    if contender == "course_pkg":
        net = step.net

        def checks():
            net._check_Y(y, net._check_X(X).shape[0])

        repeats = 2000 if X.size < 10**5 else 200
        best = []
        for _ in range(5):
            t = clock()
            for _ in range(repeats):
                checks()
            best.append((clock() - t) / repeats)
        result["checks"] = min(best)
    return result


# -- the parent: fresh processes, interleaved rounds -------------------------------------------
class Child:
    """A contender's process, answering one JSON line per command."""

    def __init__(self, contender: str, case: Case, threads: int, clock: str, block_s: float):
        spec = json.dumps({"contender": contender, "sizes": case.sizes, "batch": case.batch,
                           "dtype": case.dtype, "threads": threads, "clock": clock,
                           "block_s": block_s})
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--child", spec], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=child_env(threads), cwd=ROOT)
        self.hello = self.ask(None)

    def ask(self, command: str | None) -> dict:
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark child exited with {self.process.wait()}")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self.process.wait(timeout=60)


def measure_case(case: Case, contenders: tuple[str, ...], threads: int, clock: str,
                 rounds: int, block_s: float, pause_s: float) -> dict[str, dict]:
    """Median seconds per step of each contender, each alone in its own process."""
    children = {}
    try:
        for name in contenders:
            children[name] = Child(name, case, threads, clock, block_s)
            time.sleep(pause_s)
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        round_medians: dict[str, list[float]] = {name: [] for name in contenders}
        for r in range(rounds):
            order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
            for name in order:
                block = children[name].ask("block")["samples"]
                samples[name] += block
                round_medians[name].append(statistics.median(block))
                time.sleep(pause_s)
        result = {}
        for name in contenders:
            q = statistics.quantiles(round_medians[name], n=4) if rounds >= 2 else [0, 0, 0]
            result[name] = {"median": statistics.median(samples[name]),
                            "p10": statistics.quantiles(samples[name], n=10)[0],
                            "q1": q[0], "q3": q[2], "steps": len(samples[name])
                            * children[name].hello["group"]}
        if "course_pkg" in children:
            result["course_pkg"].update(children["course_pkg"].ask("extras"))
        if "floor" in children:
            result["floor"].update(children["floor"].ask("extras"))
        return result
    finally:
        for child in children.values():
            child.close()


def machine_info(threads: int, clock: str) -> list[str]:
    import numpy as np

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    for module in ("scipy", "torch", "sklearn"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            versions.append(f"{module} (not installed)")
    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- command: `{' '.join(['python', *sys.argv])}` (from the repository root)",
        f"- machine: {platform.machine()}, {cpu}, {os.cpu_count()} logical CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at the end (the machine is shared with other users)",
        f"- {', '.join(versions)}",
        f"- threads: {threads} for every library (OMP/OPENBLAS/MKL_NUM_THREADS, threadpoolctl, "
        f"torch.set_num_threads({threads})); clock: {clock} "
        f"(`{CLOCKS[clock].__module__}.{CLOCKS[clock].__name__}`)",
        f"- learning rate {LR}; the same batch is reused for every step",
    ]


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def table_rows(results: list[tuple[Case, dict]], contenders: tuple[str, ...]) -> list[str]:
    rows = [
        "| network, batch, dtype | course_pkg ms | GEMM floor ms | course/floor | PyTorch ms "
        "| PyTorch/course | sklearn ms | sklearn/course |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case, res in results:
        def ms(name, res=res):
            return fmt_ms(res[name]["median"]) if name in res else "-"

        def ratio(a, b, res=res):
            return f"{res[a]['median'] / res[b]['median']:.2f}" if a in res and b in res else "-"

        rows.append(f"| {case.label} | {ms('course_pkg')} | {ms('floor')} "
                    f"| {ratio('course_pkg', 'floor')} | {ms('torch')} "
                    f"| {ratio('torch', 'course_pkg')} | {ms('sklearn')} "
                    f"| {ratio('sklearn', 'course_pkg')} |")
    return rows


def spread_rows(results: list[tuple[Case, dict]], contenders: tuple[str, ...]) -> list[str]:
    rows = ["| network, batch, dtype | " + " | ".join(contenders) + " |",
            "| --- |" + " ---: |" * len(contenders)]
    for case, res in results:
        cells = [f"{fmt_ms(res[c]['q1'])}-{fmt_ms(res[c]['q3'])} ({res[c]['steps']})"
                 for c in contenders]
        rows.append(f"| {case.label} | " + " | ".join(cells) + " |")
    return rows


def decile_section(results: list[tuple[Case, dict]], contenders: tuple[str, ...]) -> list[str]:
    """The fastest tenth of the samples: what the steps take when the machine is least busy."""
    if not all("p10" in res[c] for _, res in results for c in contenders):
        return []
    lines = ["The fastest tenth: the 10th percentile of each contender's samples, in ms, with the",
             "same ratios (on a busy machine the median mixes quiet and contended moments; the",
             "fastest tenth is closer to what each library does on a quiet one):", "",
             "| network, batch, dtype | " + " | ".join(contenders)
             + " | course/floor | PyTorch/course |",
             "| --- |" + " ---: |" * (len(contenders) + 2)]
    for case, res in results:
        cells = [fmt_ms(res[c]["p10"]) for c in contenders]
        ratios = [f"{res[a]['p10'] / res[b]['p10']:.3f}" if a in res and b in res else "-"
                  for a, b in (("course_pkg", "floor"), ("torch", "course_pkg"))]
        lines.append(f"| {case.label} | " + " | ".join(cells + ratios) + " |")
    return [*lines, ""]


def memory_rows(results: list[tuple[Case, dict]]) -> list[str]:
    rows = ["| network, batch, dtype | page faults/step | tracemalloc peak/step "
            "| input checks/step | checks/step time | floor: faults, peak |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for case, res in results:
        c = res.get("course_pkg")
        if c is None:
            continue
        floor = res.get("floor")
        f = (f"{floor['faults']:.2f}, {floor['tracemalloc_peak'] / 1024:.1f} KiB"
             if floor else "-")
        rows.append(f"| {case.label} | {c['faults']:.2f} | {c['tracemalloc_peak'] / 1024:.1f} KiB "
                    f"| {c['checks'] * 1e6:.1f} us | {100 * c['checks'] / c['median']:.2f} % "
                    f"| {f} |")
    return rows


def target_lines(results: list[tuple[Case, dict]]) -> list[str]:
    lines = []
    for case, res in results:
        if case.sizes not in TARGETS or not {"course_pkg", "floor", "torch"} <= set(res):
            continue
        floor_max, torch_min = TARGETS[case.sizes]
        c = res["course_pkg"]["median"]
        vs_floor = c / res["floor"]["median"]
        vs_torch = res["torch"]["median"] / c
        ok = "met" if vs_floor <= floor_max and vs_torch >= torch_min else "NOT met"
        lines.append(f"- {case.label}: course/floor {vs_floor:.3f} (target <= {floor_max}), "
                     f"PyTorch/course {vs_torch:.3f} (target >= {torch_min}): {ok}")
    return lines


def runs_section(record: dict) -> list[str]:
    """With ``--runs K``: the ratios of every run, each with fresh processes (the tables above
    are the last run's). One run is one period of the machine; the runs show how much the
    ratios move between periods, which the spread within a run does not."""
    runs = record.get("runs", [])
    if len(runs) < 2:
        return []
    labels = [Case(tuple(c["sizes"]), c["batch"], c["dtype"]).label for c in runs[0]["cases"]]
    lines = [f"## Run to run: {len(runs)} runs, each with fresh processes", "",
             "The tables above are the last run's. course/floor and PyTorch/course of every run",
             "(medians), with the load average at the start of the run:", "",
             "| run | load | " + " | ".join(labels) + " |",
             "| ---: | ---: |" + " ---: |" * len(labels)]
    met = dict.fromkeys(labels, 0)
    for i, run in enumerate(runs, 1):
        cells = []
        for label, case in zip(labels, run["cases"], strict=True):
            res = case["results"]
            if not {"course_pkg", "floor", "torch"} <= set(res):
                cells.append("-")
                continue
            vs_floor = res["course_pkg"]["median"] / res["floor"]["median"]
            vs_torch = res["torch"]["median"] / res["course_pkg"]["median"]
            floor_max, torch_min = TARGETS[tuple(case["sizes"])]
            met[label] += vs_floor <= floor_max and vs_torch >= torch_min
            cells.append(f"{vs_floor:.3f}, {vs_torch:.2f}")
        lines.append(f"| {i} | {run['load_average_start']:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Targets met: " + "; ".join(f"{label} in {met[label]} of {len(runs)} runs"
                                            for label in labels), ""]
    return lines


def run_cpu(args: argparse.Namespace) -> dict:
    """Measure every case; the record that :func:`render` turns into the report."""
    contenders = tuple(c for c in (*CONTENDERS, *EXPERIMENTS) if c in args.contenders.split(","))
    cases = [c for c in CASES if not args.small_only or c.batch == 32]
    started = os.getloadavg()[0]
    runs = []
    for run in range(args.runs):
        load, results = os.getloadavg()[0], []
        for case in cases:
            res = measure_case(case, contenders, args.threads, args.clock, args.rounds,
                               args.block, args.pause)
            results.append((case, res))
            print(f"run {run + 1}:", case.label, {k: fmt_ms(v["median"]) for k, v in res.items()},
                  flush=True)
        runs.append({"load_average_start": load, "cases": [
            {"sizes": list(case.sizes), "batch": case.batch, "dtype": case.dtype,
             "results": res} for case, res in results]})
    return {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "command": " ".join(["python", *sys.argv]), "threads": args.threads,
            "clock": args.clock, "rounds": args.rounds, "block_s": args.block,
            "contenders": list(contenders), "cpu_count": os.cpu_count(),
            "load_average_start": started, "load_average": os.getloadavg()[0],
            "machine": machine_info(args.threads, args.clock),
            "cases": runs[-1]["cases"], "runs": runs}


def render(record: dict) -> str:
    """The markdown report of a record of :func:`run_cpu`."""
    contenders = tuple(record.get("contenders", CONTENDERS))
    results = [(Case(tuple(c["sizes"]), c["batch"], c["dtype"]), c["results"])
               for c in record["cases"]]
    threads, clock = record["threads"], record["clock"]
    clock_words = ("wall-clock time" if clock == "wall"
                   else "CPU time of the process (user + system, all its threads)")
    lines = [
        "# Benchmark: one training step (CPU)",
        "",
        "One SGD step (forward, backward, update) of a relu network with a softmax output and",
        "cross-entropy loss on one batch, written by `benchmarks/bench_train_step.py`.",
        "",
        f"## Each contender alone in its own fresh process ({threads} thread"
        f"{'s' if threads > 1 else ''}, {clock} clock, shared machine)",
        "",
        "Each library runs in its own Python process, which imports nothing else; the",
        f"processes take turns in {record['rounds']} interleaved rounds of about "
        f"{record.get('block_s', 0.25)} s each",
        "(one process works at a time). Times are medians, in milliseconds of",
        f"{clock_words},",
        "of samples of at least ~1 ms of consecutive steps. `course/floor` divides",
        "course_pkg's median by the GEMM floor's (the floor = the 3L - 1 matrix products of",
        "the step alone, into preallocated outputs); `PyTorch/course` and `sklearn/course`",
        "divide their median by course_pkg's (> 1: slower than course_pkg). The machine was",
        "shared with other users' builds and tests: load average "
        + (f"{record['load_average_start']:.2f} at the start, "
           if "load_average_start" in record else "(not recorded at the start), ")
        + f"{record['load_average']:.2f} at the end, on {record['cpu_count']} logical CPUs.",
        "",
        *table_rows(results, contenders),
        "",
        "Targets of issue 9 in this run (ratios to three digits):",
        "",
        *(target_lines(results) or ["- (not all contenders were run)"]),
        "",
        "Spread: the interquartile range of the per-round medians, in ms (and the number of",
        "steps timed):",
        "",
        *spread_rows(results, contenders),
        "",
        *decile_section(results, contenders),
        *runs_section(record),
        "### course_pkg's memory and input checks per step (same processes)",
        "",
        "`page faults/step`: minor page faults per step over 50 steps (memory that the",
        "allocator returned to the system and faults in again); `tracemalloc peak/step`: the",
        "largest rise of memory traced by `tracemalloc` (NumPy's arrays included) during one",
        "step; `input checks/step`: the time of the checks of X and y that every step makes",
        "(shape, dtype, NaN or inf in X, labels in range; best of 5 runs, same clock), and",
        "its share of the median step.",
        "",
        *memory_rows(results),
        "",
        "Machine and settings:",
        "",
        *record["machine"],
        "",
    ]
    return "\n".join(lines)


def run_gpu(quick: bool) -> str:
    """CuPy timings in one process (no PyTorch, no other contender), as before."""
    import numpy as np

    try:
        import cupy
    except ImportError:
        sys.exit("--gpu needs CuPy: pip install cupy-cuda12x (or course_pkg[gpu])")
    repeats = 50 if quick else 1000
    cases = CASES

    def sync():
        cupy.cuda.Device().synchronize()

    rows = []
    for case in cases:
        X, y = make_batch(case)
        fns = {"course_pkg": course_step(case, X, y, backend="cupy"),
               "gemm": gemm_floor(case, X, xp=cupy)}
        for fn in fns.values():
            for _ in range(20):
                fn()
        sync()
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - start)
        med = {name: statistics.median(t) for name, t in times.items()}
        rows.append((case, med))
        print(case.label, {k: fmt_ms(v) for k, v in med.items()}, flush=True)
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    lines = [
        "# Benchmark: one training step (GPU, CuPy)",
        "",
        "`Network(..., backend='cupy').train_step` on a batch already on the device, timed with",
        "a device synchronisation after each call, in one process; medians in milliseconds. The",
        "GEMM floor is the 3L - 1 matrix products of the step alone, in CuPy. A train_step ends",
        "with `float(loss)`, one device-to-host copy, which the floor does not pay.",
        "",
        "| network, batch, dtype | repeats | course_pkg ms | GEMM floor ms | course/GEMM |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for case, med in rows:
        c = med["course_pkg"]
        lines.append(f"| {case.label} | {repeats} | {fmt_ms(c)} | {fmt_ms(med['gemm'])} "
                     f"| {c / med['gemm']:.2f} |")
    lines += ["", "Machine and settings:", "",
              f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
              f"- NumPy {np.__version__}; GPU: {name}, CuPy {cupy.__version__}, CUDA runtime "
              f"{cupy.cuda.runtime.runtimeGetVersion()}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", action="store_true", help="time backend='cupy' instead")
    parser.add_argument("--quick", action="store_true", help="3 short rounds (a smoke test)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for every library (default 2)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: elapsed time (default); cpu: process CPU time, robust to "
                             "other load on a shared machine (use with --threads 1)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat the whole measurement, each time with fresh processes")
    parser.add_argument("--block", type=float, default=0.25,
                        help="seconds of steps per contender per round")
    parser.add_argument("--pause", type=float, default=0.3,
                        help="seconds between blocks (the last process's BLAS threads sleep)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma-separated subset of " + ",".join(CONTENDERS + EXPERIMENTS))
    parser.add_argument("--small-only", action="store_true", help="only the 64-32-10 network")
    parser.add_argument("--output", type=Path, default=None,
                        help="where to write the table (default benchmarks/results[_gpu].md)")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="write the report of a saved record again, without measuring")
    parser.add_argument("--child", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.child)
        return
    if args.quick:
        args.rounds, args.block, args.pause = 3, 0.05, 0.05
    default = "results_gpu.md" if args.gpu else "results.md"
    output = args.output or Path(__file__).resolve().parent / default
    record = None
    if args.render:
        record = json.loads(args.render.read_text())
        report = render(record)
    elif args.gpu:
        report = run_gpu(args.quick)
    else:
        record = run_cpu(args)
        report = render(record)
    output.write_text(report)
    print(report)
    print(f"written to {output}")
    if record is not None and not args.render:  # the same numbers, for the book and tests
        output.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"written to {output.with_suffix('.json')}")


if __name__ == "__main__":
    main()
