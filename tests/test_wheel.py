"""The package as the website serves it (book/_ext/site_package.py, issue 16).

A bare virtual environment with nothing but the site's wheel (and what its ``student`` extra
pulls in: NumPy, Matplotlib, ipywidgets; no JupyterLab, no nbgrader) installs it with the one
command that the page "Get started" shows, trains a network, and starts every problem set: its
check cell and its setup cell run. The wheel carries the site's address and numbering for the
feedback's citations. Every problem set and every chapter download starts with the same check
cell.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import problem_sets  # noqa: E402
import site_package  # noqa: E402
import student_notebooks as sn  # noqa: E402

SOURCES = sorted((ROOT / "assignments" / "source").glob("*/*.ipynb"))
SITE = site_package.SiteMap(
    address="https://course.test/backprop/",
    chapters={"book/matrix_form": ("5", "Back-propagation in matrix form")},
    equations={"mf-delta": ("book/matrix_form", "5.4")},
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return site_package.build_wheel(tmp_path_factory.mktemp("site") / "packages", SITE)


@pytest.fixture(scope="module")
def bare_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) in which the page's one command installed the
    downloaded wheel, run in the wheel's folder as the page says."""
    venv = tmp_path_factory.mktemp("student") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = site_package.Wheel(wheel.name, site_package.package_version()).install
    assert install == f'pip install "{wheel.name}[student]"'
    done = subprocess.run(f"{python} -m {install} --quiet --disable-pip-version-check",
                          shell=True, cwd=wheel.parent, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return python


def run(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})


def test_the_wheel_is_named_for_the_version_and_carries_the_site(wheel: Path) -> None:
    version = site_package.package_version()
    assert wheel.name == site_package.wheel_name(version)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        site = archive.read("course_pkg/checks/site.py").decode()
        metadata = archive.read(f"course_pkg-{version}.dist-info/METADATA").decode()
    assert "course_pkg/network.py" in names and "course_pkg/widgets/__init__.py" in names
    assert "ADDRESS = 'https://course.test/backprop/'" in site
    assert "'mf-delta': ('book/matrix_form', '5.4')" in site
    # the repository's own copy is untouched
    assert 'ADDRESS = ""' in (ROOT / "course_pkg" / "checks" / "site.py").read_text()
    student = [line for line in metadata.splitlines()
               if line.startswith("Requires-Dist:") and "extra == \"student\"" in line]
    assert any("ipywidgets" in line for line in student), student
    for heavy in ("jupyterlab", "nbgrader", "notebook"):
        assert not any(heavy in line.lower() for line in student), (heavy, student)


