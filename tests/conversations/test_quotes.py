"""Quote posts (FEP-044f as Mastodon 4.5 does them): QuoteRequest -> Accept with a stamp
or Reject under ``quote_policy``; stamps served, revoked, and quotes shown under the post.

The requests are JSON fixtures shaped like the FEP's example (``fep-044f-quote-request``)
and like Mastodon 4.5's (``mastodon-quote-request``: embedded Note with ``url`` and the
legacy ``quoteUri``/``_misskey_quote``), in ``tests/data/quotes/``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from bs4 import BeautifulSoup
from starlette.applications import Starlette

from bridge import config as config_mod
from bridge.conversations import fediverse, quotes
from bridge.db import Database
from bridge.federation import followers, inbox
from bridge.federation.actors import parse_actor
from bridge.federation.context import Context, make_context
from bridge.keys import load as load_keys
from bridge.site import build as site_mod
from bridge.site import proofs, quote_policy
from bridge.site.comments import comment_id
from bridge.site.posts import Comment, CommentAuthor

pytestmark = pytest.mark.anyio

DATA = Path(__file__).resolve().parents[1] / "data" / "quotes"
ALICE = "https://social.example/users/alice"
POST_ID = "https://blog.example/ap/posts/first-article.json"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text("utf-8"))
    return doc


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def make_ctx(make_site: Callable[..., Path]) -> AsyncIterator[Callable[..., Context]]:
    made: list[Context] = []

    def make(**overrides: Any) -> Context:
        folder = make_site(overrides)
        shutil.rmtree(folder / "content" / "comments")
        config = config_mod.load(folder)
        site_mod.build(config)
        ctx = make_context(config, Database(config.db_path), load_keys(config.state_dir))
        doc = {
            "id": ALICE,
            "type": "Person",
            "inbox": ALICE + "/inbox",
            "preferredUsername": "alice",
            "name": "Alice",
            "url": "https://social.example/@alice",
        }
        ctx.actors.store(parse_actor(doc))
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        await ctx.fetcher.aclose()
        ctx.db.close()


def queued(ctx: Context) -> list[tuple[str, dict[str, Any]]]:
    rows = ctx.db.query(
        "SELECT d.inbox, o.body FROM outgoing o JOIN deliveries d ON d.activity_id = o.id "
        "ORDER BY d.id"
    )
    return [(r["inbox"], json.loads(r["body"])) for r in rows]


async def get(ctx: Context, path: str) -> httpx.Response:
    app = Starlette(routes=quotes.routes(ctx))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://blog.example") as c:
        return await c.get(path)


@pytest.mark.parametrize("name", ["fep-044f-quote-request", "mastodon-quote-request"])
async def test_public_policy_accepts_with_a_dereferenceable_stamp(
    make_ctx: Callable[..., Context], name: str
) -> None:
    ctx = make_ctx()
    request = fixture(name)
    await quotes.on_quote_request(ctx, request, False)

    [(inbox_url, accept)] = queued(ctx)
    assert inbox_url == ALICE + "/inbox"
    assert accept["type"] == "Accept" and accept["actor"] == ctx.config.actor_id
    assert accept["to"] == [ALICE]
    assert accept["object"] == {
        "type": "QuoteRequest",
        "id": request["id"],
        "actor": ALICE,
        "object": POST_ID,
        "instrument": request["instrument"]["id"],
    }
    proofs.verify_object(accept, ctx.keys.ed25519.public_key())

    stamp_url = accept["result"]
    assert stamp_url.startswith("https://blog.example/ap/quotes/")  # the quoted author's host
    response = await get(ctx, stamp_url.removeprefix("https://blog.example"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/activity+json")
    stamp = response.json()
    assert stamp["id"] == stamp_url
    assert stamp["type"] == "QuoteAuthorization"
    assert stamp["attributedTo"] == ctx.config.actor_id
    assert stamp["interactingObject"] == request["instrument"]["id"]  # by id, never embedded
    assert stamp["interactionTarget"] == POST_ID
    proofs.verify_object(stamp, ctx.keys.ed25519.public_key())

    # The quote shows under the post and links to the quoting post.
    quote = ctx.comments.get(comment_id("activitypub", request["instrument"]["id"]))
    assert quote is not None and quote[1].type == "quote"
    expected_link = request["instrument"].get("url", request["instrument"]["id"])
    assert quote[1].source == expected_link
    site_mod.build(ctx.config)
    page = (ctx.config.output_dir / "posts/first-article/index.html").read_text("utf-8")
    soup = BeautifulSoup(page, "html.parser")
    item = soup.select_one(".quotes li.h-cite")
    assert item is not None
    assert item.select_one(":scope > a.u-url")["href"] == expected_link  # type: ignore[index]
    assert "Alice" in item.get_text()


async def test_the_same_request_twice_reuses_the_stamp(make_ctx: Callable[..., Context]) -> None:
    ctx = make_ctx()
    await quotes.on_quote_request(ctx, fixture("fep-044f-quote-request"), False)
    await quotes.on_quote_request(ctx, fixture("fep-044f-quote-request"), False)
    results = {a["result"] for _, a in queued(ctx)}
    assert len(results) == 1
    assert len(list(ctx.comments.iter_all())) == 1


async def test_nobody_policy_rejects_and_keeps_nothing(make_ctx: Callable[..., Context]) -> None:
    ctx = make_ctx(quote_policy="nobody")
    request = fixture("mastodon-quote-request")
    await quotes.on_quote_request(ctx, request, False)
    [(_, reject)] = queued(ctx)
    assert reject["type"] == "Reject" and "result" not in reject
    assert reject["object"]["id"] == request["id"]
    assert list(ctx.comments.iter_all()) == []
    assert quotes.stamps_for(ctx, request["instrument"]["id"]) == []


async def test_followers_policy_accepts_only_followers(make_ctx: Callable[..., Context]) -> None:
    ctx = make_ctx(quote_policy="followers")
    await quotes.on_quote_request(ctx, fixture("fep-044f-quote-request"), False)
    followers.upsert(
        ctx.db,
        actor=ALICE,
        inbox=ALICE + "/inbox",
        shared_inbox=None,
        follow_id="https://social.example/follows/1",
        handle="@alice@social.example",
        state="accepted",
    )
    await quotes.on_quote_request(ctx, fixture("mastodon-quote-request"), False)
    assert [a["type"] for _, a in queued(ctx)] == ["Reject", "Accept"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda r: r["instrument"].update(id="https://elsewhere.example/notes/1"), "other host"),
        (lambda r: r["instrument"].update(attributedTo="https://social.example/users/bob"), "bob"),
        (lambda r: r.update(object="https://blog.example/ap/posts/nope.json"), "not our post"),
        (lambda r: r.update(object="https://other.example/notes/9"), "not ours at all"),
        (lambda r: r.pop("instrument"), "no quote post"),
    ],
)
async def test_requests_that_do_not_fit_get_no_answer(
    make_ctx: Callable[..., Context], change: Callable[[dict[str, Any]], Any], why: str
) -> None:
    ctx = make_ctx()
    request = copy.deepcopy(fixture("fep-044f-quote-request"))
    change(request)
    await quotes.on_quote_request(ctx, request, False)
    assert queued(ctx) == [], why
    await quotes.on_quote_request(ctx, fixture("fep-044f-quote-request"), True)  # forwarded
    assert queued(ctx) == [], "forwarded"


async def test_deleting_the_quote_post_makes_the_stamp_gone(
    make_ctx: Callable[..., Context],
) -> None:
    ctx = make_ctx()
    request = fixture("fep-044f-quote-request")
    await quotes.on_quote_request(ctx, request, False)
    stamp_path = queued(ctx)[0][1]["result"].removeprefix("https://blog.example")
    await fediverse.HOOKS["Delete"](
        ctx,
        {"type": "Delete", "actor": ALICE, "object": request["instrument"]["id"]},
        False,
    )
    response = await get(ctx, stamp_path)
    assert response.status_code == 410
    assert response.json()["type"] == "Tombstone"
    assert response.json()["formerType"] == "QuoteAuthorization"


async def test_revoke_sends_delete_of_the_stamp(make_ctx: Callable[..., Context]) -> None:
    ctx = make_ctx()
    followers.upsert(
        ctx.db,
        actor="https://peer.example/users/carol",
        inbox="https://peer.example/users/carol/inbox",
        shared_inbox="https://peer.example/inbox",
        follow_id="https://peer.example/follows/1",
        handle="@carol@peer.example",
        state="accepted",
    )
    request = fixture("mastodon-quote-request")
    await quotes.on_quote_request(ctx, request, False)
    [token] = quotes.stamps_for(ctx, request["instrument"]["id"])
    moment = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert quotes.revoke(ctx, token, moment)
    deletes = [(i, a) for i, a in queued(ctx) if a["type"] == "Delete"]
    stamp_id = quote_policy.stamp_url(ctx.config, token)
    assert {i for i, _ in deletes} == {ALICE + "/inbox", "https://peer.example/inbox"}
    assert all(a["object"] == stamp_id for _, a in deletes)
    assert (await get(ctx, f"/ap/quotes/{token}.json")).status_code == 410
    assert list(ctx.comments.iter_all()) == []
    assert not quotes.revoke(ctx, "0" * 24)
    assert (await get(ctx, "/ap/quotes/unknown.json")).status_code == 404


@pytest.mark.parametrize(
    ("policy", "approval"),
    [
        ("public", PUBLIC),
        ("followers", "https://blog.example/ap/followers.json"),
        ("nobody", "https://blog.example/ap/actor.json"),
    ],
)
async def test_post_objects_advertise_the_quote_policy(
    make_ctx: Callable[..., Context], policy: str, approval: str
) -> None:
    ctx = make_ctx(quote_policy=policy)
    obj = json.loads((ctx.config.output_dir / "ap/posts/first-article.json").read_text("utf-8"))
    assert obj["interactionPolicy"] == {"canQuote": {"automaticApproval": [approval]}}
    terms: dict[str, Any] = {}
    for entry in obj["@context"]:
        if isinstance(entry, dict):
            terms.update(entry)
    assert terms["interactionPolicy"] == {"@id": "gts:interactionPolicy", "@type": "@id"}
    assert terms["canQuote"] == {"@id": "gts:canQuote", "@type": "@id"}
    assert terms["gts"] == "https://gotosocial.org/ns#"


def test_quote_request_is_dispatched_by_the_inbox() -> None:
    table = inbox.default_handlers({**fediverse.HOOKS, **quotes.HOOKS})
    assert table["QuoteRequest"] is quotes.on_quote_request


def test_answer_needs_a_stamp_exactly_for_accept(make_site: Callable[..., Path]) -> None:
    config = config_mod.load(make_site())
    request = fixture("fep-044f-quote-request")
    with pytest.raises(ValueError):
        quote_policy.answer(config, request, "Accept")
    with pytest.raises(ValueError):
        quote_policy.answer(config, request, "Reject", "https://blog.example/ap/quotes/x.json")


async def test_a_quote_post_created_first_becomes_a_quote(
    make_ctx: Callable[..., Context],
) -> None:
    """Mastodon may deliver the quote post's Create before its QuoteRequest: the public
    mention it made is turned into a quote, keeping its content."""
    ctx = make_ctx()
    request = fixture("mastodon-quote-request")
    note = dict(request["instrument"])
    create = {"type": "Create", "id": note["id"] + "/activity", "actor": ALICE, "object": note}
    await fediverse.HOOKS["Create"](ctx, create, False)
    before = ctx.comments.get(comment_id("activitypub", note["id"]))
    assert (
        before is not None and before[1].type == "mention" and "Worth reading" in before[1].content
    )
    await quotes.on_quote_request(ctx, request, False)
    after = ctx.comments.get(comment_id("activitypub", note["id"]))
    assert after is not None and after[1].type == "quote"
    assert after[1].content == before[1].content
    # And a Create arriving after the QuoteRequest leaves the quote as it is.
    await fediverse.HOOKS["Create"](ctx, create, False)
    again = ctx.comments.get(comment_id("activitypub", note["id"]))
    assert again is not None and again[1].type == "quote"


async def test_blocking_the_quoter_revokes_the_stamp(make_ctx: Callable[..., Context]) -> None:
    ctx = make_ctx()
    await quotes.on_quote_request(ctx, fixture("fep-044f-quote-request"), False)
    path = queued(ctx)[0][1]["result"].removeprefix("https://blog.example")
    assert (await get(ctx, path)).status_code == 200
    followers.block(ctx.db, ALICE)
    assert (await get(ctx, path)).status_code == 410


def test_quotes_are_listed_by_comments_list_json(make_site: Callable[..., Path]) -> None:
    from click.testing import CliRunner

    from bridge.cli import main
    from bridge.site.comments import CommentStore

    folder = make_site()
    CommentStore(folder / "content").write("first-article", quotes_comment())
    result = CliRunner().invoke(main, ["comments", "list", "--json", "--site", str(folder)])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    quoted = [e for e in entries if e.get("type") == "quote"]
    assert len(quoted) == 1
    assert quoted[0]["source"] == "https://social.example/@alice/114"
    assert quoted[0]["author"]["name"] == "Alice"


def quotes_comment() -> Comment:
    return Comment(
        id=comment_id("activitypub", "https://social.example/users/alice/statuses/114"),
        type="quote",
        protocol="activitypub",
        source="https://social.example/@alice/114",
        target="https://blog.example/posts/first-article/",
        author=CommentAuthor(name="Alice", url="https://social.example/@alice"),
        content="",
        published=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        object_id="https://social.example/users/alice/statuses/114",
    )


async def test_deleting_a_quote_with_the_cli_revokes_its_stamp(
    make_ctx: Callable[..., Context],
) -> None:
    import anyio
    from click.testing import CliRunner

    from bridge.cli import main

    ctx = make_ctx()
    request = fixture("mastodon-quote-request")
    await quotes.on_quote_request(ctx, request, False)
    cid = comment_id("activitypub", request["instrument"]["id"])
    args = ["comments", "delete", cid, "--site", str(ctx.config.site_dir)]
    # The command runs its own event loop: from a worker thread, as from a shell.
    result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(main, args))
    assert result.exit_code == 0, result.output
    assert "Withdrew that quote's approval" in result.output
    [token] = quotes.stamps_for(ctx, request["instrument"]["id"])
    deletes = [a for _, a in queued(ctx) if a["type"] == "Delete"]
    assert [d["object"] for d in deletes] == [quote_policy.stamp_url(ctx.config, token)]
    assert (await get(ctx, f"/ap/quotes/{token}.json")).status_code == 410
