"""Quoting from our side (``quote_of``, FEP-044f): the quoted post is fetched over loopback
at publish time and shown as a card, a ``QuoteRequest`` goes to its author, and the
``Accept`` (with a ``QuoteAuthorization`` stamp, fetched and checked) or ``Reject``
decides what our object carries (``bridge.federation.quoting``, ``bridge.site.quote_card``).

The remote documents are shaped like Mastodon 4.5's: a Note with ``url`` and a stamp and
an ``Accept`` embedding the request, as in FEP-044f's examples.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup

from bridge import config as config_mod
from bridge.daemon import services
from bridge.errors import ContentError
from bridge.federation import mention_resolver, quoting
from bridge.site import content
from tests.federation.test_outbox import Site
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = pytest.mark.anyio
AP = "application/activity+json"
AS = "https://www.w3.org/ns/activitystreams"
FEP = "https://w3id.org/fep/044f#"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def blog(make_site: Callable[..., Path]) -> AsyncIterator[Site]:
    site = Site(make_site({"allow_private_addresses": True}))
    yield site
    await site.ctx.fetcher.aclose()


def serve_note(web: WebServer, *, content: str = "<p>The original words.</p>") -> str:
    """Bob's actor and a Mastodon-shaped Note at /users/bob/statuses/1; returns its id."""
    bob = web.url("/users/bob")
    web.route(
        "/users/bob",
        content_type=AP,
        body=json.dumps(
            {
                "@context": AS,
                "id": bob,
                "type": "Person",
                "preferredUsername": "bob",
                "name": "Bob Example",
                "inbox": bob + "/inbox",
                "url": web.url("/@bob"),
                "icon": {"type": "Image", "url": web.url("/avatars/bob.png")},
            }
        ),
    )
    note = web.url("/users/bob/statuses/1")
    web.route(
        "/users/bob/statuses/1",
        content_type=AP,
        body=json.dumps(
            {
                "@context": [AS, {"sensitive": "as:sensitive"}],
                "id": note,
                "type": "Note",
                "attributedTo": bob,
                "url": web.url("/@bob/1"),
                "published": "2026-02-20T09:30:00Z",
                "to": [AS + "#Public"],
                "content": content,
            }
        ),
    )
    return note


def write_quote(site: Site, slug: str, quote_of: str) -> None:
    front = f"---\ntitle: {slug.title()}\ndate: 2026-03-01\nquote_of: {quote_of}\n---\n"
    (site.posts_dir / f"{slug}.md").write_text(front + "Look at this.\n", "utf-8")


def built_object(site: Site, slug: str) -> dict[str, Any]:
    path = site.ctx.config.output_dir / "ap" / "posts" / f"{slug}.json"
    doc: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return doc


def page(site: Site, slug: str) -> BeautifulSoup:
    path = site.ctx.config.output_dir / "posts" / slug / "index.html"
    return BeautifulSoup(path.read_text("utf-8"), "html.parser")


def to_inbox(site: Site, inbox: str) -> list[dict[str, Any]]:
    rows = site.ctx.db.query(
        "SELECT o.body FROM outgoing o JOIN deliveries d ON d.activity_id = o.id "
        "WHERE d.inbox = ? ORDER BY o.created, o.rowid",
        (inbox,),
    )
    return [json.loads(r["body"]) for r in rows]


def stamp_doc(web: WebServer, *, interacting: str, target: str, author: str) -> dict[str, Any]:
    return {
        "@context": [
            AS,
            {
                "QuoteAuthorization": FEP + "QuoteAuthorization",
                "gts": "https://gotosocial.org/ns#",
                "interactingObject": {"@id": "gts:interactingObject", "@type": "@id"},
                "interactionTarget": {"@id": "gts:interactionTarget", "@type": "@id"},
            },
        ],
        "type": "QuoteAuthorization",
        "id": web.url("/users/bob/quote_authorizations/1"),
        "attributedTo": author,
        "interactingObject": interacting,
        "interactionTarget": target,
    }


def accept(web: WebServer, request: dict[str, Any]) -> dict[str, Any]:
    """Mastodon's answer: the QuoteRequest embedded, ``result`` = the stamp's id."""
    return {
        "@context": [AS, {"QuoteRequest": FEP + "QuoteRequest"}],
        "id": web.url("/users/bob#accepts/quote_requests/1"),
        "type": "Accept",
        "actor": web.url("/users/bob"),
        "to": request["actor"],
        "object": {k: request[k] for k in ("id", "type", "actor", "object")}
        | {"instrument": request["instrument"]["id"]},
        "result": web.url("/users/bob/quote_authorizations/1"),
    }


