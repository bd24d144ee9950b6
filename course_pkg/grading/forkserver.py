"""Start each grading kernel by forking a process that has already imported the heavy modules.

A fresh IPython kernel spends most of its start-up importing: ipykernel and IPython, then
NumPy, scikit-learn (for the digits) and ``course_pkg``. For a class of a hundred, that is the
same work a hundred times. :class:`ForkServer` imports all of it once, in a small process
that has started no thread, no event loop and no ZeroMQ context; for each kernel it forks,
and the child takes the kernel's own environment, working directory and command line and
starts the kernel from there (so the guard's startup file, its limits and its private HOME
apply to the child exactly as to a kernel started from scratch).

nbgrader runs notebooks through :class:`ForkExecute`, its ``Execute`` preprocessor with a
kernel manager whose launch step asks the fork server instead of calling ``Popen``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import time
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from course_pkg.grading.execute import GradingExecute

PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "IPython", "numpy", "course_pkg",
           "sklearn.datasets", "sklearn.model_selection")
"""Imported once by the server; every forked kernel inherits them."""

_SERVER: ForkServer | None = None


class ForkServer:
    """A process that forks ready-to-start kernels on request (one per grading worker)."""

    def __init__(self, preload: tuple[str, ...] = PRELOAD) -> None:
        request_read, self.request = os.pipe()
        self.answer, answer_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the server keeps its two pipe ends and the log (stdout, stderr)
            _isolate(keep={request_read, answer_write})
            _serve(request_read, answer_write, preload)
        os.close(request_read)
        os.close(answer_write)
        self.pid = pid
        self.answers = os.fdopen(self.answer, "r")

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str) -> ForkedKernel:
        """Fork a kernel that runs ``argv`` (``python -m ipykernel_launcher -f ...``)."""
        message = json.dumps({"argv": argv, "env": env, "cwd": cwd}) + "\n"
        os.write(self.request, message.encode())
        line = self.answers.readline()
        if not line:
            raise RuntimeError("the kernel fork server died")
        return ForkedKernel(int(line))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.request)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _serve(requests: int, answers: int, preload: tuple[str, ...]) -> None:
    """The server's loop: read a request, fork, answer the child's pid. Never returns."""
    for name in preload:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    signal.signal(signal.SIGCHLD, _reap)
    with os.fdopen(requests, "r") as lines:
        for line in lines:
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _become_kernel(request)
            os.write(answers, f"{pid}\n".encode())
    while True:  # wait for the last kernels, so that their CPU time is accounted for
        try:
            os.wait()
        except ChildProcessError:
            break
    os._exit(0)


def _isolate(keep: set[int]) -> None:
    """Point stdin at /dev/null and close every other inherited descriptor but ``keep``."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _reap(signum: int, frame: Any) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _become_kernel(request: dict[str, Any]) -> None:
    """In the forked child: take the kernel's environment and start it. Never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _isolate(keep=set())  # the kernel must not see the server's pipes
    os.setsid()
    os.chdir(request["cwd"])
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    os.environ.clear()
    os.environ.update(request["env"])
    argv = request["argv"]
    module = argv.index("-m") + 1 if "-m" in argv else None
    sys.argv = [argv[0], *argv[(module or 0) + 1:]]
    code = 0
    try:
        from ipykernel import kernelapp

        kernelapp.launch_new_instance(argv=sys.argv[1:])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child must never return into the server
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class ForkedKernel:
    """A ``Popen``-like handle on a kernel forked by the server (not our child)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdin = self.stdout = self.stderr = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"kernel {self.pid} still running")
            time.sleep(0.05)
        return self.returncode or 0

    def send_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def server() -> ForkServer:
    """This process's fork server, started on first use."""
    global _SERVER
    if _SERVER is None:
        _SERVER = ForkServer()
    return _SERVER


class ForkKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels come from :func:`server` instead of ``Popen``."""

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        provisioner = self.provisioner
        assert provisioner is not None
        env = dict(kw.get("env") or os.environ)
        cwd = kw.get("cwd") or os.getcwd()
        process = server().spawn(kernel_cmd, env, cwd)
        provisioner.process = process
        provisioner.pid = process.pid
        provisioner.pgid = process.pid
        self._reconcile_connection_info(provisioner.connection_info)


class ForkExecute(GradingExecute):
    """nbgrader's ``Execute`` (as :class:`GradingExecute`), starting kernels from the server."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["kernel_manager_class"] = ForkKernelManager
        super().__init__(*args, **kwargs)
