"""Where the grading tasks run: Dask distributed, on this machine or on a cluster.

With no scheduler address, :func:`connect` starts an embedded local cluster: one worker
process per ``workers``, one thread each (a worker grades one submission at a time, in its own
sandbox). With ``tcp://HOST:8786`` it connects to an existing cluster, started by hand
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
from collections.abc import Callable, Iterator
from typing import Any

from course_pkg.grading.identity import private_folder
from course_pkg.grading.task import grade


class SchedulerLost(RuntimeError):
    """The connection to the Dask scheduler was lost mid-batch."""


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A Dask client: to ``scheduler``, or to an embedded cluster of ``workers`` processes."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.worker.daemon": False,
                          "distributed.scheduler.allowed-failures": 2,
                          "logging.distributed": "error"}):
        if scheduler:
            try:
                client = Client(scheduler, timeout="20s")
            except OSError as err:
                raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler} ({err}); "
                                   "is `dask scheduler` running there?") from None
            with client:
                yield client
            return
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", scheduler_port=0, dashboard_address=":0",
                          worker_dashboard_address=":0", silence_logs=50,
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
    job_future = client.scatter(job, broadcast=True, hash=False)
    futures = {client.submit(grade, job_future, s, key=f"grade-{job['assignment']}-{i}",
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