async def quote_and_publish(blog: Site, web: WebServer) -> tuple[str, dict[str, Any]]:
    note = serve_note(web, content='<p>The original words.</p><script>alert("x")</script>')
    write_quote(blog, "quoting", note)
    changed, warnings = await mention_resolver.resolve(blog.ctx, blog.build())
    assert (changed, warnings) == (1, [])
    report = await blog.publish()
    assert report.created == ["quoting"]
    # The quoted author gets the Create (as a mentioned account would) and the request.
    to_bob = to_inbox(blog, web.url("/users/bob/inbox"))
    assert sorted(a["type"] for a in to_bob) == ["Create", "QuoteRequest"]
    return note, next(a for a in to_bob if a["type"] == "QuoteRequest")


async def test_before_publish_the_post_links_the_quoted_post(blog: Site, web: WebServer) -> None:
    note = serve_note(web)
    write_quote(blog, "quoting", note)
    blog.build()  # the build never fetches: a link card, and a link in the object
    assert web.requests == []
    card = page(blog, "quoting").select_one("blockquote.quote-card")
    assert card is not None and card.a is not None and card.a["href"] == note
    obj = built_object(blog, "quoting")
    assert "quote" not in obj and "quoteAuthorization" not in obj
    assert obj["content"].endswith(f'<p class="quote-inline">RE: <a href="{note}">{note}</a></p>')


async def test_publish_fetches_the_card_and_asks_the_quoted_author(
    blog: Site, web: WebServer
) -> None:
    note, request = await quote_and_publish(blog, web)
    ours = built_object(blog, "quoting")
    # FEP-044f's QuoteRequest: actor = us, object = the quoted post, instrument = our post.
    assert request["actor"] == blog.ctx.config.actor_id
    assert request["object"] == note
    assert request["instrument"]["id"] == ours["id"]
    assert request["instrument"]["quote"] == note
    assert request["to"] == [web.url("/users/bob")]
    assert "proof" in request
    assert any(
        isinstance(c, dict) and c.get("QuoteRequest") == FEP + "QuoteRequest"
        for c in request["@context"]
    )
    # Pending: `quote` names it, no stamp and no legacy field yet; the page shows the card.
    assert ours["quote"] == note
    assert not {"quoteAuthorization", "quoteUrl", "_misskey_quote"} & set(ours)
    html = page(blog, "quoting")
    card = html.select_one("blockquote.quote-card")
    assert card is not None
    assert "Bob Example" in card.get_text() and "@bob@" in card.get_text()
    assert "The original words." in card.get_text() and "script" not in str(card)
    assert card.select_one("img.u-photo")["src"] == web.url("/avatars/bob.png")  # type: ignore[index]
    assert "not yet approved" in card.get_text()
    # Followers get the Create; the request goes to the quoted author only.
    assert [a["type"] for a in blog.queued()] == ["Create"]
    assert blog.queued()[0]["object"]["quote"] == note
    # Asked once: publishing again sends no second request.
    await blog.publish()
    to_bob = to_inbox(blog, web.url("/users/bob/inbox"))
    assert [a["type"] for a in to_bob].count("QuoteRequest") == 1


async def test_an_accept_with_a_checked_stamp_authorises_and_updates(
    blog: Site, web: WebServer
) -> None:
    note, request = await quote_and_publish(blog, web)
    ours = request["instrument"]["id"]
    bob = web.url("/users/bob")
    stamp = stamp_doc(web, interacting=ours, target=note, author=bob)
    web.route("/users/bob/quote_authorizations/1", content_type=AP, body=json.dumps(stamp))
    dirty: list[str] = []
    blog.ctx.mark_dirty = dirty.append
    await quoting.on_answer(blog.ctx, accept(web, request), False)
    assert dirty == ["quoting"]
    assert web.requests_to("/users/bob/quote_authorizations/1")  # dereferenced
    report = await blog.publish()  # rebuilt: the object changed, an Update goes out
    assert report.updated == ["quoting"]
    obj = built_object(blog, "quoting")
    assert obj["quoteAuthorization"] == stamp["id"]
    assert obj["quote"] == obj["quoteUrl"] == obj["_misskey_quote"] == note
    update = blog.queued()[-1]
    assert update["type"] == "Update" and update["object"]["quoteAuthorization"] == stamp["id"]
    assert to_inbox(blog, web.url("/users/bob/inbox"))[-1] == update  # the author too
    assert "not yet approved" not in page(blog, "quoting").get_text()
    # The author withdraws it: Delete of the stamp -> no quote any more, the link stays.
    delete = {"type": "Delete", "actor": bob, "object": stamp["id"], "id": bob + "#del"}
    await quoting.on_stamp_delete(blog.ctx, delete, False)
    blog.build()
    obj = built_object(blog, "quoting")
    assert "quote" not in obj and "quoteAuthorization" not in obj
    assert web.url("/@bob/1") in obj["content"]


