"""The website serves the course's package: the wheel, its address, and the site's numbering.

One setting, ``html.baseurl`` in ``_config.yml`` (Sphinx's ``html_baseurl``, beside
``repository.url``), names the address the site is published at. Every build

- makes a wheel of ``course_pkg`` (the full package, as a clone installs it) and publishes it as
  ``<site>/packages/course_pkg-<version>-py3-none-any.whl``; its ``student`` extra adds
  ipywidgets to NumPy and Matplotlib (no JupyterLab, no nbgrader);
- writes into that wheel's copy of :mod:`course_pkg.checks.site` the site's address and how
  it numbers its chapters and equations, so that the feedback of a student who installed it
  cites "(4.3) in chapter 4" with a link;
- gives the page ``book/get_started.md`` its ``{course-install}`` directive: the wheel's link,
  its version and the one command that installs it;
- gives the first cell of every downloaded chapter and problem set
  (``student_notebooks.setup_source``) the wheel's address, or, while ``html.baseurl`` is
  unset, the exact file to download and the command to run.

``tests/test_wheel.py`` installs the wheel in a bare virtual environment.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.errors import ConfigError
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = "packages"
"""The site's folder of the wheel."""


def package_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The ``version`` of ``[project]`` in ``pyproject.toml``."""
    text = pyproject.read_text()
    project = text.split("[project]", 1)[-1].split("\n[", 1)[0]
    match = re.search(r'^version\s*=\s*"([^"]+)"', project, re.M)
    if not match:
        raise ValueError(f"no version in the [project] table of {pyproject}")
    return match.group(1)


def wheel_name(version: str) -> str:
    return f"course_pkg-{version}-py3-none-any.whl"


def site_address(value: str | None) -> str:
    """``html_baseurl`` as the site's address ending in "/", or "" while it is unset.

    Raises
    ------
    sphinx.errors.ConfigError
        If it is set but not an http(s) address, or is a placeholder.
    """
    import site_links

    value = (value or "").strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"html.baseurl in _config.yml must be the site's address, "
                          f"https://<host>/<path>/; got {value!r}")
    if site_links.is_placeholder(value):
        raise ConfigError(f"html.baseurl in _config.yml is a placeholder ({value!r}): set it to "
                          f"the address the site is published at, or leave it empty")
    return value.rstrip("/") + "/"


@dataclass(frozen=True)
class Wheel:
    """The package as the site publishes it."""

    name: str
    version: str
    url: str = ""
    """Its address on the site, or "" while the site has none."""

    @property
    def install(self) -> str:
        """The one command that installs it (from the site, or from the downloaded file)."""
        spec = f"course_pkg[student] @ {self.url}" if self.url else f"{self.name}[student]"
        return f'pip install "{spec}"'


def wheel_of(app: Any) -> Wheel:
    version = package_version()
    address = getattr(app, "course_site_address", "")
    name = wheel_name(version)
    return Wheel(name, version, f"{address}{PACKAGES}/{name}" if address else "")


def read_address(app: Any, config: Any) -> None:
    """config-inited: check ``html_baseurl`` once and keep the wheel's description."""
    app.course_site_address = site_address(config.html_baseurl)
    if app.course_site_address:
        config.html_baseurl = app.course_site_address
    app.course_wheel = wheel_of(app)


# -- the site's numbering ------------------------------------------------------------------------
@dataclass
class SiteMap:
    """How the built site numbers and names its pages, equations and labelled targets."""

    address: str = ""
    chapters: dict[str, tuple[str, str]] = field(default_factory=dict)
    """page -> (number, title)"""
    equations: dict[str, tuple[str, str]] = field(default_factory=dict)
    """equation label -> (page, number)"""
    targets: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """label of a section, exercise, theorem, ... -> (page, anchor, text such as 'Theorem 4.1')"""


def _number(value: Any) -> str:
    return ".".join(str(v) for v in value) if value else ""


