"""Imported posts look like their originals in a real browser (Debian's Chromium, driven
by Playwright; skipped without it, or failing when ``CI`` is set).

Three posts of an old blog (a code sample with blank lines, nested lists, a captioned
image) are served over loopback, imported from the blog's feed, built, and opened next to
their originals.  What a reader sees is compared: the code's exact text, each list
level indented further than the one above, the image loaded with its caption below it.
The screenshots are written to the test's folder, or to ``$INDIEBRIDGE_SCREENSHOTS``
when set, for a person to look at.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge.cli import main
from bridge.site import build as site_mod
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CODE = 'def greet(name):\n    """Say hello."""\n\n\n    return f"Hello, {name} & co"\n'
BOAT = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="200">'
    '<rect width="300" height="200" fill="#c33"/></svg>'
)
ORIGINALS = {
    "code-sample": (
        "<p>A function:</p>"
        f'<pre><code class="language-python">{html.escape(CODE, quote=False)}</code></pre>'
    ),
    "nested-lists": (
        "<ul><li>Boats<ul><li>Sail<ul><li>Dinghy</li></ul></li><li>Motor</li></ul></li>"
        "<li>Birds</li></ul><ol><li>First<ol><li>First, inner</li></ol></li></ol>"
    ),
    "captioned-image": (
        '<figure><img src="/old/boat.svg" alt="A red boat" width="300" height="200">'
        "<figcaption>The red boat at dawn</figcaption></figure>"
    ),
}
MEASURE = """() => {
  const pre = document.querySelector('article pre, body > pre, main pre');
  const levels = {};
  for (const li of document.querySelectorAll('li')) {
    let depth = 0;
    for (let node = li.parentElement; node; node = node.parentElement) {
      if (node.tagName === 'UL' || node.tagName === 'OL') depth++;
    }
    const x = li.getBoundingClientRect().left;
    levels[depth] = Math.min(levels[depth] ?? x, x);
  }
  const img = document.querySelector('figure img');
  const caption = document.querySelector('figure figcaption');
  return {
    code: pre ? pre.innerText : null,
    levels: Object.keys(levels).sort().map(k => levels[k]),
    image: img ? {loaded: img.complete && img.naturalWidth > 0,
                  bottom: img.getBoundingClientRect().bottom} : null,
    caption: caption ? {text: caption.innerText.trim(),
                        top: caption.getBoundingClientRect().top} : null,
  };
}"""


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (required in CI: apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


def old_blog(web: WebServer) -> None:
    items = []
    for n, (slug, body) in enumerate(ORIGINALS.items(), 1):
        page = f"<!doctype html><html><body><main><h1>{slug}</h1>{body}</main></body></html>"
        web.route(f"/old/{slug}/", body=page)
        items.append(
            f"<item><title>{slug}</title><link>{web.url(f'/old/{slug}/')}</link>"
            f"<pubDate>Mon, 0{n} Jan 2024 10:00:00 +0000</pubDate>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded></item>"
        )
    web.route("/old/boat.svg", body=BOAT, content_type="image/svg+xml")
    web.route(
        "/old/feed.xml",
        body='<?xml version="1.0"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Old</title>'
        f"<link>{web.url('/old/')}</link>{''.join(items)}</channel></rss>",
        content_type="application/rss+xml",
    )


def test_imported_posts_look_like_their_originals(
    browser: Any, web: WebServer, make_site: Any, tmp_path: Path
) -> None:
    old_blog(web)
    site = make_site({"base_url": web.url("").rstrip("/"), "allow_private_addresses": True})
    for path in (site / "content" / "posts").glob("*.md"):
        path.unlink()
    args = ["import", web.url("/old/feed.xml"), "--site", str(site)]
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread already
        result = pool.submit(CliRunner().invoke, main, args).result()
    assert result.exit_code == 0 and "Imported 3 post(s)" in result.output, result.output
    config = config_mod.load(site)
    site_mod.build(config)
    for path in config.output_dir.rglob("*"):
        if path.is_file():
            rel = path.relative_to(config.output_dir).as_posix()
            web.route(f"/{rel}", body=path.read_bytes(), content_type=None)
            if path.name == "index.html":
                web.route(f"/{rel.removesuffix('index.html')}", body=path.read_bytes())

    shots = Path(os.environ.get("INDIEBRIDGE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 900, "height": 900})
    seen: dict[str, dict[str, Any]] = {}
    for slug in ORIGINALS:
        for side, path in (("original", f"/old/{slug}/"), ("imported", f"/posts/{slug}/")):
            page.goto(web.url(path), wait_until="load")
            seen[f"{slug}/{side}"] = page.evaluate(MEASURE)
            page.screenshot(path=str(shots / f"{slug}-{side}.png"), full_page=True)
            assert (shots / f"{slug}-{side}.png").stat().st_size > 1000

    code = seen["code-sample/imported"]["code"]
    assert code.rstrip("\n") == seen["code-sample/original"]["code"].rstrip("\n")
    assert code.rstrip("\n") == CODE.rstrip("\n")  # the blank lines and indents included
    for side in ("original", "imported"):
        levels = seen[f"nested-lists/{side}"]["levels"]
        assert len(levels) == 3 and levels[0] < levels[1] < levels[2], (side, levels)
        figure = seen[f"captioned-image/{side}"]
        assert figure["image"]["loaded"], side
        assert figure["caption"]["text"] == "The red boat at dawn"
        assert figure["caption"]["top"] >= figure["image"]["bottom"] - 1