@pytest.mark.parametrize(
    "bad",
    [
        {"interactingObject": "http://127.0.0.1:1/someone/else"},
        {"interactionTarget": "http://127.0.0.1:1/another/post"},
        {"attributedTo": "http://127.0.0.1:1/users/mallory"},
        {"type": "Note"},
    ],
)
async def test_a_stamp_that_does_not_match_is_refused(
    blog: Site, web: WebServer, bad: dict[str, str]
) -> None:
    note, request = await quote_and_publish(blog, web)
    bob = web.url("/users/bob")
    stamp = stamp_doc(web, interacting=request["instrument"]["id"], target=note, author=bob)
    stamp.update(bad)
    web.route("/users/bob/quote_authorizations/1", content_type=AP, body=json.dumps(stamp))
    await quoting.on_answer(blog.ctx, accept(web, request), False)
    row = blog.ctx.db.one("SELECT state FROM quotes_out WHERE slug = 'quoting'")
    assert row is not None and row["state"] == "pending"


async def test_answers_from_others_or_forwarded_are_ignored(blog: Site, web: WebServer) -> None:
    _note, request = await quote_and_publish(blog, web)
    forged = accept(web, request) | {"actor": "http://127.0.0.1:1/users/mallory"}
    await quoting.on_answer(blog.ctx, forged, False)
    await quoting.on_answer(blog.ctx, accept(web, request), True)  # forwarded
    await quoting.on_answer(blog.ctx, {"type": "Accept", "object": "https://x.example/f"}, False)
    row = blog.ctx.db.one("SELECT state FROM quotes_out WHERE slug = 'quoting'")
    assert row is not None and row["state"] == "pending"
    assert web.requests_to("/users/bob/quote_authorizations/1") == []


async def test_a_reject_through_the_inbox_table_leaves_only_the_link(
    blog: Site, web: WebServer
) -> None:
    _note, request = await quote_and_publish(blog, web)
    reject = accept(web, request) | {"type": "Reject"}
    reject.pop("result")
    await services.inbox_handlers()["Reject"](blog.ctx, reject, False)
    blog.build()
    obj = built_object(blog, "quoting")
    assert not {"quote", "quoteAuthorization", "quoteUrl", "_misskey_quote"} & set(obj)
    assert f'RE: <a href="{web.url("/@bob/1")}">' in obj["content"]
    card = page(blog, "quoting").select_one("blockquote.quote-card")
    assert card is not None and "The original words." not in card.get_text()
    assert card.a is not None and card.a["href"] == web.url("/@bob/1")  # the link stays


async def test_something_that_is_not_a_post_stays_a_plain_link(blog: Site, web: WebServer) -> None:
    serve_note(web)
    write_quote(blog, "quoting", web.url("/users/bob"))  # an actor, not a post
    changed, warnings = await mention_resolver.resolve(blog.ctx, blog.build())
    assert changed == 0
    assert len(warnings) == 1
    assert warnings[0].startswith("content/posts/quoting.md: quote_of ")
    assert "Person, not a post that can be quoted" in warnings[0]
    await blog.publish()
    assert to_inbox(blog, web.url("/users/bob/inbox")) == []
    assert "quote" not in built_object(blog, "quoting")


async def test_the_card_cache_is_bounded(
    blog: Site, web: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quoting, "MAX_CACHE", 3)
    for n in range(5):
        quoting.store(blog.ctx, f"https://x.example/{n}", f"https://x.example/{n}", "a", {})
    rows = blog.ctx.db.query("SELECT url FROM quote_cache")
    assert len(rows) == 3


def test_quote_of_must_be_an_http_url(make_site: Callable[..., Path]) -> None:
    folder = make_site()
    post = folder / "content" / "posts" / "bad.md"
    post.write_text("---\ndate: 2026-03-01\nquote_of: javascript:alert(1)\n---\nhi\n", "utf-8")
    config = config_mod.load(folder)
    with pytest.raises(ContentError, match="'quote_of' must be the http"):
        content.load(config)