def test_a_bare_venv_with_the_wheel_trains_a_network(bare_venv: Path, tmp_path: Path) -> None:
    done = run(bare_venv, "\n".join([
        "import course_pkg, ipywidgets, matplotlib",
        "from course_pkg import Network, accuracy, load_digits_split, train",
        "X_train, X_test, y_train, y_test = load_digits_split()",
        "net = Network([64, 32, 10], ['tanh', 'softmax'], 'cross_entropy', seed=0)",
        "train(net, X_train, y_train, lr=0.2, epochs=15, progress=False)",
        "print(course_pkg.__version__, accuracy(net, X_test, y_test))",
        "import importlib.util",
        "print([m for m in ('jupyterlab', 'nbgrader', 'notebook')",
        "       if importlib.util.find_spec(m)])",
    ]), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    version, score = done.stdout.split("\n")[0].split()
    assert version == site_package.package_version()
    assert float(score) > 0.9
    assert done.stdout.split("\n")[1] == "[]"


def first_cells(source: Path, wheel: Path) -> str:
    """The student version's check cell and the code up to its first exercise, as a script."""
    nb = problem_sets.student_version(source)
    problem_sets.set_check_cell(nb, wheel.name, "")
    code = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.metadata.get("nbgrader", {}).get("solution"):
            break
        code.append(cell.source)
    return "\n\n".join(code)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_a_bare_venv_with_the_wheel_starts_each_problem_set(source: Path, bare_venv: Path,
                                                            wheel: Path, tmp_path: Path
                                                            ) -> None:
    done = run(bare_venv, first_cells(source, wheel), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "course_pkg 0" in done.stdout or "is installed" in done.stdout


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_problem_set_starts_with_the_check_cell(source: Path) -> None:
    nb = nbformat.read(source, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "code" and sn.SETUP_TAG in first.metadata.get("tags", [])
    name = site_package.wheel_name(site_package.package_version())
    assert first.source == sn.setup_source(name, ""), "the check cell differs from the chapters'"
    assert "nbgrader" not in first.metadata  # not locked: the site fills in its address


def test_the_check_cell_says_what_to_download_and_run_without_an_address(tmp_path: Path) -> None:
    source = sn.setup_source("course_pkg-9.9-py3-none-any.whl", "")
    missing = source.replace('find_spec("course_pkg")', 'find_spec("course_pkg_missing_xyz")')
    with pytest.raises(ModuleNotFoundError) as info:
        exec(compile(missing, "check", "exec"), {})  # noqa: S102
    message = str(info.value)
    assert "course_pkg-9.9-py3-none-any.whl" in message and "Get started" in message
    assert '%pip install "course_pkg-9.9-py3-none-any.whl[student]"' in message


def test_the_check_cell_installs_the_sites_wheel_when_the_site_has_an_address() -> None:
    url = "https://course.test/backprop/packages/course_pkg-9.9-py3-none-any.whl"
    source = sn.setup_source("course_pkg-9.9-py3-none-any.whl", url)
    missing = source.replace('find_spec("course_pkg")', 'find_spec("course_pkg_missing_xyz")')
    calls = []

    class Shell:
        def run_line_magic(self, name: str, line: str) -> None:
            calls.append((name, line))

    namespace = {"get_ipython": Shell}
    exec(compile(missing, "check", "exec"), namespace)  # noqa: S102
    assert calls == [("pip", f'install "course_pkg[student] @ {url}"')]


def test_the_problem_sets_check_cell_gets_the_sites_address() -> None:
    nb = problem_sets.student_version(SOURCES[0])
    problem_sets.set_check_cell(nb, "course_pkg-1.0-py3-none-any.whl",
                                "https://course.test/packages/course_pkg-1.0-py3-none-any.whl")
    assert "https://course.test/packages/course_pkg-1.0-py3-none-any.whl" in nb.cells[0].source
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A set")])
    problem_sets.set_check_cell(bare, "course_pkg-1.0-py3-none-any.whl")
    assert sn.SETUP_TAG in bare.cells[0].metadata["tags"] and len(bare.cells) == 2


@pytest.mark.parametrize("value, expected", [
    ("", ""), ("https://someone.github.io/backprop", "https://someone.github.io/backprop/"),
])
def test_the_site_address_is_one_setting(value: str, expected: str) -> None:
    assert site_package.site_address(value) == expected


@pytest.mark.parametrize("value", ["ftp://x.org/a", "https://example.org/course/",
                                   "course.github.io"])
def test_a_bad_site_address_is_refused(value: str) -> None:
    from sphinx.errors import ConfigError

    with pytest.raises(ConfigError, match="html.baseurl"):
        site_package.site_address(value)


def test_versions_and_python_floors_agree() -> None:
    """pyproject's version names the wheel; its Python floor is the one that .binder, the
    README and the page "Get started" state."""
    text = (ROOT / "pyproject.toml").read_text()
    floor = text.split('requires-python = ">=', 1)[1].split('"', 1)[0]
    stated = {
        "README.md": (ROOT / "README.md").read_text(),
        ".binder/requirements.txt": (ROOT / ".binder" / "requirements.txt").read_text(),
        "book/get_started.md": (ROOT / "book" / "get_started.md").read_text(),
    }
    for name, body in stated.items():
        assert f"Python {floor}" in body or f"Python >= {floor}" in body, name
        for other in ("3.9", "3.10", "3.11", "3.12"):
            if other != floor:
                assert f"Python >= {other}" not in body and f"Python {other} or" not in body, (
                    name, other)
    runtime = (ROOT / ".binder" / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-") and runtime >= f"python-{floor}"
    assert json.dumps(site_package.package_version())


def test_the_binder_install_leaves_the_work_tree_clean() -> None:
    """.binder/ installs the repository editable (no build/ folder) and postBuild's chapter
    notebooks beside their sources are ignored by git."""
    requirements = (ROOT / ".binder" / "requirements.txt").read_text().splitlines()
    assert "-e .[lab]" in requirements
    for written in ("book/gradient_descent.ipynb", "build/lib/course_pkg/network.py",
                    "course_pkg.egg-info/PKG-INFO"):
        ignored = subprocess.run(["git", "check-ignore", "-q", written], cwd=ROOT)
        assert ignored.returncode == 0, f"{written} would show as untracked after a Binder install"
    post_build = (ROOT / ".binder" / "postBuild").read_text()
    assert "student_notebooks.py book/*.md" in post_build


def test_the_one_command_installs_from_the_site_when_it_has_an_address() -> None:
    wheel = site_package.Wheel("course_pkg-1.0-py3-none-any.whl", "1.0",
                               "https://course.test/packages/course_pkg-1.0-py3-none-any.whl")
    assert wheel.install == ('pip install "course_pkg[student] @ '
                             'https://course.test/packages/course_pkg-1.0-py3-none-any.whl"')
    page = (ROOT / "book" / "get_started.md").read_text()
    assert "```{course-install}" in page
