"""A progress bar for a grading batch: counts, failures so far, an estimate of the time left.

It writes to standard error, redrawing one line, and only when that is a terminal (and not
``--quiet``); the per-student report lines go to standard output as before.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

WIDTH = 30


class ProgressBar:
    """``[#####.....] 45/100 graded, 2 not graded, 1:20 left``."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = self.done = self.failed = 0
        self.started = time.monotonic()

    def start(self, total: int) -> None:
        """``total`` submissions are about to be graded."""
        self.total, self.done, self.failed = total, 0, 0
        self.started = time.monotonic()
        self.draw()

    def advance(self, outcome: Any) -> None:
        """One submission is recorded (graded or not)."""
        self.done += 1
        self.failed += getattr(outcome, "status", "graded") != "graded"
        self.draw()

    def line(self) -> str:
        """The bar as text."""
        total = max(self.total, 1)
        filled = WIDTH * self.done // total
        bar = "#" * filled + "." * (WIDTH - filled)
        elapsed = time.monotonic() - self.started
        if self.done and self.done < self.total:
            left = elapsed / self.done * (self.total - self.done)
            eta = f"{int(left // 60)}:{int(left % 60):02d} left"
        else:
            eta = "done" if self.done >= self.total else "estimating"
        return (f"[{bar}] {self.done}/{self.total} graded, {self.failed} not graded, {eta}")

    def draw(self) -> None:
        if not self.enabled or not self.total:
            return
        end = "\n" if self.done >= self.total else ""
        self.stream.write(f"\r\x1b[2K{self.line()}{end}")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar (before a report line is printed above it)."""
        if self.enabled and self.total and self.done < self.total:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
