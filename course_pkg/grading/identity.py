"""Who a sandbox runs as, and where the grader keeps its runtime state on a shared machine.

A grader running as root gives each sandbox a user id of its own, ``ROOT_UID_BASE + n``, so
that the processes of one submission can neither signal, trace nor starve (through the
per-user process limit) those of another, whatever the number of threads of the Dask worker
that grades them. The number ``n`` is held, for the life of the sandbox, by an exclusive lock
on the file ``<n>.lock`` in ``/run/course-grading/sandbox-uids`` (one folder for the whole
machine): two sandboxes alive at once, in one process or in two, never share a user id.

The runtime folder belongs to the user who grades and to nobody else (item 9 of issue 14):
``$XDG_RUNTIME_DIR/course-grading`` when that folder is this user's, else
``/run/course-grading`` for root, else ``~/.cache/course-grading``. Nothing is kept at a
fixed path in a world-writable folder such as ``/tmp``. Every folder and file is opened
without following a link (``O_NOFOLLOW``), a new file is created with ``O_EXCL``, and a folder
or file that another user owns, or that others may write, is refused with a
:class:`UnsafeRuntimeState` error that says which and why. A grader that is not root needs no
state at all: its sandboxes run as its own user (limits per sandbox then come from a control
group where one can be made, see :mod:`course_pkg.grading.cgroup`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
from pathlib import Path

ROOT_UID_BASE = 61_000
"""Running as root, sandbox number n runs as user ROOT_UID_BASE + n."""
MAX_SANDBOXES = 4096
SPREAD = 256
"""A claim starts its search at a random number below this: the processes of a sandbox that
has just ended may take a moment to disappear, and its user id is then not reused at once."""
FOLDER_NAME = "course-grading"


class UnsafeRuntimeState(RuntimeError):
    """The runtime folder or a file in it is not this user's alone; the message says why."""


def runtime_dir() -> Path:
    """This user's folder for the grader's runtime state (see the module doc); not created."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _owned_and_private(Path(runtime)):
        return Path(runtime) / FOLDER_NAME
    if os.geteuid() == 0 and _owned_and_private(Path("/run"), allow_read=True):
        return Path("/run") / FOLDER_NAME
    return Path.home() / ".cache" / FOLDER_NAME


def _uid_registry() -> Path:
    """Where root's sandboxes hold their user ids: one folder for the whole machine
    (``/run/course-grading``), whatever ``$XDG_RUNTIME_DIR`` each grader has, so that two
    graders never hand out the same user id."""
    if _owned_and_private(Path("/run"), allow_read=True):
        return Path("/run") / FOLDER_NAME
    return runtime_dir()


def _owned_and_private(folder: Path, allow_read: bool = False) -> bool:
    try:
        info = os.stat(folder, follow_symlinks=False)
    except OSError:
        return False
    forbidden = 0o022 if allow_read else 0o077
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and not info.st_mode & forbidden)


def open_private_dir(folder: Path) -> int:
    """A descriptor of ``folder`` (created with mode 0700 if missing, parents included), after
    checking that it is a real folder of this user's that nobody else may write.

    Raises
    ------
    UnsafeRuntimeState
        ``folder`` is a link, not a folder, another user's, or writable by others.
    """
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise UnsafeRuntimeState(f"the grader's runtime folder {folder} is not a folder of its "
                                 f"own (a link or a file put there?): {err.strerror}; remove "
                                 "it, or set XDG_RUNTIME_DIR to a folder of yours") from None
    info = os.fstat(fd)
    problem = _problem(info, "folder")
    if problem is not None:
        os.close(fd)
        raise UnsafeRuntimeState(f"refusing the grader's runtime folder {folder}: {problem}; "
                                 "remove it, or set XDG_RUNTIME_DIR to a folder of yours")
    return fd


def private_folder(name: str) -> Path:
    """The folder ``name`` of this user's runtime folder, created and checked as
    :func:`open_private_dir` does (e.g. the embedded Dask cluster's scratch space, which would
    otherwise be the fixed ``/tmp/dask-scratch-space``)."""
    folder = runtime_dir() / name
    os.close(open_private_dir(folder))
    return folder


def _problem(info: os.stat_result, kind: str) -> str | None:
    if info.st_uid != os.geteuid():
        return f"the {kind} belongs to user id {info.st_uid}, not to this user ({os.geteuid()})"
    if info.st_mode & 0o022:
        return f"others may write the {kind} (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


class SandboxIdentity:
    """The user id of one sandbox, held until :meth:`release` (see the module doc).

    ``uid`` is None where the grader is not root: the sandbox then runs as the grader's user.
    ``number`` is the sandbox's number (0 where not root).
    """

    def __init__(self, number: int, uid: int | None, lock_fd: int | None) -> None:
        self.number, self.uid, self._lock_fd = number, uid, lock_fd

    @classmethod
    def claim(cls, folder: Path | None = None) -> SandboxIdentity:
        """A user id that no other live sandbox holds (root), or the grader's own (not root)."""
        if os.geteuid() != 0:
            return cls(0, None, None)
        dir_fd = open_private_dir((folder or _uid_registry()) / "sandbox-uids")
        start = secrets.randbelow(SPREAD)  # a just-released id is seldom the next one handed out
        try:
            for step in range(MAX_SANDBOXES):
                number = (start + step) % MAX_SANDBOXES
                fd = _lock_file(dir_fd, f"{number}.lock")
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                return cls(number, ROOT_UID_BASE + number, fd)
        finally:
            os.close(dir_fd)
        raise RuntimeError(f"more than {MAX_SANDBOXES} sandboxes alive on this machine")

    def release(self) -> None:
        """Give the user id back (idempotent); its processes must be gone already."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _lock_file(dir_fd: int, name: str) -> int:
    """Open (or create, exclusively) the lock file ``name`` of the folder ``dir_fd``, refusing a
    link, a file that is not regular, or one that another user owns."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError as err:
            raise UnsafeRuntimeState(f"refusing the lock file {name} of the grader's runtime "
                                     f"folder: {err.strerror}") from None
    info = os.fstat(fd)
    problem = None if stat.S_ISREG(info.st_mode) else "it is not a regular file"
    problem = problem or _problem(info, "file")
    if problem is not None:
        os.close(fd)
        raise UnsafeRuntimeState(f"refusing the lock file {name} of the grader's runtime "
                                 f"folder: {problem}")
    return fd
