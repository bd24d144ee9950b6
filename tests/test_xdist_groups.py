"""The suite's distribution over pytest-xdist workers (``make test`` runs ``-n 2 --dist
loadgroup``): a module fixture is built once, not once per worker.

Under pytest 9.2 xdist's own grouping silently stopped working (pytest-xdist issue #1386) and
every expensive module fixture of the suite was built on both workers; ``tests/conftest.py``
groups the tests that share such a fixture and writes the group where this pytest reads it.
This runs a small suite under the same options, with the same conftest, and counts the builds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parent / "conftest.py"

PROBE = '''
import os
from pathlib import Path

import pytest

LOG = Path(__file__).parent / "log.txt"


def note(line):
    with LOG.open("a") as log:
        log.write(line + "\\n")


@pytest.fixture(scope="module")
def expensive():
    note("build " + os.environ["PYTEST_XDIST_WORKER"])
    return 1


@pytest.mark.parametrize("i", range(8))
def test_needs_the_module_fixture(expensive, i):
    note("ran " + os.environ["PYTEST_XDIST_WORKER"])


@pytest.mark.xdist_group("marked")
@pytest.mark.parametrize("i", range(8))
def test_marked(i):
    note("marked " + os.environ["PYTEST_XDIST_WORKER"])


@pytest.mark.parametrize("i", range(8))
def test_free(i):
    pass
'''


def test_a_module_fixture_is_built_once_and_a_group_runs_on_one_worker(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_probe.py").write_text(PROBE)
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup",
                           "-p", "no:cacheprovider", "-q", "test_probe.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = (tmp_path / "log.txt").read_text().split("\n")
    builds = [line for line in lines if line.startswith("build ")]
    assert len(builds) == 1, lines
    ran = {line.split()[1] for line in lines if line.startswith("ran ")}
    assert ran == {builds[0].split()[1]}, lines
    assert len({line.split()[1] for line in lines if line.startswith("marked ")}) == 1, lines
    assert "24 passed" in done.stdout, done.stdout
