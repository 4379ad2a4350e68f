"""The built site, as a reader sees it: a strict Sphinx build, then a real headless Chromium.

The book is built once per session in the smoke profile into `_build/smoke` (apart from
`make book`'s `_build/html`, so that smoke outputs never reach the real book) the way
`make book` builds it: the notebooks are executed in parallel into the execution cache, then
Sphinx builds the pages from the cache. The site is served from a loopback HTTP server.
Requests to other hosts (Colab, Binder, ...) are answered with empty responses, so the checks
run offline and only the site's own files count: formulas are typeset only if the site
serves MathJax itself. Screenshots go to `_build/screenshots/`.
"""

from __future__ import annotations

import functools
import html
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from conftest import ROOT, toc_files, toc_notebooks

SMOKE_BUILD = ROOT / "_build" / "smoke"
HTML = SMOKE_BUILD / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.site


@pytest.fixture(scope="session")
def build_log() -> str:
    """Build the whole book as `make book` does, with -W (warnings are errors) and --all.

    First the notebooks are executed in parallel into the smoke build's execution cache
    (those `test_notebooks.py` executed are already there), then Sphinx builds the site.
    Returns the Sphinx build's log.
    """
    env = {**os.environ, "NLPBOOK_PROFILE": "smoke"}
    execute = [
        sys.executable,
        str(ROOT / "book" / "_ext" / "execute_notebooks.py"),
        "--cache",
        str(SMOKE_BUILD / "_build" / ".jupyter_cache"),
    ]
    out = subprocess.run(execute, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [
        str(jb),
        "build",
        str(ROOT),
        "--all",
        "-W",
        "--keep-going",
        "--path-output",
        str(SMOKE_BUILD),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    return log


def test_build_is_warning_free(build_log):
    warnings = [
        line
        for line in build_log.splitlines()
        if re.search(r"WARNING|ERROR", line) and "Kernel is running over TCP" not in line
    ]
    assert warnings == []
    assert "build succeeded" in build_log


def test_build_executes_nothing_after_the_parallel_run(build_log):
    """Every notebook was executed into the cache beforehand; Sphinx only reads the cache."""
    assert "Executing notebook" not in build_log
    assert build_log.count("Using cached notebook") == len(toc_notebooks())


@pytest.fixture(scope="session")
def base_url(build_log):
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (make test installs it)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


class Visit:
    """One page load: console errors, failed requests and broken images on the site itself."""

    def __init__(self, browser, url: str, *, width: int = 1280, height: int = 900):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.external: set[str] = set()
        site = urlparse(url).netloc
        self.page.route("**/*", functools.partial(self._route, site))
        self.page.on(
            "console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}")
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        self.response = self.page.goto(url, wait_until="load")
        self.page.wait_for_timeout(300)

    def _route(self, site, route):
        url = urlparse(route.request.url)
        if url.netloc == site or url.scheme in ("data", "blob"):
            return route.continue_()
        self.external.add(f"{url.scheme}://{url.netloc}")
        return route.fulfill(status=200, body="", content_type="text/plain")

    def broken_images(self) -> list[str]:
        return self.page.eval_on_selector_all(
            "img", "imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
        )

    def close(self):
        self.context.close()


def _page_url(base_url: str, file: str) -> str:
    return urljoin(base_url, f"{file}.html")


def _h1(page: Path) -> str:
    """The text of a built page's title, without the "#" permalink."""
    h1 = re.search(r"<h1>(.*?)</h1>", page.read_text(encoding="utf-8"), flags=re.S)
    assert h1, f"{page} has no <h1>"
    text = re.sub(r'<a class="headerlink".*?</a>', "", h1.group(1), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def test_landing_page_cards_link_to_every_chapter(browser, base_url):
    visit = Visit(browser, base_url + "book/intro.html")
    try:
        assert visit.response.ok
        hrefs = visit.page.eval_on_selector_all(
            ".sd-card a.sd-stretched-link", "as => as.map(a => a.href)"
        )
        titles = visit.page.eval_on_selector_all(
            ".sd-card .sd-card-title", "ts => ts.map(t => t.innerText.trim())"
        )
        assert len(hrefs) == len(titles) > 0
        linked = {urlparse(h).path.lstrip("/").removesuffix(".html") for h in hrefs}
        assert linked == set(toc_files()[1:]), "every chapter has exactly one card"
        for href, title in zip(hrefs, titles, strict=True):
            target = HTML / urlparse(href).path.lstrip("/")
            assert target.is_file(), f"card links to a missing page: {href}"
            assert title == _h1(target), f"the card for {href} is titled differently"
        assert visit.errors == [] and visit.broken_images() == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=SCREENSHOTS / "landing.png", full_page=True)
    finally:
        visit.close()
    phone = Visit(browser, base_url + "book/intro.html", width=390, height=844)
    try:
        phone.page.screenshot(path=SCREENSHOTS / "landing-phone.png", full_page=True)
        overflow = phone.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the landing page scrolls sideways on a phone by {overflow}px"
    finally:
        phone.close()


@pytest.mark.parametrize("file", toc_files())
def test_page_loads_cleanly(browser, base_url, file):
    """No console errors, no failed requests, every image loaded."""
    visit = Visit(browser, _page_url(base_url, file))
    try:
        assert visit.response.ok
        assert visit.errors == []
        assert visit.broken_images() == []
        assert visit.page.locator("article.bd-article h1").count() == 1
        _check_math_is_typeset(visit)
        _check_images_have_alt_text(visit)
        stderr = visit.page.eval_on_selector_all(".output.stderr", "es => es.map(e => e.innerText)")
        assert not [s for s in stderr if "Warning" in s or "Traceback" in s], stderr
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=SCREENSHOTS / f"{Path(file).name}.png", full_page=True)
    finally:
        visit.close()


def _check_math_is_typeset(visit: Visit) -> None:
    """Every formula became MathJax output, served by the site itself (no CDN)."""
    if not visit.page.locator("article.bd-article .math").count():
        return
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        visit.page.wait_for_function("window.MathJax && MathJax.startup", timeout=15_000)
    except PlaywrightTimeout:
        pytest.fail("MathJax did not start: the page does not load it from the site")
    visit.page.evaluate("MathJax.startup.promise")  # resolves once the page is typeset
    untypeset = visit.page.eval_on_selector_all(
        "article.bd-article .math",
        "ms => ms.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent)",
    )
    assert untypeset == []
    assert visit.page.locator("article.bd-article mjx-merror").count() == 0
    prose = visit.page.evaluate(
        """() => {
            const article = document.querySelector("article.bd-article").cloneNode(true);
            article.querySelectorAll("pre, code, .cell_output, mjx-assistive-mml")
                .forEach(e => e.remove());
            return article.textContent;
        }"""
    )
    raw = re.findall(r"\\\(.{0,30}|\\\[.{0,30}|\$\$.{0,30}", prose)
    assert raw == [], "formulas left as TeX"
    mathjax = visit.page.eval_on_selector_all("script[src*=mathjax]", "ss => ss.map(s => s.src)")
    assert mathjax and all(urlparse(s).netloc == urlparse(visit.page.url).netloc for s in mathjax)


def _check_images_have_alt_text(visit: Visit) -> None:
    """Figures say what they show: an alt text that is neither empty nor a file's path."""
    alts = visit.page.eval_on_selector_all(
        "article.bd-article img", "imgs => imgs.map(i => i.getAttribute('alt') || '')"
    )
    pathlike = re.compile(r"(^|/)[\w.-]+\.(png|jpe?g|gif|svg|webp)$|_images/", re.I)
    bad = [alt for alt in alts if not alt.strip() or pathlike.search(alt.strip())]
    assert bad == [], "images without a meaningful alt text"


def test_one_search_box_on_desktop_and_a_search_button_on_phones(browser, base_url):
    """The theme's header bar would add a second search field beside the sidebar's."""
    visible = (
        "bs => bs.filter(b => b.offsetParent !== null && b.getBoundingClientRect().width > 0)"
        ".length"
    )
    for width, expected in [(1280, 1), (390, 1)]:
        visit = Visit(browser, base_url + "book/tokenizers.html", width=width)
        try:
            shown = visit.page.eval_on_selector_all(".search-button__button", visible)
            assert shown == expected, f"{shown} search controls at {width}px"
        finally:
            visit.close()


@pytest.mark.parametrize("path", toc_notebooks(), ids=lambda p: p.stem)
def test_launch_buttons_open_the_notebook(browser, base_url, path):
    """The Colab and Binder buttons point at this chapter's .ipynb in the repository."""
    file = path.relative_to(ROOT).with_suffix("").as_posix()
    visit = Visit(browser, _page_url(base_url, file))
    try:
        hrefs = visit.page.eval_on_selector_all(
            ".dropdown-launch-buttons a[href]", "as => as.map(a => a.href)"
        )
        colab = [h for h in hrefs if "colab.research.google.com" in h]
        binder = [h for h in hrefs if "mybinder.org" in h]
        assert colab and binder, "a notebook page has Colab and Binder buttons"
        assert all(h.endswith(f"{file}.ipynb") for h in colab), colab
        assert all(f"{file}.ipynb" in h for h in binder), binder
    finally:
        visit.close()


def test_search_finds_a_chapter(browser, base_url):
    visit = Visit(browser, base_url + "search.html?q=profile")
    try:
        visit.page.wait_for_selector("#search-results li", timeout=15_000)
        results = visit.page.eval_on_selector_all(
            "#search-results li a", "as => as.map(a => a.href)"
        )
        assert any(r.split("#")[0].endswith("book/running.html") for r in results), results
        assert visit.errors == []
    finally:
        visit.close()


@pytest.mark.parametrize(
    "path", [p for p in toc_notebooks() if p.stem != "running"], ids=lambda p: p.stem
)
def test_chapter_shows_figures_and_hidden_solutions(browser, base_url, path):
    """A chapter renders a figure; its exercises count from 1; their solutions start hidden."""
    file = path.relative_to(ROOT).with_suffix("").as_posix()
    visit = Visit(browser, _page_url(base_url, file))
    try:
        assert visit.page.locator("article.bd-article .cell_output img").count() >= 1
        numbers = visit.page.eval_on_selector_all(
            "article.bd-article .exercise .caption-number",
            "ns => ns.map(n => n.innerText.trim())",
        )
        # numbered per page, in order: the first exercise of every chapter is "Exercise 1"
        assert numbers == [f"Exercise {i}" for i in range(1, len(numbers) + 1)], numbers
        solutions = visit.page.locator("article.bd-article .solution.dropdown")
        assert solutions.count() >= 3
        assert not solutions.first.locator(".admonition-title ~ *").first.is_visible()
        # the title's left end: its "(Exercise ...)" part is a link to the exercise
        solutions.first.locator(".admonition-title").click(position={"x": 12, "y": 8})
        visit.page.wait_for_timeout(400)
        assert solutions.first.locator(".admonition-title ~ *").first.is_visible()
    finally:
        visit.close()


def test_attention_view_changes_with_the_head(browser, base_url):
    """The lab's interactive attention view runs in the static page: picking a head redraws it."""
    visit = Visit(browser, _page_url(base_url, "book/lab-attention-visualization"))
    try:
        view = visit.page.locator(".attnviz").first
        weights = "ls => ls.map(l => l.getAttribute('data-weight')).join()"
        before = view.locator(".attnviz-line").evaluate_all(weights)
        assert before
        view.locator(".attnviz-head").select_option("mean")
        assert view.locator(".attnviz-line").evaluate_all(weights) != before
        assert visit.errors == []
    finally:
        visit.close()
