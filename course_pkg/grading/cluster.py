"""Where the grading tasks run: in this process, or on Dask distributed, here or on a cluster.

:func:`grade_batch` picks the way. One submission, or ``--workers 1``, is graded in this
process, with no cluster at all: a late submission's grade is out as soon as nbgrader's own
would be. A batch starts the embedded cluster in a thread. A small batch (at most
:data:`HERE_WHILE_STARTING` submissions per worker) is graded here until the workers are up, so
that its first results come as fast as a single one; a larger one waits for them, since grading
here slows the cluster's start (both run in this process) by more than it gains. Then the rest
go to the cluster.

With no scheduler address, :func:`connect` starts an embedded local cluster: one worker
process per ``workers``, one thread each (a worker grades one submission at a time, in its own
sandbox); its workers ignore Ctrl-C, which the instructor's process handles alone.
With ``tcp://HOST:8786`` it connects to an existing cluster, started by hand
(``dask scheduler``, ``dask worker``) or by dask-jobqueue or dask-kubernetes. The same tasks
(:func:`course_pkg.grading.task.grade`) run either way, and they carry all their data: no
file system is shared.

:func:`grade_all` submits one task per submission and hands each result to the caller as soon
as it is in. Dask reruns the task of a worker that died on another worker; a task whose
workers died too often, or that raised, comes back as a failure with the reason, and the batch
goes on. A lost scheduler stops the batch with :class:`SchedulerLost`: everything recorded so
far is kept, and the same command resumes from the manifest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from course_pkg.grading import forkserver
from course_pkg.grading.identity import private_folder
from course_pkg.grading.task import grade


class SchedulerLost(RuntimeError):
    """The connection to the Dask scheduler was lost mid-batch."""


QUIET_WORKER = """
import signal, threading
if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
"""
"""Preloaded by every worker of the embedded cluster: Ctrl-C reaches the whole process group
of a terminal, and only the instructor's process should answer it (one line, exit 130)."""

QUIET_LOOPS = {"distributed.worker.profile.enabled": False,
               "distributed.admin.system-monitor.interval": "5s",
               "distributed.worker.memory.monitor-interval": "1s"}
"""Dask's diagnostics, made rare: a grading batch keeps both cores busy, and by default each
worker samples its task's stack every 10 ms for the dashboard's profile, and every event loop
reads its memory every 100 ms and the system's counters every 500 ms for the dashboard's charts.
The profiler alone cost a worker about 1 s of CPU per 20 ps3 submissions. Nothing of the grading
reads them; a worker's memory is still watched once a second (and each sandbox has its own
limit). The loops' 20 ms tick is left as it is."""

Done = Callable[[dict[str, Any], dict[str, Any]], None]
HERE_WHILE_STARTING = 3
"""A batch of at most this many submissions per worker is graded in this process while the
embedded cluster starts (a class of 6 on 2 workers: its first result after ~3.4 s instead of
~4.5 s, ``benchmarks/latency_results.md``). A larger batch waits for the workers: measured on 2
cores, 40 x ps3, three interleaved pairs, waiting saved 0.5-1.5 s of the batch's 14-16 s (the
machine was idle 1 CPU-s less)."""


def grade_batch(scheduler: str | None, workers: int, job: dict[str, Any],
                submissions: list[dict[str, Any]], done: Done,
                stage: Callable[[str], None] | None = None,
                alive: Callable[[Callable[[], int]], None] | None = None) -> None:
    """Grade ``submissions``, calling ``done(submission, answer)`` for each as it finishes.

    ``stage`` hears what is happening before the first result (``starting 2 workers``,
    ``grading``); ``alive`` is given a function that counts the workers alive now.
    """
    if not submissions:
        return
    with interrupt_watch() as interrupted:
        def recorded(submission: dict[str, Any], answer: dict[str, Any]) -> None:
            done(submission, answer)
            interrupted()

        _grade_batch(scheduler, workers, job, submissions, recorded,
                     stage or (lambda text: None), alive or (lambda count: None))


