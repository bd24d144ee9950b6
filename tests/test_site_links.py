"""Once ``repository.url`` names the course's repository, the site's buttons lead to it.

The book's own build (tests/test_book_build.py) runs with the setting empty, as committed, and
checks that no launch, repository or issue button is there. This test builds two pages with
a copy of ``_config.yml`` in which the setting names a repository, and checks every button:
Binder opens the chapter as a notebook, Colab opens the executed ``.ipynb`` that the site
serves (from the GitHub Pages branch), and the repository and issue buttons name the
repository. A placeholder in the setting stops the build with a clear message.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REPO = "https://github.com/some-university/backprop-course"
PAGE = "book/notation"

pytestmark = [pytest.mark.book]


def build(tmp: Path, url: str) -> subprocess.CompletedProcess:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["repository"]["url"] = url
    # This copy lives outside the repository: its relative paths become absolute.
    sphinx = config["sphinx"]
    sphinx["local_extensions"] = {name: str(ROOT / path)
                                  for name, path in sphinx["local_extensions"].items()}
    sphinx["config"]["html_static_path"] = [str(ROOT / path)
                                            for path in sphinx["config"]["html_static_path"]]
    (tmp / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp / "_toc.yml").write_text(yaml.safe_dump(
        {"format": "jb-book", "root": "book/intro", "chapters": [{"file": PAGE}]}))
    env = dict(os.environ, COURSE_BOOK_BUILD="1",
               PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [str(BIN / "jupyter-book"), "build", str(ROOT), "--config", str(tmp / "_config.yml"),
         "--toc", str(tmp / "_toc.yml"), "--path-output", str(tmp / "out"), "--builder", "html"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_with_a_repository_every_button_leads_to_it(tmp_path: Path) -> None:
    done = build(tmp_path, REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    html = tmp_path / "out" / "_build" / "html"
    page = (html / PAGE).with_suffix(".html").read_text()
    hrefs = set(re.findall(r'href="([^"]+)"', page))
    binder = [h for h in hrefs if h.startswith("https://mybinder.org/")]
    colab = [h for h in hrefs if h.startswith("https://colab.research.google.com/")]
    assert binder == [f"https://mybinder.org/v2/gh/some-university/backprop-course/main"
                      f"?urlpath=lab/tree/{PAGE}.ipynb"]
    assert colab == [f"https://colab.research.google.com/github/some-university/backprop-course"
                     f"/blob/gh-pages/_sources/{PAGE}.ipynb"]
    # Colab's path is a file that the built site serves (the Pages branch is the built site).
    assert (html / "_sources" / PAGE).with_suffix(".ipynb").is_file()
    assert REPO in hrefs, "no repository button"
    assert any(h.startswith(REPO + "/issues/new") for h in hrefs), "no issue button"
    assert not [h for h in hrefs if "example." in h or "git-pull" in h], "a JupyterHub button"
    # The downloaded notebook installs course_pkg from the site's wheel, not from a git host
    # (html.baseurl is unset here: it names the file and the page to download it from).
    notebook = (html / "_sources" / PAGE).with_suffix(".ipynb").read_text()
    assert "git+" not in notebook and "course_pkg-" in notebook and "Get started" in notebook
    assert list((html / "packages").glob("course_pkg-*.whl")), "the site serves no wheel"


def test_a_placeholder_repository_stops_the_build(tmp_path: Path) -> None:
    done = build(tmp_path, "https://github.com/backprop-course/backprop-course")
    assert done.returncode != 0
    assert "placeholder" in done.stdout + done.stderr