def site_map(env: Any, address: str = "") -> SiteMap:
    """The numbering of the built site, from Sphinx's environment after it resolved it."""
    found = SiteMap(address=address)
    for page in env.found_docs:
        number = _number((getattr(env, "toc_secnumbers", {}).get(page) or {}).get(""))
        title = env.titles[page].astext() if page in env.titles else page
        found.chapters[page] = (number, title)
    fignumbers = getattr(env, "toc_fignumbers", {}) or {}
    # Node ids are lower case ("mf-D" has "equation-mf-d"); the math domain keeps the labels.
    labels = {label.lower(): label for label in
              (getattr(env.get_domain("math"), "equations", {}) or {})}
    for page, kinds in fignumbers.items():
        for node_id, number in (kinds.get("displaymath") or {}).items():
            if node_id.startswith("equation-"):
                name = node_id[len("equation-"):]
                found.equations[labels.get(name, name)] = (page, _number(number))
    std = env.get_domain("std")
    for label, (page, anchor, text) in std.labels.items():
        number = _number(fignumbers.get(page, {}).get("exercise", {}).get(anchor))
        title = f"Exercise {number}" if number else (text or label)
        found.targets[label] = (page, anchor, title)
    for label, info in (getattr(env, "proof_list", {}) or {}).items():
        page = info.get("docname", "")
        number = "" if info.get("nonumber") else _number(
            fignumbers.get(page, {}).get(info.get("countertype", ""), {}).get(label))
        kind = str(info.get("realtype", "")).title()
        found.targets[label] = (page, label, f"{kind} {number}".strip())
    return found


def site_module(found: SiteMap) -> str:
    """The text of :mod:`course_pkg.checks.site` for the wheel: the repository's copy with the
    site's values in place of its empty ones."""
    text = (ROOT / "course_pkg" / "checks" / "site.py").read_text()
    values = {
        "ADDRESS": repr(found.address),
        "CHAPTERS": repr(dict(sorted(found.chapters.items()))),
        "EQUATIONS": repr(dict(sorted(found.equations.items()))),
    }
    for name, value in values.items():
        pattern = re.compile(rf"^{name}(: [^=]+)? = .*$", re.M)
        if not pattern.search(text):
            raise ValueError(f"course_pkg/checks/site.py has no line '{name} = ...' to fill in")
        text = pattern.sub(lambda m, n=name, v=value: f"{n}{m.group(1) or ''} = {v}", text,
                           count=1)
    return text


# -- the wheel -------------------------------------------------------------------------------
def build_wheel(target: Path, found: SiteMap, root: Path = ROOT) -> Path:
    """Build the wheel of ``root``'s course_pkg into ``target``, its site module filled in from
    ``found``; return the wheel's path. The working tree is not written to."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="course-wheel-") as tmp:
        stage = Path(tmp, "src")
        stage.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(root / name, stage / name)
        shutil.copytree(root / "course_pkg", stage / "course_pkg",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (stage / "course_pkg" / "checks" / "site.py").write_text(site_module(found))
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                   "--quiet", "--wheel-dir", str(Path(tmp, "dist")), str(stage)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError("building the wheel of course_pkg failed:\n"
                               + (done.stderr or done.stdout)[-3000:])
        built = sorted(Path(tmp, "dist").glob("course_pkg-*.whl"))
        if len(built) != 1:
            raise RuntimeError(f"expected one course_pkg wheel, pip wrote {built}")
        wheel = target / built[0].name
        shutil.copy2(built[0], wheel)
    return wheel


def publish_wheel(app: Any, exception: Exception | None) -> None:
    """build-finished: the wheel, with the site's numbering, into ``<site>/packages/``."""
    if exception is not None or app.builder.format != "html":
        return
    found = site_map(app.env, getattr(app, "course_site_address", ""))
    wheel = build_wheel(Path(app.outdir, PACKAGES), found)
    expected = app.course_wheel.name
    if wheel.name != expected:
        raise RuntimeError(f"the wheel is {wheel.name}, the pages name {expected}")


class InstallDirective(SphinxDirective):
    """``{course-install}``: the wheel's link, version and the one command that installs it."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        wheel: Wheel = self.env.app.course_wheel
        up = "../" * len(Path(self.env.docname).parent.parts)
        href = f"{up}{PACKAGES}/{wheel.name}"
        lines = [
            f"- **The package:** <a class=\"course-wheel\" href=\"{href}\" "
            f"download=\"{wheel.name}\">{wheel.name}</a> (course_pkg version {wheel.version}).",
            "- **The one command**, in a terminal or (with `%pip`) in a notebook cell:",
            "",
            "  ```bash",
            f"  {wheel.install}",
            "  ```",
            "",
        ]
        if not wheel.url:
            lines += ["  Run it in the folder where you saved the file.", ""]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.env.docname), self.content_offset,
                                container)
        return container.children


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", read_address, priority=450)
    app.connect("build-finished", publish_wheel)
    app.add_directive("course-install", InstallDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
