"""The fork server of the embedded Dask cluster: one clean process that imports Dask, nbgrader
and the grader once, and from which every worker is forked.

A worker spawned afresh imported them itself: about 1.3 s of CPU per worker, every batch, on
the cores that grade. The fork server is a process of its own, never the instructor's (which
holds the gradebook and may be grading). ``course autograde`` starts it first (:func:`start`),
so that it imports while the instructor's process reads the class; the cluster
(:func:`course_pkg.grading.cluster.connect`) starts it otherwise. It lives as long as the
process that started it.
"""

from __future__ import annotations

import multiprocessing
import os

PRELOAD = ("distributed", "course_pkg.grading.cluster", "course_pkg.grading.task",
           "course_pkg.grading.trusted", "nbgrader.apps", "nbgrader.converters",
           "nbgrader.preprocessors")
"""What the fork server imports once, for every worker forked from it."""
WORKER_ENVIRONMENT = {"MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1",
                      "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
"""What Dask's nanny puts in the environment before it starts a worker (its default
``distributed.nanny.pre-spawn-environ``): a forked worker has the fork server's."""
HASH_SEED = "6640"
"""The ``PYTHONHASHSEED`` that Dask's nanny gives its workers when none is set."""


def start() -> None:
    """Start the fork server now, in the background, with the workers' environment (a no-op
    when it runs already)."""
    from multiprocessing import forkserver

    os.environ.update(WORKER_ENVIRONMENT)
    if os.environ.get("PYTHONHASHSEED") in (None, "0"):
        os.environ["PYTHONHASHSEED"] = HASH_SEED
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
    forkserver.ensure_running()
