"""Shared pytest configuration: hypothesis profiles and generic fixtures.

Keep this file generic: fixtures that one test module needs belong in that module.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# "default": quick and deterministic enough for every run; "thorough": many more examples,
# e.g. HYPOTHESIS_PROFILE=thorough pytest tests/test_gradients.py
settings.register_profile(
    "default", deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", deadline=None, max_examples=1000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded NumPy generator, so that every test sees the same numbers."""
    return np.random.default_rng(20240601)


# -- running the suite on several workers (pytest -n 2 --dist loadgroup) ----------------------
#
# A module- or session-scoped fixture is built once per *worker* that runs a test needing it:
# when the tests of one module are spread over both workers, its fixture (a whole graded class,
# a released course, a venv) is built twice. So every test that needs a fixture of a wider scope
# than the function, defined in its own module, is kept on one worker: it gets an xdist group
# named after the module, unless it already has a group (the book's modules share "book"; a
# module may split its tests into several groups by fixture). Tests that read the built book
# without its fixture join the book's group, so that they never wait on another worker's build.
#
# Then the work units are ordered longest first (list scheduling): xdist hands them out in the
# order of the collection, so the longest chains start at once, on different workers, and the
# short tests fill in behind them. The costs below are measured seconds on 2 busy cores (the
# durations of a full run); they only order the run, nothing depends on their being exact.
# A group missing here costs what its tests' count says, after every group listed.

BOOK_READERS = {
    "test_numbering.py::test_the_built_site_shows_numbers_not_labels",
    "test_numbering.py::test_built_equation_numbers_restart_in_every_chapter",
}
"""Tests that call ``test_book_build.built_site`` themselves (no fixture shows it)."""

GROUP_SECONDS: dict[str, float] = {
    # seconds of worker time in a full run on a busy 2-core machine (2679 s wall, before the
    # groups worked), less the second build of each module fixture; only their order matters
    "book": 650, "test_assignments": 500, "test_grading_pipeline": 490, "test_cli": 300,
    "redteam_ps1": 290, "test_cluster": 225, "test_redteam_verdicts": 200,
    "jupyterlab": 171, "redteam_ps3": 142, "test_redteam_runtime": 136, "redteam_ps5": 80,
    "test_canvas": 78, "redteam_ps6": 70, "test_wheel": 54, "test_sandbox": 30,
    "test_initialisation": 24,
}
"""Cost of each xdist group: the longest start first."""

WIDE_SCOPES = {"module", "class", "package", "session"}


def _groups(item: pytest.Item) -> list[str]:
    return [str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")]


def _needs_a_wide_fixture_of_its_module(item: pytest.Item) -> bool:
    """Whether ``item`` uses a fixture of wider scope than the function that its own module
    defines (a fixture of this conftest or a plugin is shared by every module anyway)."""
    info = getattr(item, "_fixtureinfo", None)
    module = item.nodeid.split("::", 1)[0]
    if info is None:
        return False
    return any(d.scope in WIDE_SCOPES and d.baseid == module
               for defs in info.name2fixturedefs.values() for d in defs)


def _group(item: pytest.Item) -> str | None:
    """The work unit's name, as xdist's loadgroup makes it from the item's marks."""
    groups = _groups(item)
    return "_".join(sorted(set(groups))) if groups else None


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_names_groups(config: pytest.Config,
                                               items: list[pytest.Item]) -> None:
    """On an xdist worker under ``--dist loadgroup``: make the group part of the test's id.

    xdist tells its scheduler a test's group by appending ``@group`` to the test's id, which it
    writes to ``item._nodeid``; pytest 9.2 keeps the id in ``item._id`` (a ``NodeId``) and
    ignores ``_nodeid``, so every group was silently split over the workers, and each worker
    built every module fixture again (pytest-xdist issue #1386). This writes the same suffix where
    this pytest reads it, after xdist's own hook; with an older pytest it does nothing."""
    if not getattr(config.option, "loadgroup", False):  # set on xdist's workers only
        return
    for item in items:
        group = _group(item)
        node_id = getattr(item, "_id", None)
        if group is None or node_id is None or item.nodeid.endswith(f"@{group}"):
            continue
        item._id = type(node_id).parse(f"{item.nodeid}@{group}")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests that share an expensive fixture; start the longest groups first."""
    for item in items:
        if _groups(item):
            continue
        path, _, name = item.nodeid.partition("::")
        file = path.rpartition("/")[2]
        if f"{file}::{name.split('[')[0]}" in BOOK_READERS:
            item.add_marker(pytest.mark.xdist_group("book"))
        elif _needs_a_wide_fixture_of_its_module(item):
            item.add_marker(pytest.mark.xdist_group(file.removesuffix(".py")))
    count: dict[str, int] = {}
    for item in items:
        group = _group(item)
        if group is not None:
            count[group] = count.get(group, 0) + 1

    def cost(item: pytest.Item) -> tuple[float, int]:
        group = _group(item)
        if group is None:
            return (0.0, 0)
        return (-GROUP_SECONDS.get(group, 0.0), -count[group])

    items.sort(key=cost)  # stable: the tests of a group keep their order
