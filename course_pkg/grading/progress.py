"""A progress bar for a grading batch: the summary's counts, and an estimate of the time left.

``[#####.........] 12/30: 10 graded, 2 not graded, 1:20 left``

Its counts are the counts of the summary that ``course autograde`` prints at the end: every
submission of the batch, those kept unchanged and those refused by pre-flight included. While
the cluster starts it says so (``starting 2 workers``). The estimate is the measured time per
submission and worker, times the submissions left, divided by the workers alive now, less the
time since the last result: it counts down between results, and it grows when a worker dies.
The bar is redrawn every second from a thread of its own.

It writes to standard error, redrawing one line, and only when that is a terminal (or when
told to, ``--progress``; never with ``--quiet``); the per-student report lines go to standard
output, printed through :meth:`ProgressBar.print` so that the bar never cuts one.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

WIDTH = 30
TICK = 1.0


class ProgressBar:
    """See the module doc; every method may be called from the batch's thread."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None,
                 out: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.out = out
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = self.graded = self.failed = self.ran = 0
        self.phase = ""
        self.running = False
        self.alive: Callable[[], int] = lambda: 1
        self.workers_then = 1
        self.started = self.last = time.monotonic()
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def done(self) -> int:
        return self.graded + self.failed

    def start(self, to_run: int) -> None:
        """``to_run`` submissions are about to be graded, beside those already counted."""
        with self.lock:
            self.total = self.done + to_run
            self.running = True
            self.started = self.last = time.monotonic()
            self.draw()
        if self.enabled and to_run and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, daemon=True,
                                            name="progress-bar")
            self._ticker.start()

    def stage(self, text: str) -> None:
        """What the batch is doing before its first result (``starting 2 workers``)."""
        with self.lock:
            self.phase = text
            if text == "grading":
                self.started = self.last = time.monotonic()
            self.draw()

    def workers(self, count: Callable[[], int]) -> None:
        """How to count the workers alive (called at every redraw)."""
        self.alive = count
        self.workers_then = max(self._alive(), 1)

    def advance(self, outcome: Any) -> None:
        """One submission is recorded (graded, not graded, or kept unchanged); before
        :meth:`start`, it is counted but not drawn (the total is not known yet)."""
        with self.lock:
            if getattr(outcome, "status", "graded") == "graded":
                self.graded += 1
            else:
                self.failed += 1
            if self.running and not getattr(outcome, "unchanged", False):
                self.ran += 1
                self.last = time.monotonic()
                self.workers_then = max(self._alive(), 1)
            self.total = max(self.total, self.done)
            self.draw()

    def print(self, text: str) -> None:
        """Print a report line to standard output, above the bar."""
        with self.lock:
            self.clear()
            print(text, file=self.out or sys.stdout, flush=True)

    def _alive(self) -> int:
        try:
            return int(self.alive())
        except Exception:  # noqa: BLE001 - a cluster being torn down: keep the last count
            return self.workers_then

    def left(self) -> float | None:
        """Seconds left (None before the first result)."""
        if not self.ran or self.done >= self.total:
            return None
        per_worker = (self.last - self.started) * self.workers_then / self.ran
        alive = max(self._alive(), 1)
        remaining = per_worker * (self.total - self.done) / alive
        return max(remaining - (time.monotonic() - self.last), 1.0)

    def line(self) -> str:
        """The bar as text."""
        total = max(self.total, 1)
        filled = WIDTH * self.done // total
        bar = "#" * filled + "." * (WIDTH - filled)
        left = self.left()
        if self.done >= self.total:
            eta = "done"
        elif left is not None:
            eta = f"{int(left // 60)}:{int(left % 60):02d} left"
        else:
            eta = self.phase if self.phase and self.phase != "grading" else "estimating"
        return (f"[{bar}] {self.done}/{self.total}: {self.graded} graded, {self.failed} not "
                f"graded, {eta}")

    def draw(self) -> None:
        with self.lock:
            if not self.enabled or not self.running:
                return
            end = "\n" if self.done >= self.total else ""
            self.stream.write(f"\r\x1b[2K{self.line()}{end}")
            self.stream.flush()

    def clear(self) -> None:
        """Erase the bar (before a report line is printed above it)."""
        with self.lock:
            if self.enabled and self.running and self.done < self.total:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()

    def _tick(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # Ctrl-C is the main thread's
        while not self._stop.wait(TICK):
            with self.lock:
                if self.done < self.total:
                    self.draw()

    def stop(self) -> None:
        """Stop redrawing (the batch ended, or was interrupted)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2 * TICK)
            self._ticker = None
        with self.lock:
            if self.enabled and self.running and self.done < self.total:
                self.stream.write("\n")
                self.stream.flush()
