"""A downloaded chapter in JupyterLab 4, as a student opens it (headless Chromium, no network).

The notebook is the site's own download (``_sources/book/gradient_descent.ipynb``: exercises
with solutions, labelled equations, two explorers). JupyterLab runs with jupyterlab-myst and the
widget setting of the student environment (``.binder/overrides.json``: save widget state). The
test checks that

- the MyST markup renders: no raw directive fence, ``{eq}`` or ``{prf:...}`` role is left in a
  rendered markdown cell;
- each solution is folded, and the first cell is the course_pkg check;
- opening the notebook (and starting its kernel) does not mark it modified;
- after running every cell, saving and reopening, the figures are there again and no widget
  reads "model not found".
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

try:  # tests/ is on sys.path under pytest's default import mode
    from test_book_build import BuiltSite, build_warnings, built_site
    from test_browser import CHROMIUM, CHROMIUM_ARGS
except ImportError:  # tests/ made a package
    from tests.test_book_build import BuiltSite, build_warnings, built_site
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("book")]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHAPTER = "book/gradient_descent"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    built = built_site(tmp_path_factory)
    if built.returncode != 0:
        pytest.fail("the book did not build:\n" + "\n".join(build_warnings(built.log)))
    return built


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(site: BuiltSite) -> Iterator[tuple[str, Path]]:
    """JupyterLab serving a folder with the downloaded chapter; (url, folder)."""
    work = Path(tempfile.mkdtemp(prefix="course-lab-"))
    notebook = (site.html / "_sources" / CHAPTER).with_suffix(".ipynb")
    shutil.copy(notebook, work / notebook.name)
    settings = work / ".settings"
    overrides = json.loads((ROOT / ".binder" / "overrides.json").read_text())
    # The test reads every cell of the page: no virtual scrolling of off-screen cells.
    overrides["@jupyterlab/notebook-extension:tracker"] = {"windowingMode": "none"}
    for plugin_id, values in overrides.items():
        package, plugin = plugin_id.split(":")
        target = settings / package / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    port = free_port()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
               JUPYTER_CONFIG_DIR=str(work / ".config"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(work / ".workspaces"))
    env.pop("COURSE_BOOK_BUILD", None)
    command = [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}",
               "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.root_dir={work}", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = open(work / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n"
                                + (work / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", work
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


STATE = """() => {
  const RAW = /```\\{|:::\\{|\\{eq\\}`|\\{prf:|\\{solution\\}|\\{exercise\\}/;
  const md = [...document.querySelectorAll('.jp-Notebook .jp-MarkdownCell')];
  const rendered = md.map(c => c.querySelector('.jp-MarkdownOutput, .jp-RenderedMarkdown, .myst'))
                     .filter(Boolean).map(e => e.textContent);
  return {
    cells: document.querySelectorAll('.jp-Notebook .jp-Cell').length,
    rendered: rendered.length,
    raw: rendered.filter(t => RAW.test(t)).map(t => t.slice(0, 80)),
    folded: document.querySelectorAll('.jp-Notebook .jp-Cell .jp-InputPlaceholder').length,
    first: (document.querySelector('.jp-Notebook .jp-Cell .jp-InputArea') || {}).textContent || '',
    dirty: !!document.querySelector('.jp-mod-dirty'),
    images: document.querySelectorAll('.jp-Notebook .jp-OutputArea-output img').length,
    notFound: document.querySelector('.jp-Notebook').textContent.includes('model not found'),
    errors: document.querySelectorAll(
      '.jp-Notebook [data-mime-type="application/vnd.jupyter.stderr"]').length,
    busy: [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')]
            .some(p => p.textContent.includes('*')),
  };
}"""


def wait_idle(page: object, timeout_s: float = 120) -> None:
    """Until the kernel status reads Idle and no cell prompt shows [*]."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = page.evaluate(STATE)
        status = page.locator(".jp-Notebook-ExecutionIndicator, #jp-main-statusbar").first
        text = status.get_attribute("data-status") or status.text_content() or ""
        if not state["busy"] and "Busy" not in text and "Starting" not in text:
            return
        page.wait_for_timeout(500)
    raise AssertionError("the kernel stayed busy")


def test_a_downloaded_chapter_reads_and_runs_in_jupyterlab(lab: tuple[str, Path]) -> None:
    """Runs in a thread of its own: the browser tests' session keeps Playwright's synchronous
    API (an asyncio loop) open in the main thread, and a second one may not start there."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            drive(*lab)
        except BaseException as error:  # noqa: BLE001 (re-raised in the test's thread)
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(600)
    assert not thread.is_alive(), "the JupyterLab session did not finish in 10 minutes"
    if errors:
        raise errors[0]


def drive(url: str, work: Path) -> None:
    from playwright.sync_api import sync_playwright

    name = Path(CHAPTER).name + ".ipynb"
    solutions = sum("{solution}" in "".join(c["source"])
                    for c in json.loads((work / name).read_text())["cells"])
    profile = tempfile.mkdtemp(prefix="chromium-lab-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        try:
            page.goto(f"{url}/lab/tree/{name}", wait_until="load")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-RenderedMarkdown, .jp-Notebook .myst",
                                   timeout=60_000)
            page.wait_for_timeout(3000)
            wait_idle(page)
            opened = page.evaluate(STATE)
            assert opened["rendered"] >= 10, opened
            assert not opened["raw"], f"MyST left raw: {opened['raw'][:3]}"
            assert opened["folded"] >= solutions > 0, opened
            assert "course_pkg" in opened["first"] and "pip install" in opened["first"]
            assert not opened["dirty"], "opening the chapter marked it modified"

            page.locator(".jp-Notebook").first.click()
            page.get_by_text("Run", exact=True).first.click()
            page.get_by_text("Run All Cells", exact=True).first.click()
            page.wait_for_timeout(2000)
            wait_idle(page, 240)
            ran = page.evaluate(STATE)
            assert ran["errors"] == 0, "a cell wrote to stderr or failed"
            assert ran["images"] >= 2, ran
            page.keyboard.press("Control+s")
            page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')",
                                   timeout=30_000)
            saved = json.loads((work / name).read_text())
            assert "widgets" in saved["metadata"], "widget state was not saved"

            page.reload(wait_until="load")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_timeout(5000)
            reopened = page.evaluate(STATE)
            assert not reopened["notFound"], "a widget reads 'model not found' after reopening"
            assert reopened["images"] >= ran["images"], (ran, reopened)
        finally:
            (ROOT / "tests" / "artifacts").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "tests" / "artifacts" / "jupyterlab.png"))
            page.close()
            context.close()
            shutil.rmtree(profile, ignore_errors=True)
