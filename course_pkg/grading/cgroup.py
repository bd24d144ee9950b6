"""Limits on a whole sandbox, not one process: a control group of its own, where we may.

``setrlimit`` bounds each process of a sandbox; a submission that starts many processes could
still take the machine's memory or every core. Where the grader runs as root and the machine
has control groups (v1 or v2) it can write, each sandbox gets one: memory (every process
together), process count, and one core of CPU time (so that a submission that spins on every
core it can start slows nobody graded beside it), and it counts the CPU time of every process
that ever ran in it (:meth:`Cgroup.cpu_seconds`: v2's ``cpu.stat`` ``usage_usec``, v1's
``cpuacct.usage``), reaped or not. Elsewhere (an instructor's own account, a container without
a writable ``/sys/fs/cgroup``) :func:`create` returns None and the per-process limits stand
alone.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
REMOVE_WAIT_S = 1.0
"""How long :meth:`Cgroup.remove` waits for a sandbox's killed processes to be gone."""
_counter = itertools.count()


class Cgroup:
    """The control-group folders of one sandbox (one per v1 hierarchy, or one v2 folder)."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders

    @property
    def counts_cpu(self) -> bool:
        """Whether the group counts its CPU time (a v2 group, or a v1 ``cpuacct`` folder)."""
        return self.cpu_seconds() is not None

    def cpu_seconds(self) -> float | None:
        """CPU seconds used by every process that ran in the group, or None if unreadable."""
        for folder in self.folders:
            with contextlib.suppress(OSError, ValueError):
                if (folder / "cpuacct.usage").exists():
                    return int((folder / "cpuacct.usage").read_text()) / 1e9
                if (folder / "cpu.stat").exists():
                    for line in (folder / "cpu.stat").read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "usage_usec":
                            return int(value) / 1e6
        return None

    def join(self) -> None:
        """Put the calling process (and so everything it starts) into the group."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        """Remove the group once its processes are gone (they were killed just before).

        The kernel takes a few milliseconds to tear them down: the waits start at 1 ms and
        double up to 20 ms, for about a second in all.
        """
        for folder in self.folders:
            delay, waited = 0.001, 0.0
            while waited < REMOVE_WAIT_S:
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # a process of the sandbox is still being torn down
                    time.sleep(delay)
                    waited += delay
                    delay = min(2 * delay, 0.02)


def create(memory_bytes: int, processes: int, cores: float = 1.0) -> Cgroup | None:
    """A new group with these limits, or None where this process may not make one."""
    if os.geteuid() != 0 or not ROOT.is_dir():
        return None
    name = f"course-sandbox-{os.getpid()}-{next(_counter)}"
    quota = str(int(cores * PERIOD_US))
    try:
        if (ROOT / "cgroup.controllers").exists():  # v2: one folder, three files
            folder = ROOT / name
            folder.mkdir()
            group = Cgroup([folder])
            _write(folder / "memory.max", str(memory_bytes))
            _write(folder / "pids.max", str(processes))
            _write(folder / "cpu.max", f"{quota} {PERIOD_US}")
            return group
        settings = {"memory": {"memory.limit_in_bytes": str(memory_bytes)},
                    "pids": {"pids.max": str(processes)},
                    "cpu": {"cpu.cfs_period_us": str(PERIOD_US), "cpu.cfs_quota_us": quota},
                    "cpuacct": {}}
        group = Cgroup([])
        for controller, files in settings.items():
            folder = (ROOT / controller).resolve() / name  # cpu and cpuacct may be one
            if folder not in group.folders:
                folder.mkdir()
                group.folders.append(folder)
            for file, value in files.items():
                _write(folder / file, value)
        return group
    except OSError:
        with contextlib.suppress(NameError):
            group.remove()
        return None


def _write(path: Path, value: str) -> None:
    if not path.exists():
        raise OSError(f"{path} does not exist (controller not enabled)")
    path.write_text(value)
