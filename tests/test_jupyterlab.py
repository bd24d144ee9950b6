"""A student's downloads in a default JupyterLab 4 (headless Chromium, no network).

The notebooks are made here as the site makes them, without building the book: a chapter
(``book/gradient_descent.md``: exercises with solutions, labelled equations, two explorers),
run as the build runs it, through ``student_notebooks.student_notebook`` and every problem set
through
``problem_sets.student_version`` with its check cell. JupyterLab runs with jupyterlab-myst and
no setting changed (the widgets' "save state" is off, as on a student's laptop). The tests check
that

- the MyST markup renders: no raw directive fence, ``{eq}`` or ``{prf:...}`` role is left in a
  rendered markdown cell; the first cell is the course_pkg check cell;
- each solution is folded under a plain "Solution" title and opens with one click;
- opening a notebook and starting its kernel does not mark it modified (chapter and every
  problem set);
- after running every cell, saving, closing, shutting the kernel down and reopening, no
  widget reads "model not found" and the explorers' figures are still there;
- the chapter as ``.binder/postBuild`` writes it is the download but for its check cell;
- ``jupyter labextension list`` finds every extension compatible with the JupyterLab installed.
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
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest

try:  # tests/ is on sys.path under pytest's default import mode
    from test_browser import CHROMIUM, CHROMIUM_ARGS
except ImportError:  # tests/ made a package
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("jupyterlab")]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import problem_sets  # noqa: E402
import site_package  # noqa: E402
import student_notebooks as sn  # noqa: E402

CHAPTER = "gradient_descent"
PROBLEM_SETS = sorted(p.parent.name for p in (ROOT / "assignments" / "source").glob("*/*.ipynb"))


def write_downloads(work: Path) -> None:
    """The chapter and the problem sets as the site serves them, into ``work``; the chapter as
    served and as ``.binder/postBuild`` writes it, also into ``work/.as_served``."""
    wheel = site_package.wheel_name(site_package.package_version())
    export = sn.book_export(f"book/{CHAPTER}")
    export.wheel_name = wheel
    executed = sn.executed_as_the_site_builds(ROOT / "book" / f"{CHAPTER}.md", timeout_s=300)
    download = sn.student_notebook(executed, export)
    nbformat.write(download, work / f"{CHAPTER}.ipynb")
    (work / ".as_served").mkdir()  # kept as written: the browser tests save over the others
    nbformat.write(download, work / ".as_served" / f"{CHAPTER}.ipynb")
    binder = sn.student_notebook(executed, sn.book_export(f"book/{CHAPTER}"))
    nbformat.write(binder, work / ".as_served" / f"binder_{CHAPTER}.ipynb")
    for name in PROBLEM_SETS:
        source = next((ROOT / "assignments" / "source" / name).glob("*.ipynb"))
        nb = problem_sets.student_version(source)
        problem_sets.set_check_cell(nb, wheel, "")
        nbformat.write(nb, work / f"{name}.ipynb")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[str, Path]]:
    """A default JupyterLab serving a folder with the downloads; (url, folder)."""
    work = Path(tempfile.mkdtemp(prefix="course-lab-"))
    write_downloads(work)
    settings = work / ".settings"
    # The test reads every cell of the page: no virtual scrolling of off-screen cells. (A
    # display setting only; the widgets' settings stay at their defaults.)
    target = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"windowingMode": "none"}))
    port = free_port()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
               JUPYTER_CONFIG_DIR=str(work / ".config"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(work / ".workspaces"),
               JUPYTER_DATA_DIR=str(work / ".data"))
    env.pop("COURSE_BOOK_BUILD", None)
    command = [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}",
               "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.ip=127.0.0.1",
               "--ServerApp.disable_check_xsrf=True",  # the test shuts kernels down by REST
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
  const RAW = /```\\{|:::\\{|\\{eq\\}`|\\{prf:|\\{solution\\}|\\{exercise\\}|\\{doc\\}|\\{ref\\}/;
  const md = [...document.querySelectorAll('.jp-Notebook .jp-MarkdownCell')];
  const rendered = md.map(c => c.querySelector('.jp-MarkdownOutput, .jp-RenderedMarkdown, .myst'))
                     .filter(Boolean).map(e => e.textContent);
  const details = [...document.querySelectorAll('.jp-Notebook details')];
  return {
    cells: document.querySelectorAll('.jp-Notebook .jp-Cell').length,
    rendered: rendered.length,
    raw: rendered.filter(t => RAW.test(t)).map(t => t.slice(0, 80)),
    details: details.length,
    detailsOpen: details.filter(d => d.open).length,
    summaries: details.map(d => (d.querySelector('summary') || {}).textContent || ''),
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
        if not state["busy"] and "Busy" not in text and "Starting" not in text \
                and "Connecting" not in text:
            return
        page.wait_for_timeout(500)
    raise AssertionError("the kernel stayed busy")


def api(url: str, path: str, method: str = "GET") -> object:
    request = urllib.request.Request(f"{url}{path}", method=method)
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 (localhost)
        body = reply.read()
    return json.loads(body) if body else None


def shut_down_kernels(url: str) -> None:
    for session in api(url, "/api/sessions"):
        api(url, f"/api/sessions/{session['id']}", "DELETE")
    for kernel in api(url, "/api/kernels"):
        api(url, f"/api/kernels/{kernel['id']}", "DELETE")


def in_browser(url: str, drive: Callable[[object, str], None], screenshot: str) -> None:
    """Run ``drive(page, url)`` in a thread of its own: the browser tests' session keeps
    Playwright's synchronous API (an asyncio loop) open in the main thread."""
    errors: list[BaseException] = []

    def run() -> None:
        from playwright.sync_api import sync_playwright

        profile = tempfile.mkdtemp(prefix="chromium-lab-")
        try:
            with sync_playwright() as p:
                context = p.chromium.launch_persistent_context(
                    profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                    viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                try:
                    drive(page, url)
                finally:
                    (ROOT / "tests" / "artifacts").mkdir(exist_ok=True)
                    page.screenshot(path=str(ROOT / "tests" / "artifacts" / screenshot))
                    context.close()
        except BaseException as error:  # noqa: BLE001 (re-raised in the test's thread)
            errors.append(error)
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(600)
    assert not thread.is_alive(), "the JupyterLab session did not finish in 10 minutes"
    if errors:
        raise errors[0]


def open_notebook(page: object, url: str, name: str) -> dict:
    page.goto(f"{url}/lab/tree/{name}?reset", wait_until="load")  # no restored workspace
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_selector(".jp-Notebook .jp-RenderedMarkdown, .jp-Notebook .myst",
                           timeout=60_000)
    page.wait_for_timeout(3000)
    wait_idle(page)
    page.wait_for_timeout(4000)  # what a change after the kernel started would need to show
    return page.evaluate(STATE)


def test_a_downloaded_chapter_reads_runs_and_reopens(lab: tuple[str, Path]) -> None:
    url, work = lab
    name = f"{CHAPTER}.ipynb"
    solutions = sum(sn.SOLUTION_TAG in c.metadata.get("tags", [])
                    for c in nbformat.read(work / name, as_version=4).cells)

    def drive(page: object, url: str) -> None:
        opened = open_notebook(page, url, name)
        assert opened["rendered"] >= 10, opened
        assert not opened["raw"], f"MyST left raw: {opened['raw'][:3]}"
        assert opened["details"] == solutions > 0, opened
        assert opened["detailsOpen"] == 0 and set(opened["summaries"]) == {"Solution"}, opened
        assert "course_pkg" in opened["first"] and "COURSE_PKG_WHEEL" in opened["first"]
        assert not opened["dirty"], "opening the chapter marked it modified"
        page.locator(".jp-Notebook details summary").first.click()  # one click opens it
        assert page.evaluate(STATE)["detailsOpen"] == 1

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
        page.goto("about:blank")  # the notebook is closed
        shut_down_kernels(url)
        reopened = open_notebook(page, url, name)
        assert not reopened["notFound"], "a widget reads 'model not found' after reopening"
        assert reopened["images"] >= 2, (ran, reopened)

    in_browser(url, drive, "jupyterlab.png")


def test_the_binder_chapter_is_the_download(lab: tuple[str, Path]) -> None:
    """The chapter as ``.binder/postBuild`` writes it (``student_notebooks.py``, run as the site
    build runs it) holds the download's outputs and widget state, so the reopening test above
    covers it. (A chapter never run holds no widget state: in a default JupyterLab its
    explorers read "model not found" once it is run, saved and reopened.)"""
    _, work = lab
    binder = nbformat.read(work / ".as_served" / f"binder_{CHAPTER}.ipynb", as_version=4)
    download = nbformat.read(work / ".as_served" / f"{CHAPTER}.ipynb", as_version=4)
    assert binder.metadata["widgets"] == download.metadata["widgets"]
    assert binder.metadata["widgets"][sn.WIDGET_STATE]["state"]
    assert len(binder.cells) == len(download.cells)
    differ = [a.metadata.get("tags", []) for a, b in zip(binder.cells, download.cells,
                                                         strict=True)
              if (a.source, a.get("outputs")) != (b.source, b.get("outputs"))]
    assert differ in ([], [[sn.SETUP_TAG]]), differ  # the check cell may name the wheel


def test_opening_a_problem_set_changes_nothing_in_it(lab: tuple[str, Path]) -> None:
    url, work = lab

    def drive(page: object, url: str) -> None:
        for name in PROBLEM_SETS:
            before = (work / f"{name}.ipynb").read_text()
            opened = open_notebook(page, url, f"{name}.ipynb")
            assert "COURSE_PKG_WHEEL" in opened["first"], name
            assert not opened["raw"], (name, opened["raw"][:3])
            assert not opened["dirty"], f"{name}: opening it marked it modified"
            assert (work / f"{name}.ipynb").read_text() == before, name
            page.goto("about:blank")
            shut_down_kernels(url)

    in_browser(url, drive, "jupyterlab-problem-sets.png")


def test_every_labextension_is_compatible_with_the_jupyterlab_installed() -> None:
    """``jupyter labextension list`` flags an extension built for another JupyterLab ("is not
    compatible with the current JupyterLab": jupyterlab-myst did so with JupyterLab 4.6); the
    ones the course needs are all there, enabled and OK."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", NO_COLOR="1")
    listed = subprocess.run([str(BIN / "jupyter"), "labextension", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    text = listed.stdout + listed.stderr
    assert "not compatible" not in text, text
    for extension in ("jupyterlab-myst", "@jupyter/nbgrader",
                      "@jupyter-widgets/jupyterlab-manager", "@jupyter-notebook/lab-extension"):
        line = next((row for row in text.splitlines() if row.split()[:1] == [extension]), "")
        assert "enabled" in line and "OK" in line, (extension, text)