@contextlib.contextmanager
def interrupt_watch() -> Iterator[Callable[[], None]]:
    """A check, to call between two submissions, that raises ``KeyboardInterrupt`` once Ctrl-C
    has come (in the main thread; elsewhere a check that does nothing).

    The signal writes a byte to a pipe (:func:`signal.set_wakeup_fd`) whatever the thread that
    received it and whatever Python code was running, so the batch stops at the next submission
    even if the handler's exception is lost on the way (a finalizer, code that catches
    everything). A process started with SIGINT ignored (a shell's background job) hears neither.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    read, write = os.pipe()
    for fd in (read, write):
        os.set_blocking(fd, False)
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)

    def interrupted() -> None:
        try:
            received = os.read(read, 512)
        except BlockingIOError:
            return
        if signal.SIGINT in received:
            raise KeyboardInterrupt

    try:
        yield interrupted
    finally:
        signal.set_wakeup_fd(previous)
        os.close(read)
        os.close(write)


def _grade_batch(scheduler: str | None, workers: int, job: dict[str, Any],
                 submissions: list[dict[str, Any]], done: Done, stage: Callable[[str], None],
                 alive: Callable[[Callable[[], int]], None]) -> None:
    if scheduler:
        stage(f"connecting to {scheduler}")
        with connect(scheduler, workers) as client:
            alive(lambda: len(client.scheduler_info().get("workers", {})))
            stage("grading")
            grade_all(client, job, submissions, done)
        return
    if workers == 1 or len(submissions) == 1:
        alive(lambda: 1)
        stage("grading")
        try:
            for submission in submissions:
                done(submission, grade_here(job, submission))
        finally:
            _forget_prepared()
        return
    starter = _Starter(workers)
    here = len(submissions) <= HERE_WHILE_STARTING * workers
    stage(f"starting {workers} workers{' (grading here meanwhile)' if here else ''}")
    alive(lambda: int(here) + starter.count())
    try:
        queue = list(submissions)
        while queue and here and not starter.ready.is_set():
            submission = queue.pop(0)
            done(submission, grade_here(job, submission))
        if queue:
            client = starter.client()
            alive(lambda: len(client.scheduler_info().get("workers", {})))
            stage("grading")
            grade_all(client, job, queue, done)
    finally:
        starter.close()
        _forget_prepared()


def _forget_prepared() -> None:
    """Remove the private course folders that grading here prepared (a worker's go with it)."""
    from course_pkg.grading import task

    task.forget_prepared()


def grade_task(job: dict[str, Any], submission: dict[str, Any]) -> dict[str, Any]:
    """:func:`course_pkg.grading.task.grade`, told the gradebook's schema version: nbgrader
    then stamps the task's private gradebook without starting the ``alembic`` command."""
    version = job.get("alembic_version")
    if version:
        import nbgrader.api

        nbgrader.api.get_alembic_version = lambda: version
    return grade(job, submission)


def grade_here(job: dict[str, Any], submission: dict[str, Any]) -> dict[str, Any]:
    """One submission graded in this process (the task a worker would run), or its failure.

    nbgrader reports every exception of a grading as the submission's failure, Ctrl-C's
    ``KeyboardInterrupt`` included: an interrupt that arrives meanwhile is noted here and raised
    again once nbgrader returns, so that the batch stops and that submission is not recorded.
    """
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        interrupted.set()
        signal.default_int_handler(signum, frame)

    here = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if here else None
    try:
        answer = grade_task(job, submission)
    except Exception as err:  # noqa: BLE001 - as a worker's failure: reported, batch goes on
        answer = _failure(submission["student"], err)
    finally:
        if here:
            signal.signal(signal.SIGINT, previous)
    if interrupted.is_set():
        raise KeyboardInterrupt
    return answer


class _Starter:
    """The embedded cluster, started (and closed: Dask's client is bound to the thread that
    opened it) in a thread of its own."""

    def __init__(self, workers: int) -> None:
        self.ready = threading.Event()
        self._closing = threading.Event()
        self._client: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(workers,), daemon=True,
                                        name="cluster")
        self._thread.start()

    def _run(self, workers: int) -> None:
        # Ctrl-C is the batch thread's: this thread, and the scheduler's and client's threads
        # that it starts, block SIGINT, so that the kernel delivers it to the main thread, whose
        # waits it then interrupts. The fork server is started before, so that the workers
        # forked from it do not block it.
        forkserver.start()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with connect(None, workers) as client:
                self._client = client
                self.ready.set()
                self._closing.wait()
        except BaseException as err:  # noqa: BLE001 - handed to the batch's thread
            self._error = err
        finally:
            self.ready.set()

    def count(self) -> int:
        if self._client is None:
            return 0
        return len(self._client.scheduler_info().get("workers", {}))

    def client(self) -> Any:
        self.ready.wait()
        if self._client is None:
            raise RuntimeError(f"the embedded Dask cluster did not start: {self._error}")
        return self._client

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=120)


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A Dask client: to ``scheduler``, or to an embedded cluster of ``workers`` processes."""
    import dask
    from distributed import Client, LocalCluster

    forked = {} if scheduler else {"distributed.worker.multiprocessing-method": "forkserver"}
    with dask.config.set({"distributed.worker.daemon": False,
                          "distributed.scheduler.allowed-failures": 2,
                          "logging.distributed": "error", **QUIET_LOOPS, **forked}):
        if scheduler:
            try:
                client = Client(scheduler, timeout="20s")
            except OSError as err:
                raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler} ({err}); "
                                   "is `dask scheduler` running there?") from None
            with client:
                yield client
            return
        forkserver.start()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", scheduler_port=0, dashboard_address=":0",
                          worker_dashboard_address=":0", silence_logs=50,
                          preload=[QUIET_WORKER],
                          local_directory=str(private_folder("dask"))) as cluster, \
                Client(cluster) as client:
            yield client


def grade_all(client: Any, job: dict[str, Any], submissions: list[dict[str, Any]],
              done: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    """Grade every submission on ``client``'s cluster; call ``done(submission, answer)`` for
    each, once, as it finishes (see the module doc)."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    if not submissions:
        return
    # The job travels as the result of a task, not as scattered data: a task's result is
    # computed again when the worker holding it dies, scattered data is lost with its last
    # copy (the batch may start while one worker is up) and its dependents are cancelled.
    job_future = client.submit(_the_job, job, pure=False)  # a key of its own
    futures = {client.submit(grade_task, job_future, s, key=f"grade-{job['assignment']}-{i}",
                             pure=False): s for i, s in enumerate(submissions)}
    for future in as_completed(futures):
        submission = futures.pop(future)
        try:
            answer = future.result()
        except (FutureCancelledError, OSError) as err:
            for other in futures:
                other.cancel()
            raise SchedulerLost(f"lost the Dask scheduler ({type(err).__name__}); the grades "
                                "recorded so far are kept: run the same command again to grade "
                                "the rest") from None
        except Exception as err:  # noqa: BLE001 - one task's failure, reported, batch goes on
            answer = _failure(submission["student"], err)
        done(submission, answer)


def _the_job(job: dict[str, Any]) -> dict[str, Any]:
    """The job, as a task's result that the cluster can compute again (see :func:`grade_all`)."""
    return job


def _failure(student: str, err: BaseException) -> dict[str, Any]:
    """The answer of a task that raised ``err``: a grader fault (regraded by the next run),
    unless its worker died while grading, which the submission may have caused."""
    answer = {"student": student, "success": False, "stopped": _why(err), "events": []}
    if type(err).__name__ != "KilledWorker":
        answer["fault"] = f"grader fault: {_why(err)}"
    return answer


def _why(err: BaseException) -> str:
    name = type(err).__name__
    if name == "KilledWorker":
        return ("the grading worker died while grading it, on every worker that tried (out of "
                "memory, or killed)")
    if name in ("SandboxUnavailable", "WrongPackage"):
        return f"the grading worker refused: {err}"
    return f"the grading task failed: {name}: {str(err)[:200]}"
