"""Execute the book's outdated notebooks two at a time, before Sphinx reads them.

myst-nb (``execute_notebooks: cache``) executes each notebook while Sphinx reads it, one after
the other, so a clean build uses one core. At ``builder-inited`` this hook reads every document
of ``_toc.yml`` exactly as myst-nb will (its own reader and configuration, after the
``source-read`` fingerprint of :mod:`student_notebooks`), asks the execution cache which ones
have no match, and executes those in worker processes, ``COURSE_BOOK_JOBS`` at a time (default:
the number of cores, at most 2), with the same call, working directory, timeout and
``allow_errors`` as myst-nb. Each success is stored in the cache, where myst-nb then finds it;
a notebook that fails is left alone, so myst-nb executes it again and reports the error as
usual. The built pages and notebooks are the same as without this hook; only the wall time
changes.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)


def toc_documents(toc: Path) -> list[str]:
    """The documents named in a Jupyter Book ``_toc.yml`` (root first), without suffix."""
    data = yaml.safe_load(toc.read_text())
    found = [data["root"]] if data.get("root") else []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)

    walk(data)
    return found


def _execute(job: tuple[dict, str, int, bool]) -> tuple[dict | None, str | None, float]:
    """In a worker: execute one notebook; (executed notebook, error text, seconds)."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    notebook, cwd, timeout, allow_errors = job
    nb = nbformat.from_dict(notebook)
    result = single_nb_execution(nb, cwd=cwd, allow_errors=allow_errors, timeout=timeout,
                                 meta_override=True)
    if result.err is not None:
        return None, result.exc_string or repr(result.err), result.time
    return nb, None, result.time


def jobs() -> int:
    requested = os.environ.get("COURSE_BOOK_JOBS")
    if requested:
        return max(1, int(requested))
    return max(1, min(2, os.cpu_count() or 1))


def execute_outdated(app: Any) -> None:
    """builder-inited: fill the execution cache with the notebooks it lacks, in parallel."""
    import nbformat
    import student_notebooks
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from myst_nb.core.read import create_nb_reader

    nb_config = getattr(app.env, "mystnb_config", None)
    md_config = getattr(app.env, "myst_config", None)
    if nb_config is None or md_config is None or nb_config.execution_mode != "cache":
        return
    workers = jobs()
    toc = Path(getattr(app.config, "external_toc_path", "") or "")
    if workers < 2 or not toc.is_file():
        return
    cache = get_cache(nb_config.execution_cache_path or ".jupyter_cache")
    fingerprint = getattr(app, "course_pkg_fingerprint", None)
    if fingerprint is None:
        fingerprint = app.course_pkg_fingerprint = student_notebooks.package_fingerprint()
    todo = []
    for docname in toc_documents(toc):
        path = next((Path(app.srcdir, docname + s) for s in (".md", ".ipynb")
                     if Path(app.srcdir, docname + s).is_file()), None)
        if path is None:
            continue
        text = student_notebooks.inject_fingerprint(path.read_text(), fingerprint)
        reader = create_nb_reader(str(path), md_config, nb_config, text)
        if reader is None:
            continue
        notebook = reader.read(text)
        try:
            cache.match_cache_notebook(notebook)
            continue
        except KeyError:
            pass
        todo.append((path, notebook))
    if len(todo) < 2:
        return
    # Longest first (roughly: the most code), so that the two workers finish together.
    todo.sort(key=lambda item: -sum(len(c.source) for c in item[1].cells
                                    if c.cell_type == "code"))
    LOGGER.info(f"executing {len(todo)} notebooks, {workers} at a time")
    start = time.perf_counter()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        payloads = [(dict(nb), str(path.parent), nb_config.execution_timeout,
                     nb_config.execution_allow_errors) for path, nb in todo]
        for (path, _), (executed, _error, seconds) in zip(todo, pool.map(_execute, payloads),
                                                         strict=True):
            if executed is None:
                LOGGER.info(f"{path.name}: failed in a worker; myst-nb will run it again")
                continue
            cache.cache_notebook_bundle(
                CacheBundleIn(nbformat.from_dict(executed), str(path),
                              data={"execution_seconds": seconds}),
                check_validity=False, overwrite=True)
    LOGGER.info(f"executed {len(todo)} notebooks in {time.perf_counter() - start:.1f} s")


def setup(app: Any) -> dict[str, Any]:
    # after myst-nb's own builder-inited handler, which creates env.mystnb_config
    app.connect("builder-inited", execute_outdated, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
