"""The default theme in Debian's Chromium: the sample blog, with comments of every kind
from strangers, served by `indiebridge serve` as a preview on a free port.  At 1280 and
390 px, light and dark, every stylesheet loads, every image has ``naturalWidth > 0`` and
nothing overflows the viewport sideways.  Screenshots are saved under
``benchmarks/work/screenshots/`` (git-ignored) for people to look at."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import copy_site
from tests.e2e.blog import free_port
from tests.e2e.test_live_reload_browser import browser  # noqa: F401 - the fixture
from tests.e2e.test_preview_server import Server

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "benchmarks" / "work" / "screenshots"
POST = "leaving-the-silo"

pytestmark = pytest.mark.slow


def _comment(folder: Path, ident: str, kind: str, name: str, **fields: Any) -> None:
    doc = {
        "author": {
            "handle": fields.pop("handle", ""),
            "name": name,
            "photo": fields.pop("photo", ""),
            "url": fields.pop("url", ""),
        },
        "content": fields.pop("content", ""),
        "id": ident,
        "in_reply_to": fields.pop("in_reply_to", ""),
        "object_id": "",
        "protocol": fields.pop("protocol", "activitypub"),
        "published": fields.pop("published", "2026-03-03T08:15:42.481516+00:00"),
        "source": fields.pop("source", ""),
        "status": "approved",
        "target": f"http://127.0.0.1:8000/posts/{POST}/",
        "type": kind,
        "updated": None,
    }
    (folder / f"{ident}.json").write_text(json.dumps(doc), encoding="utf-8")


@pytest.fixture
def sample(tmp_path: Path, key_files: Path) -> Iterator[Server]:
    site = copy_site(tmp_path / "site", key_files)  # keys; then the sample's own files
    for name in ("content", "static"):
        shutil.rmtree(site / name)
        shutil.copytree(REPO / name, site / name)
    # Two replies a page: the two oldest below are on an older page of their own.
    toml = (REPO / "site.toml").read_text(encoding="utf-8")
    toml = toml.replace("posts_per_page =", "comments_per_page = 2\nposts_per_page =")
    (site / "site.toml").write_text(toml, encoding="utf-8")
    folder = site / "content" / "comments" / POST
    folder.mkdir(parents=True)
    port = free_port()
    avatar = f"http://127.0.0.1:{port}/static/avatar.png"  # a "remote" photo that answers
    for n, name in enumerate(["Noor Haddad", "Tomas Berg"], start=1):
        _comment(
            folder,
            f"e00000000000000000a{n}",
            "reply",
            name,
            url=f"https://social.example/@{name.split()[0].lower()}",
            source=f"https://social.example/@{name.split()[0].lower()}/{n}",
            published=f"2026-03-01T0{n}:00:00+00:00",
            content=f"<p>An early reply, number {n}, kept on the first page of replies.</p>",
        )
    _comment(
        folder,
        "e0000000000000000001",
        "reply",
        "Lena Ortiz",
        handle="@lena@social.example",
        url="https://social.example/@lena",
        source="https://social.example/@lena/1",
        photo=avatar,
        content="<p>Same here: I moved my notes back to my own domain last year and "
        "have not looked back.</p>",
    )
    _comment(
        folder,
        "e0000000000000000002",
        "reply",
        "Mira Okafor",
        url="http://127.0.0.1:8000/",
        source="http://127.0.0.1:8000/posts/x/",
        in_reply_to="https://social.example/@lena/1",
        protocol="webmention",
        content="<p>That is good to hear. What did you use for comments?</p>",
    )
    _comment(
        folder,
        "e0000000000000000003",
        "reply",
        "anonymous stranger",
        content="<p>A reply from someone who gave no address at all.</p>",
    )
    for n, name in enumerate(["Ana", "Bo", "Cy"]):
        _comment(
            folder,
            f"e00000000000000001{n}0",
            "like",
            name,
            url=f"https://social.example/@{name.lower()}",
            photo=avatar if n else "",
        )
    _comment(folder, "e0000000000000000200", "repost", "Dee")
    _comment(
        folder,
        "e0000000000000000300",
        "mention",
        "Eli",
        url="https://eli.example/",
        source="https://eli.example/notes/1",
    )
    server = Server(site, port=port)
    yield server
    server.stop()


PAGES = {
    "home": "/",
    "post": f"/posts/{POST}/",
    "tag": "/tags/indieweb/",
    "archive": "/archive/",
    "replies": f"/posts/{POST}/comments/1/",
    "about": "/about/",
    "404": "/no-such-page/",
}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1280, 390])
def test_theme_renders_fully(browser: Any, sample: Server, width: int, scheme: str) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    try:
        for name, path in PAGES.items():
            response = page.goto(sample.url + path, wait_until="load")
            assert response is not None
            assert response.status == (404 if name == "404" else 200), path
            sheets = page.evaluate(
                "Array.from(document.styleSheets).map(s => [s.href, s.cssRules.length])"
            )
            assert sheets and all(rules > 0 for _, rules in sheets), (path, sheets)
            page.evaluate(  # lazy images below the fold: load them all, then look
                "Promise.all(Array.from(document.images).map(i => { i.loading = 'eager';"
                " return i.decode().catch(() => null); }))"
            )
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                ".map(i => i.src)"
            )
            assert broken == [], (path, broken)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, (path, overflow)
            page.screenshot(path=str(SHOTS / f"{name}-{width}-{scheme}.png"), full_page=True)
    finally:
        context.close()
