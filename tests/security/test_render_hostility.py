"""Strangers' HTML and names in the owner's built pages.

Replies arrive through the real ingestion paths (a signed Create at the inbox, a
webmention source fetched and interpreted), then the site is built with
``bridge.site.build`` and the post page is parsed: nothing a stranger wrote may add a
script, an event handler, a ``javascript:``/``data:`` URL, a style, SVG, a form, a frame,
a ``<base>``/``<meta>``/``<link>``, or a bidirectional-override character to it.

Comment files are content, so a file can also reach ``content/comments/`` another way (a
restored backup, a merge, a future importer); the ``CommentStore`` cases check what the
theme does with hostile fields that bypassed ingestion.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
from collections import Counter
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.config import SiteConfig
from bridge.conversations import webmentions
from bridge.errors import BuildError, ContentError
from bridge.federation.context import Context
from bridge.site import build as site_mod
from bridge.site.comments import CommentStore, comment_id
from bridge.site.posts import Comment, CommentAuthor
from tests.security.conftest import (
    ALICE,
    POST_SLUG,
    InboxHarness,
    SpyBackend,
    context_with_fetcher,
    create,
    guarded_fetcher,
    note,
)
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = [pytest.mark.anyio, pytest.mark.category("render")]

HOSTILE_HTML = {
    "script": "<script>alert(1)</script><p>hi</p>",
    "img-onerror": '<img src=x onerror="alert(1)">',
    "handler-on-allowed-tag": '<p onclick="alert(1)" onmouseover=alert(1)>hi</p>',
    "javascript-href": '<a href="javascript:alert(1)">x</a>',
    "javascript-entity": '<a href="jav&#x09;ascript&#58;alert(1)">x</a>',
    "javascript-spaces": '<a href="  JaVaScRiPt:alert(1)">x</a>',
    "vbscript": '<a href="vbscript:msgbox(1)">x</a>',
    "data-href": '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    "style-tag": "<style>body{display:none}</style><p>x</p>",
    "style-attr": '<p style="position:fixed;top:0;left:0;width:100%;height:100%">x</p>',
    "svg": '<svg onload="alert(1)"><script>alert(2)</script><a href="javascript:1">s</a></svg>',
    "math": '<math><mtext><a href="javascript:alert(1)">m</a></mtext></math>',
    "form": '<form action="https://evil.example/"><input name="pw"><button>Go</button></form>',
    "iframe": '<iframe src="https://evil.example/"></iframe>',
    "object-embed": '<object data="x.swf"></object><embed src="x.swf">',
    "base": '<base href="https://evil.example/">',
    "meta-refresh": '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
    "link-stylesheet": '<link rel="stylesheet" href="https://evil.example/x.css">',
    "comment-trick": "<!--<script>alert(1)</script>--><p>x</p>",
    "noscript-mxss": '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    "template": "<template><script>alert(1)</script></template>",
    "unclosed": '<p><a href="https://ok.example/"><b><i>never closed',
    "closing-the-page": "</div></article></section></main></body></html><script>alert(1)</script>",
    "target-blank": '<a href="https://ok.example/" target="_blank" rel="opener">x</a>',
}
HOSTILE_NAMES = {
    "script-name": "<script>alert(1)</script>",
    "attribute-breakout": '"><img src=x onerror=alert(1)>',
    "bidi-override": "\u202eevil\u202c admin",
    "bidi-isolates": "\u2066\u2067\u2068x\u2069",
    "zero-width-and-controls": "a\u200bb\u0000c\u001bd\u200fe",
    "very-long": "A" * 5000,
}
DANGEROUS_TAGS = {
    "script", "style", "svg", "math", "form", "input", "button", "iframe", "frame", "object",
    "embed", "base", "meta", "link", "template", "noscript", "textarea", "select",
}  # fmt: skip
URL_ATTRS = {"href", "src", "action", "formaction", "data", "poster", "srcset", "xlink:href"}
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.handlers: list[tuple[str, str]] = []
        self.urls: list[tuple[str, str, str]] = []
        self.styles: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append((tag, name))
            if name == "style":
                self.styles.append(value or "")
            if name in URL_ATTRS and value is not None:
                self.urls.append((tag, name, value))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def assert_harmless(baseline: str, page: str) -> None:
    """``page`` adds nothing dangerous to ``baseline`` (the same page before the comment)."""
    before, after = parse(baseline), parse(page)
    for tag in DANGEROUS_TAGS:
        assert after.tags[tag] <= before.tags[tag], f"a comment added <{tag}>"
    assert after.handlers == before.handlers
    assert after.styles == before.styles
    for tag, attr, value in after.urls:
        scheme = "".join(value.split()).lower().split(":", 1)[0]
        assert scheme not in ("javascript", "data", "vbscript"), (tag, attr, value)
    assert not BIDI & set(page), "a bidirectional control character reached the page"
    # The raw markup as well: no breakout outside of what the parser saw as attributes.
    lowered = page.lower()
    assert lowered.count("<script") == baseline.lower().count("<script")
    assert "alert(1)</script>" not in lowered.replace("&lt;script&gt;alert(1)&lt;/script&gt;", "")


def post_page(config: SiteConfig) -> str:
    return (config.output_dir / "posts" / POST_SLUG / "index.html").read_text(encoding="utf-8")


# ---- through the inbox -----------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(HOSTILE_HTML))
async def test_hostile_reply_html_from_the_fediverse_is_sanitised(
    inbox: InboxHarness, case: str
) -> None:
    baseline = post_page(inbox.config)
    obj = note(ALICE + "/notes/1", in_reply_to=inbox.post_url, content=HOSTILE_HTML[case])
    obj["summary"] = HOSTILE_HTML[case]  # the content warning too
    assert (await inbox.post(create(ALICE, obj))).status_code == 202
    await inbox.process()
    assert len(inbox.comments()) == 1
    site_mod.build(inbox.config)
    assert_harmless(baseline, post_page(inbox.config))


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
async def test_hostile_actor_profile_is_escaped(inbox: InboxHarness, case: str) -> None:
    baseline = post_page(inbox.config)
    name = HOSTILE_NAMES[case]
    inbox.add_actor(
        ALICE,
        inbox.keys[ALICE],
        name=name,
        preferredUsername="alice" + name[:20],
        url="javascript:alert(1)",
        icon={"type": "Image", "url": "data:image/svg+xml,<svg onload=alert(1)>"},
    )
    reply = create(ALICE, note(ALICE + "/notes/1", in_reply_to=inbox.post_url))
    like = {"id": ALICE + "/likes/1", "type": "Like", "actor": ALICE, "object": inbox.post_url}
    for activity in (reply, like):
        assert (await inbox.post(activity)).status_code == 202
    await inbox.process()
    assert len(inbox.comments()) == 2
    site_mod.build(inbox.config)
    page = post_page(inbox.config)
    assert_harmless(baseline, page)
    for comment in inbox.comments().values():
        assert len(comment.author.name) <= 100


# ---- through webmention verification ---------------------------------------------------------


@pytest.fixture
async def wm(hostile_site: SiteConfig, spy: SpyBackend) -> AsyncIterator[Context]:
    ctx = context_with_fetcher(hostile_site, guarded_fetcher(spy))
    yield ctx
    await ctx.fetcher.aclose()
    ctx.db.close()


@pytest.mark.parametrize(
    "case", ["script", "javascript-href", "svg", "form", "style-attr", "noscript-mxss"]
)
@pytest.mark.parametrize("name", ["script-name", "attribute-breakout", "bidi-override"])
async def test_hostile_webmention_source_is_sanitised(
    wm: Context, web: WebServer, case: str, name: str
) -> None:
    baseline = post_page(wm.config)
    target = wm.config.post_url(POST_SLUG)
    author = html.escape(HOSTILE_NAMES[name])
    page = (
        '<div class="h-entry">'
        f'<a class="p-author h-card" href="javascript:alert(1)">{author}'
        '<img class="u-photo" src="javascript:alert(1)"></a>'
        f'<p class="p-name">{author}</p>'
        f'<a class="u-in-reply-to" href="{target}">re</a>'
        f'<div class="e-content">{HOSTILE_HTML[case]}</div></div>'
    )
    web.route("/post", body=page)
    source = web.url("/post", host="public.test")
    assert await webmentions.verify(wm, source, target) == ""
    found = wm.comments.get(comment_id("webmention", f"{source} {target}"))
    assert found is not None
    site_mod.build(wm.config)
    assert_harmless(baseline, post_page(wm.config))


# ---- comment files that bypassed ingestion ----------------------------------------------------


def _comment(**fields: Any) -> Comment:
    author = CommentAuthor(
        name=fields.pop("name", "Eve"),
        url=fields.pop("url", "https://eve.example/"),
        photo=fields.pop("photo", ""),
        handle=fields.pop("handle", ""),
    )
    base = Comment(
        id="ee" * 10,
        type="reply",
        protocol="webmention",
        source="https://eve.example/reply",
        target="https://blog.example/posts/first-article/",
        author=author,
        content="<p>hi</p>",
        published=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        updated=None,
        status="approved",
        in_reply_to="",
        object_id="",
    )
    return dataclasses.replace(base, **fields)


def _build_with(site_dir: Path, comments: list[Comment]) -> tuple[str, str]:
    from bridge import config as config_mod

    config = config_mod.load(site_dir)
    site_mod.build(config)
    baseline = post_page(config)
    store = CommentStore(config.content_dir)
    for c in comments:
        store.write(POST_SLUG, c)
    site_mod.build(config)
    return baseline, post_page(config)


# Bidi and control characters are removed at ingestion (moderation.clean_text); the
# theme's escaping is what stands between a comment file's name and the markup.
@pytest.mark.parametrize("case", ["script-name", "attribute-breakout", "very-long"])
def test_hostile_author_names_in_comment_files_are_escaped(site: Path, case: str) -> None:
    name = HOSTILE_NAMES[case]
    comments = [
        _comment(name=name, handle=name),
        _comment(id="ef" * 10, type="like", name=name),
        _comment(id="fe" * 10, type="mention", name=name),
    ]
    baseline, page = _build_with(site, comments)
    assert_harmless(baseline, page)


@pytest.mark.parametrize("field", ["url", "photo", "source", "in_reply_to"])
def test_javascript_urls_in_comment_files_never_reach_an_attribute(site: Path, field: str) -> None:
    evil = "javascript:alert(document.cookie)"
    comments = [
        _comment(**{field: evil}),
        _comment(id="ef" * 10, type="like", **{field: evil}),
    ]
    baseline, page = _build_with(site, comments)
    assert_harmless(baseline, page)


def test_script_in_a_comment_file_never_reaches_the_page(site: Path) -> None:
    baseline, page = _build_with(site, [_comment(content=HOSTILE_HTML["script"])])
    assert_harmless(baseline, page)


# ---- paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["../escape", "..", "a/../../escape", "/etc/escape", "x\\..\\y"])
def test_post_slug_cannot_write_outside_the_output(site: Path, tmp_path: Path, slug: str) -> None:
    from bridge import config as config_mod

    post = site / "content" / "posts" / "2026-03-01-evil.md"
    post.write_text(
        f'---\ntitle: Evil\ndate: 2026-03-01T10:00:00Z\nslug: "{slug}"\n---\nBody.\n',
        encoding="utf-8",
    )
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises((ContentError, BuildError)):
        site_mod.build(config_mod.load(site))
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert [
        p
        for p in after
        if p not in before and "public" not in p.parts and ".indiebridge" not in p.parts
    ] == []
    assert not (tmp_path / "escape").exists() and not (site / "escape").exists()


@pytest.mark.parametrize(("slug", "cid"), [("../..", "ee" * 10), (POST_SLUG, "../../../escape")])
def test_comment_store_cannot_write_outside_its_folder(site: Path, slug: str, cid: str) -> None:
    store = CommentStore(site / "content")
    try:
        path = store.write(slug, _comment(id=cid))
    except (ValueError, OSError):
        return
    assert store.root in path.resolve().parents


@pytest.mark.parametrize(
    "path",
    [
        "/..%2fsite.toml",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/posts/..%2f..%2fsite.toml",
        "/posts/%2e%2e%5c%2e%2e%5csite.toml",
        "/.indiebridge/keys/private.pem",
        "/static/..%2f..%2f.indiebridge%2fstate.sqlite3",
        "//etc/passwd",
        "/%00",
    ],
)
async def test_daemon_serves_nothing_outside_the_output(inbox: InboxHarness, path: str) -> None:
    r = await inbox.client.get(httpx.URL("http://testserver" + path))
    assert r.status_code in (301, 404), (path, r.status_code)
    assert b"PRIVATE KEY" not in r.content and b"base_url" not in r.content
