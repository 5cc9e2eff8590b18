"""The blogger's first hour, in Debian's Chromium: the README's "Start your own blog" steps,
run as written (``init`` with the README's arguments, ``cd``, ``build``, ``serve``) in an
empty folder, with the ``indiebridge`` command as a subprocess.  Only the port differs:
``serve`` gets a free one so tests can run side by side.

The preview it prints then works in a browser: every stylesheet loads, every image has
``naturalWidth > 0`` and every internal link on the home page answers 200.  Screenshots of
the home page at 1280 and 390 px, light and dark, are saved under
``benchmarks/work/screenshots/`` (git-ignored) for people to look at."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.blog import free_port
from tests.e2e.test_live_reload_browser import browser  # noqa: F401 - the fixture

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "benchmarks" / "work" / "screenshots"
# The README's commands, word for word (README.md, "Start your own blog").
INIT = 'indiebridge init myblog --title "My blog" --base-url https://blog.example --username me'

pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    """The shell lines of the README's "Start your own blog" block, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Start your own blog", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def indiebridge() -> list[str]:
    """The installed ``indiebridge`` script next to this Python, or the module as a fallback."""
    script = Path(sys.executable).parent / "indiebridge"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bridge"]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [*indiebridge(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"indiebridge {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture
def first_hour(tmp_path: Path) -> Iterator[str]:
    """Follows the README in an empty folder; yields the preview's address that serve printed."""
    commands = readme_commands()
    assert commands[1:] == [INIT, "cd myblog", "indiebridge build", "indiebridge serve"], commands
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    run(["init", "myblog", "--title", "My blog", "--base-url", "https://blog.example",
         "--username", "me"], tmp_path, env)  # fmt: skip
    blog = tmp_path / "myblog"
    run(["build"], blog, env)
    assert (blog / "public" / "index.html").is_file()
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*indiebridge(), "serve", "--port", str(port)],
            cwd=blog,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        printed: list[str] = []
        while not printed:
            assert proc.poll() is None, log.read_text(encoding="utf-8", errors="replace")
            assert time.monotonic() < deadline, log.read_text(encoding="utf-8", errors="replace")
            printed = re.findall(r"http://127\.0\.0\.1:\d+", log.read_text(encoding="utf-8"))
            time.sleep(0.2)
        url = printed[0]
        assert url == f"http://127.0.0.1:{port}", log.read_text(encoding="utf-8")
        while True:
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text(encoding="utf-8")
                time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


def test_the_readme_blog_works_in_a_browser(browser: Any, first_hour: str) -> None:  # noqa: F811
    base = first_hour
    shutil.rmtree(SHOTS / "first-hour", ignore_errors=True)
    (SHOTS / "first-hour").mkdir(parents=True)
    requested: list[str] = []
    for width in (1280, 390):
        for scheme in ("light", "dark"):
            context = browser.new_context(
                viewport={"width": width, "height": 900}, color_scheme=scheme
            )
            requested.clear()
            context.on("request", lambda request: requested.append(request.url))
            page = context.new_page()
            try:
                response = page.goto(base + "/", wait_until="load")
                assert response is not None and response.status == 200
                sheets = page.evaluate(
                    "Array.from(document.styleSheets).map(s => [s.href, s.cssRules.length])"
                )
                assert sheets, "the home page has no stylesheet"
                assert all(href and href.startswith(base + "/") for href, _ in sheets), sheets
                assert all(rules > 0 for _, rules in sheets), sheets
                page.evaluate(  # lazy images below the fold: load them all, then look
                    "Promise.all(Array.from(document.images).map(i => { i.loading = 'eager';"
                    " return i.decode().catch(() => null); }))"
                )
                images = page.evaluate(
                    "Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth])"
                )
                # A fresh init has no image yet; any the theme adds must load.
                assert all(width > 0 for _, width in images), images
                links = page.evaluate(
                    "Array.from(document.querySelectorAll('a[href]'), a => a.href)"
                )
                page.screenshot(
                    path=str(SHOTS / "first-hour" / f"home-{width}-{scheme}.png"), full_page=True
                )
            finally:
                context.close()
            leaked = [url for url in requested if not url.startswith(base + "/")]
            assert leaked == [], f"the preview asked for other addresses: {leaked}"
    internal = sorted({link.split("#", 1)[0] for link in links if link.startswith(base + "/")})
    assert len(internal) >= 4, internal  # home, a post, the archive, a tag or a page at least
    for link in internal:
        answer = httpx.get(link, timeout=10)
        assert answer.status_code == 200, f"{link} answered {answer.status_code}"
    print(f"first hour: {len(internal)} internal links on the home page, all 200")
