"""Live reload in a real browser: headless Chromium (Debian's package) driven by Playwright.

The site is served as ``serve --watch`` serves it: the live-reload routes in front of the
built folder, with a ``SiteWatcher`` rebuilding on save.  Saving the open post shows the new
text without anyone pressing reload; a broken save shows the error overlay over the last
good page; a page whose file did not change is left alone.

Chromium is never downloaded (``playwright install`` is not used): without
``/usr/bin/chromium`` the test is skipped, or fails when ``CI`` is set.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import config as config_mod
from bridge.daemon.build_report import terminal_reporter
from bridge.daemon.livereload import ReloadHub
from bridge.daemon.watch import SiteWatcher
from bridge.site.build import BuildResult
from tests.daemon.test_watch import ServerThread, free_port, site_app

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POST = "content/posts/2026-01-10-first-article.md"


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (required in CI: apt-get install chromium; pip install playwright)")
    pytest.skip(why)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_saving_a_post_updates_the_open_page(browser: Any, make_site: Callable[..., Path]) -> None:
    from playwright.sync_api import Route, expect

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    folder = make_site({"base_url": base})
    lines: list[str] = []
    built = threading.Event()
    hub = ReloadHub()
    report = terminal_reporter(hub, lines.append)

    def on_build(outcome: BuildResult | Exception) -> None:
        report(outcome)
        built.set()

    watcher = SiteWatcher(config_mod.load(folder), on_build).start()
    try:
        assert built.wait(10), "initial build"
        with ServerThread(site_app(hub, folder / "public"), port):
            context = browser.new_context()

            def local_only(route: Route) -> None:
                if route.request.url.startswith(base + "/"):
                    route.continue_()
                else:
                    route.abort()

            context.route("**/*", local_only)
            post = context.new_page()
            other = context.new_page()
            try:
                post.goto(base + "/posts/first-article/")
                other.goto(base + "/about/")
                content = post.locator("article.post > .e-content")
                expect(content).to_contain_text("It has a second paragraph, too.")
                deadline = time.monotonic() + 10
                while hub.clients < 2:
                    assert time.monotonic() < deadline, "pages did not connect to the event stream"
                    time.sleep(0.05)
                post.evaluate("window.notReloaded = true")
                other.evaluate("window.notReloaded = true")

                source = folder / POST
                text = source.read_text(encoding="utf-8")
                source.write_text(
                    text.replace("It has a second paragraph, too.", "Edited live, no F5."),
                    encoding="utf-8",
                )
                expect(content).to_contain_text("Edited live, no F5.", timeout=5000)
                assert post.evaluate("window.notReloaded") is None, "the page was reloaded"
                assert other.evaluate("window.notReloaded") is True, "unrelated page reloaded"

                # A broken save: the overlay names the file; the last good page stays.
                broken = source.read_text(encoding="utf-8").replace("date: 2026", "date: soon")
                source.write_text(broken, encoding="utf-8")
                overlay = post.locator("#indiebridge-build-error")
                expect(overlay).to_be_visible(timeout=5000)
                expect(overlay).to_contain_text(POST)
                expect(content).to_contain_text("Edited live, no F5.")

                # Fixed: the overlay goes and the new text shows.
                source.write_text(
                    broken.replace("date: soon", "date: 2026").replace(
                        "Edited live, no F5.", "Fixed and shown."
                    ),
                    encoding="utf-8",
                )
                expect(content).to_contain_text("Fixed and shown.", timeout=5000)
                expect(overlay).to_have_count(0)
            finally:
                context.close()
    finally:
        watcher.stop()
    assert any(line.startswith(f"build failed: {POST}:") for line in lines), lines
