"""Every page of the built book in headless Chromium, served from localhost with no network.

For each document of ``_toc.yml``: the page loads with no failed request, no request leaving
localhost and no console error; MathJax renders every equation; every image has loaded; and on
each chapter one static explorer (``course_pkg.widgets``) swaps its picture when a slider
moves. The ipywidgets saved on the root page are rendered by the vendored widget manager and
respond with no kernel. A screenshot of each page is kept in ``tests/artifacts/`` (gitignored).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

try:  # tests/ is on sys.path under pytest's default import mode
    from test_book_build import BuiltSite, build_warnings, built_site, chapter_files, toc_files
except ImportError:  # tests/ made a package
    from tests.test_book_build import (
        BuiltSite,
        build_warnings,
        built_site,
        chapter_files,
        toc_files,
    )

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("book")]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    built = built_site(tmp_path_factory)
    if built.returncode != 0:
        pytest.fail("the book did not build:\n" + "\n".join(build_warnings(built.log))
                    + "\n...\n" + built.log[-2000:])
    return built


@pytest.fixture(scope="session")
def server(site: BuiltSite) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(site.html))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser_context() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run `make chromium` (Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900})
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


class PageLog:
    """What went wrong while a page loaded: failed or external requests, console errors."""

    def __init__(self, page: object, origin: str) -> None:
        self.problems: list[str] = []
        host = urlparse(origin).netloc

        def route(r: object) -> None:
            url = r.request.url
            if urlparse(url).netloc != host and not url.startswith("data:"):
                self.problems.append(f"request leaving the site: {url}")
                r.abort()
            else:
                r.continue_()

        page.route("**/*", route)
        page.on("requestfailed", lambda req: self.problems.append(
            f"request failed: {req.url} ({req.failure})"))
        page.on("response", lambda res: res.status >= 400 and self.problems.append(
            f"HTTP {res.status}: {res.url}"))
        page.on("console", lambda msg: msg.type == "error" and self.problems.append(
            f"console error: {msg.text}"))
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))


def open_page(context: object, server: str, docname: str) -> tuple[object, PageLog]:
    page = context.new_page()
    log = PageLog(page, server)
    page.goto(f"{server}/{docname}.html", wait_until="load")
    page.wait_for_load_state("networkidle")
    # MathJax (only on pages with math) typesets asynchronously; wait for it to finish.
    page.evaluate("async () => { if (window.MathJax && MathJax.startup)"
                  " await MathJax.startup.promise; }")
    # Widgets rendered by the vendored html-manager appear after it loads.
    if page.locator("script[type='application/vnd.jupyter.widget-view+json']").count():
        page.wait_for_selector(".jupyter-widgets", timeout=30_000)
    return page, log


@pytest.mark.parametrize("docname", toc_files())
def test_page_loads_renders_math_and_images(browser_context: object, server: str,
                                            docname: str) -> None:
    page, log = open_page(browser_context, server, docname)
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{docname.replace('/', '__')}.png"),
                        full_page=True)
        assert not log.problems, "\n".join(log.problems)

        math = page.evaluate("""() => {
            const sources = [...document.querySelectorAll('.math')];
            return {sources: sources.length,
                    rendered: sources.filter(e => e.querySelector('mjx-container')).length,
                    containers: document.querySelectorAll('mjx-container').length,
                    errors: document.querySelectorAll('mjx-merror').length};
        }""")
        assert math["rendered"] == math["sources"], f"MathJax left equations unrendered: {math}"
        assert math["containers"] >= math["sources"]
        assert math["errors"] == 0, f"MathJax could not typeset {math['errors']} formulas"

        images = page.evaluate("""() => [...document.querySelectorAll('img')].map(img => ({
            src: img.currentSrc.slice(0, 80), ok: img.complete && img.naturalWidth > 0}))""")
        broken = [img["src"] for img in images if not img["ok"]]
        assert not broken, f"images that did not load: {broken}"

        widget_views = page.locator("script[type='application/vnd.jupyter.widget-view+json']")
        if widget_views.count():
            assert page.locator(".jupyter-widgets").count() >= widget_views.count()
    finally:
        page.close()


def move_first_slider(page: object) -> tuple[str, str, str, str]:
    """Move the first range input of the first static explorer; return (key, src) before/after."""
    explorer = page.locator(".course-explorer").first
    explorer.scroll_into_view_if_needed()
    slider = explorer.locator("input[type=range]").first
    img = explorer.locator("img").first
    before = img.get_attribute("data-key"), img.get_attribute("src")
    low, high, value = (int(slider.get_attribute(a)) for a in ("min", "max", "value"))
    assert high > low, "the first control of the explorer has a single value"
    target = low if value != low else high
    slider.evaluate("(el, v) => { el.value = String(v);"
                    " el.dispatchEvent(new Event('input', {bubbles: true})); }", target)
    after = img.get_attribute("data-key"), img.get_attribute("src")
    return (*before, *after)


@pytest.mark.parametrize("docname", chapter_files())
def test_chapter_explorer_responds_to_its_slider(browser_context: object, server: str,
                                                  docname: str) -> None:
    page, log = open_page(browser_context, server, docname)
    try:
        assert page.locator(".course-explorer").count() >= 1, f"{docname} has no explorer"
        key0, src0, key1, src1 = move_first_slider(page)
        assert key1 != key0, "the slider did not change the explorer's frame key"
        assert src1 != src0, "the slider did not change the explorer's picture"
        loaded = page.locator(".course-explorer img").first.evaluate(
            "img => img.complete && img.naturalWidth > 0")
        assert loaded
        assert not log.problems, "\n".join(log.problems)
    finally:
        page.close()


def test_static_explorer_works_in_the_browser(browser_context: object, server: str) -> None:
    """The explorer mechanism itself, on a page of its own (independent of the chapters)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_pkg.widgets import explorer

    def draw(w: float, b: float) -> object:
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot([0, 1], [b, w + b])
        return fig

    html = explorer(draw, {"w": [-1.0, 0.0, 1.0], "b": [0.0, 0.5]}, static=True)._repr_html_()
    page = browser_context.new_page()
    log = PageLog(page, server)
    url = f"{server}/__static_explorer_test.html"
    page.route(url, lambda route: route.fulfill(
        body=f"<!DOCTYPE html><html><body>{html}</body></html>", content_type="text/html"))
    try:
        page.goto(url)
        key0, src0, key1, src1 = move_first_slider(page)
        assert (key0, key1) == ("1,1", "0,1")
        assert src0 != src1 and src1.startswith("data:image/png;base64,")
        label = page.locator(".course-explorer output").first.inner_text()
        assert label == "-1"
        assert not log.problems, "\n".join(log.problems)
    finally:
        page.close()


def test_live_widgets_run_without_a_kernel(browser_context: object, server: str) -> None:
    """The vendored widget manager renders the saved ipywidgets of the root page, and their
    browser-side link (``widgets.jslink``) works: a slider key press updates the text box."""
    docname = toc_files()[0]
    page, log = open_page(browser_context, server, docname)
    try:
        assert page.locator("script[type='application/vnd.jupyter.widget-view+json']").count()
        text = page.locator(".jupyter-widgets input[type=number]").first
        before = float(text.input_value())
        page.locator(".jupyter-widgets .noUi-handle").first.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("([el, v]) => Number(el.value) !== v",
                               arg=[text.element_handle(), before], timeout=5_000)
        after = float(text.input_value())
        assert after > before, "the linked text box did not follow the slider"
        assert not log.problems, "\n".join(log.problems)
    finally:
        page.close()
