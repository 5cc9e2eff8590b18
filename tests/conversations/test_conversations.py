"""Fediverse activities -> comment files -> the built page (the harness is in
``fediverse_harness``; the fixtures ``h`` and ``harness_factory`` in ``conftest.py``)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mf2py
import pytest

from bridge.conversations import moderation, replies
from bridge.federation import followers
from bridge.federation.actors import first_id
from bridge.site.comments import comment_id
from tests.conversations.fediverse_harness import (
    ALICE,
    BASE,
    BOB,
    FIXTURES,
    MALLORY,
    NOTE_POST,
    POST,
    POST_ID,
    PUBLIC,
    Harness,
    create,
    note,
)

pytestmark = pytest.mark.anyio

# ---- every real-world fixture passes through the hooks ------------------------------------


def _fixture_files() -> list[Path]:
    return sorted(FIXTURES.glob("*.json")) if FIXTURES.is_dir() else []


REPLIES = replies.REPLY_TYPES
UNDOABLE = ("Like", "Announce", "Dislike")


def retarget(activity: dict[str, Any]) -> dict[str, Any]:
    """Point a fixture at one of our posts where that makes sense."""
    a = copy.deepcopy(activity)
    kind = a.get("type")
    obj = a.get("object")
    if kind in ("Create", "Update") and isinstance(obj, dict) and obj.get("type") in REPLIES:
        obj["inReplyTo"] = POST_ID
    elif kind in ("Like", "Announce", "EmojiReact", "Dislike"):
        if isinstance(obj, str) or (isinstance(obj, dict) and "actor" not in obj):
            a["object"] = POST_ID
    elif kind == "Undo" and isinstance(obj, dict) and obj.get("type") in UNDOABLE:
        obj["object"] = POST_ID
    return a


@pytest.mark.skipif(not _fixture_files(), reason="shared activity fixtures not present")
@pytest.mark.parametrize("path", _fixture_files(), ids=lambda p: p.stem)
async def test_every_fixture_passes_through_the_hooks(h: Harness, path: Path) -> None:
    activity = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(activity, dict):
        pytest.skip("not an activity")
    for original in (activity, retarget(activity)):
        actor = first_id(original.get("actor"))
        if actor and actor.startswith("http"):
            h.actor(actor)
        obj = original.get("object")
        author = first_id(obj.get("attributedTo")) if isinstance(obj, dict) else None
        if author and author.startswith("http"):
            h.actor(author)
        await h.send(original)
        await h.send(original, forwarded=True)
    for _, comment in h.ctx.comments.iter_all():
        assert "<script" not in comment.content
        assert comment.author.name


async def test_fixture_shapes_become_the_expected_comments(h: Harness) -> None:
    if not _fixture_files():
        pytest.skip("shared activity fixtures not present")

    def load(name: str) -> dict[str, Any]:
        a = retarget(json.loads((FIXTURES / name).read_text(encoding="utf-8")))
        h.actor(first_id(a["actor"]) or "")
        return a

    reply = load("mastodon--create--note-reply-mention.json")
    await h.send(reply)
    got = h.comment(reply["object"]["id"])
    assert got is not None and got.type == "reply" and got.status == "approved"
    assert got.source == reply["object"]["url"]
    assert got.published == dt.datetime(2021, 11, 5, 11, 46, 50, tzinfo=dt.UTC)

    like = load("misskey--like--custom-emoji-reaction.json")
    await h.send(like)
    react = load("pleroma--emojireact--unicode.json")
    await h.send(react)
    boost = load("gotosocial--announce--string-audience.json")
    await h.send(boost)
    kinds = sorted(c.type for c in h.comments().values())
    assert kinds == ["like", "like", "reply", "repost"]

    undo = load("mastodon--undo--like-embedded.json")
    h.actor(undo["object"]["actor"])
    await h.send(retarget(dict(undo["object"])))
    assert len(h.comments()) == 5
    await h.send(undo)
    assert len(h.comments()) == 4


# ---- replies ---------------------------------------------------------------------------------


async def test_reply_becomes_an_approved_comment(h: Harness) -> None:
    n = note("https://social.example/users/alice/statuses/1")
    await h.send(create(n))
    c = h.comment(n["id"])
    assert c is not None
    assert (c.type, c.protocol, c.status) == ("reply", "activitypub", "approved")
    assert c.id == comment_id("activitypub", n["id"])
    assert c.author.name == "Alice"
    assert c.author.handle == "@alice@social.example"
    assert c.author.url == "https://social.example/@alice"
    assert c.author.photo == "https://social.example/avatars/alice.png"
    assert c.source == "https://social.example/users/alice/@1"
    assert c.object_id == n["id"]
    assert c.target == POST
    assert c.in_reply_to == ""
    assert c.content == "<p>Great post!</p>"
    assert h.dirty == ["first-article"]
    assert (h.site / "content/comments/first-article" / f"{c.id}.json").is_file()


async def test_reply_by_html_url_and_redelivery_keeps_one_file(h: Harness) -> None:
    n = note("https://social.example/users/alice/statuses/2", in_reply_to=NOTE_POST)
    await h.send(create(n))
    await h.send(create(n))
    assert [c.target for c in h.comments().values()] == [NOTE_POST]
    assert len(list((h.site / "content/comments/quick-note").glob("*.json"))) == 1


async def test_url_as_link_object_list_and_content_map(h: Harness) -> None:
    n = note("https://social.example/users/alice/statuses/3", content="")
    del n["content"]
    n["contentMap"] = {"de": "<p>Hallo</p>"}
    n["url"] = [
        {"type": "Link", "mediaType": "application/activity+json", "href": n["id"]},
        {"type": "Link", "mediaType": "text/html", "href": "https://social.example/@alice/3"},
    ]
    await h.send(create(n))
    c = h.comment(n["id"])
    assert c is not None and c.content == "<p>Hallo</p>"
    assert c.source == "https://social.example/@alice/3"


async def test_nested_reply_is_stored_under_the_post(h: Harness) -> None:
    parent = note("https://social.example/users/alice/statuses/10")
    await h.send(create(parent))
    child = note("https://other.example/users/bob/statuses/11", BOB, in_reply_to=parent["id"])
    await h.send(create(child, BOB))
    grandchild_id = "https://social.example/users/alice/statuses/12"
    grandchild = note(grandchild_id, in_reply_to=child["url"])
    await h.send(create(grandchild))
    c = h.comment(child["id"])
    g = h.comment(grandchild_id)
    assert c is not None and g is not None
    assert c.in_reply_to == parent["id"] and c.target == POST
    assert g.in_reply_to == child["url"]
    html = h.build()
    parsed = mf2py.parse(doc=html, url=POST)
    entry = next(i for i in parsed["items"] if "h-entry" in i["type"])
    top = entry["properties"]["comment"]
    assert len(top) == 1
    assert top[0]["properties"]["author"][0]["properties"]["name"] == ["Alice"]
    nested = [ch for ch in top[0].get("children", [])] + [
        v for vs in top[0]["properties"].values() for v in vs if isinstance(v, dict)
    ]
    assert "Bob" in json.dumps(nested)


async def test_reply_to_unknown_post_or_other_site_is_ignored(h: Harness) -> None:
    await h.send(create(note("https://social.example/users/alice/statuses/20", in_reply_to=None)))
    await h.send(
        create(
            note(
                "https://social.example/users/alice/statuses/21",
                in_reply_to=f"{BASE}/posts/no-such-post/",
            )
        )
    )
    await h.send(
        create(
            note(
                "https://social.example/users/alice/statuses/22",
                in_reply_to="https://elsewhere.example/notes/1",
            )
        )
    )
    assert h.comments() == {}
    assert h.ctx.db.query("SELECT * FROM notifications") == []


async def test_direct_reply_and_mentions_are_private_notifications(h: Harness) -> None:
    me = h.ctx.config.actor_id
    dm = note("https://social.example/users/alice/statuses/30", to=[me])
    await h.send(create(dm))
    mention = note(
        "https://social.example/users/alice/statuses/31",
        in_reply_to=None,
        tag={"type": "Mention", "href": me, "name": "@tester@blog.example"},
    )
    await h.send(create(mention))
    assert h.comments() == {}
    rows = h.ctx.db.query("SELECT * FROM notifications ORDER BY url")
    assert [r["actor"] for r in rows] == [ALICE, ALICE]
    listed = moderation.list_comments(h.ctx)
    assert {e["status"] for e in listed} == {"private"}
    assert {e["type"] for e in listed} == {"mention"}
    assert moderation.list_comments(h.ctx, pending_only=True) == []
    # The owner deletes one; the author edits and then deletes the other.
    moderation.delete(h.ctx, rows[0]["id"])
    await h.send(
        {
            "id": mention["id"] + "#delete",
            "type": "Delete",
            "actor": ALICE,
            "object": {"id": mention["id"], "type": "Tombstone"},
        }
    )
    await h.send({"type": "Delete", "actor": ALICE, "object": dm["id"]})
    assert h.ctx.db.query("SELECT * FROM notifications") == []


async def test_quote_post_is_a_mention(h: Harness) -> None:
    q = note(
        "https://social.example/users/alice/statuses/40",
        in_reply_to=None,
        quoteUrl=POST_ID,
        _misskey_quote=POST_ID,
    )
    await h.send(create(q))
    c = h.comment(q["id"])
    assert c is not None and c.type == "mention"


async def test_question_and_article_replies(h: Harness) -> None:
    poll = note("https://social.example/users/alice/statuses/50")
    poll["type"] = "Question"
    poll["oneOf"] = [{"type": "Note", "name": "yes"}, {"type": "Note", "name": "no"}]
    article = note("https://social.example/users/alice/statuses/51", content="")
    article.update(type="Article", name="A response", content="<p>Long form</p>")
    image = note("https://social.example/users/alice/statuses/52")
    image["type"] = "Image"
    for obj in (poll, article, image):
        await h.send(create(obj))
    # Image, Video, Audio, Document and Event replies are comments too (Mastodon shows them).
    expected = {poll["id"], article["id"], image["id"]}
    assert {c.object_id for c in h.comments().values()} == expected


async def test_forwarded_create_uses_the_copy_from_its_origin(h: Harness) -> None:
    n = note("https://social.example/users/alice/statuses/60", content="<p>real</p>")
    h.remote.serve(n["id"], n)
    forged = dict(n, content="<p>forged by a relay</p>")
    await h.send(create(forged, actor=ALICE), forwarded=True)
    c = h.comment(n["id"])
    assert c is not None and c.content == "<p>real</p>"
    assert n["id"] in h.remote.requests


async def test_embedded_object_attributed_to_someone_else_is_fetched(h: Harness) -> None:
    n = note("https://social.example/users/alice/statuses/61", content="<p>alice said</p>")
    h.remote.serve(n["id"], n)
    forged = dict(n, content="<p>mallory says alice said</p>")
    await h.send(create(forged, actor=MALLORY))
    c = h.comment(n["id"])
    assert c is not None and c.content == "<p>alice said</p>"
    assert c.author.handle == "@alice@social.example"


async def test_object_on_another_origin_than_its_author_is_ignored(h: Harness) -> None:
    n = note("https://evil.example/statuses/62", ALICE)
    h.remote.serve(n["id"], n)
    await h.send(create(n, actor=ALICE), forwarded=True)
    assert h.comments() == {}


async def test_gone_object_is_dropped_and_bare_id_is_fetched(h: Harness) -> None:
    gone = "https://social.example/users/alice/statuses/63"
    h.remote.serve(gone, {"id": gone, "type": "Tombstone"}, status=410)
    await h.send({"id": gone + "/a", "type": "Create", "actor": ALICE, "object": gone})
    assert h.comments() == {}
    n = note("https://social.example/users/alice/statuses/64")
    h.remote.serve(n["id"], n)
    await h.send({"id": n["id"] + "/a", "type": "Create", "actor": ALICE, "object": n["id"]})
    assert h.comment(n["id"]) is not None


# ---- policy ----------------------------------------------------------------------------------


async def test_manual_policy_holds_every_comment(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(comments_policy="manual")
    n = note("https://social.example/users/alice/statuses/70")
    await h.send(create(n))
    c = h.comment(n["id"])
    assert c is not None and c.status == "pending"
    assert [e["id"] for e in moderation.list_comments(h.ctx, pending_only=True)] == [c.id]
    assert "Great post" not in h.build()
    moderation.approve(h.ctx, c.id)
    assert "Great post" in h.build()


async def test_followers_policy_approves_accepted_followers_only(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(comments_policy="followers")
    followers.upsert(
        h.ctx.db, actor=ALICE, inbox=ALICE + "/inbox", shared_inbox=None,
        follow_id=ALICE + "#follow", handle="@alice@social.example", state="accepted",
    )  # fmt: skip
    followers.upsert(
        h.ctx.db, actor=BOB, inbox=BOB + "/inbox", shared_inbox=None,
        follow_id=BOB + "#follow", handle="@bob@other.example", state="pending",
    )  # fmt: skip
    a = note("https://social.example/users/alice/statuses/71")
    b = note("https://other.example/users/bob/statuses/72", BOB)
    await h.send(create(a))
    await h.send(create(b, BOB))
    assert h.comment(a["id"]).status == "approved"  # type: ignore[union-attr]
    assert h.comment(b["id"]).status == "pending"  # type: ignore[union-attr]


# ---- updates and deletes ---------------------------------------------------------------------


async def test_update_by_the_author_edits_the_comment(h: Harness) -> None:
    n = note("https://social.example/users/alice/statuses/80")
    await h.send(create(n))
    edited = dict(n, content="<p>Edited</p>", updated="2026-02-02T10:00:00.123+0000")
    await h.send({"id": n["id"] + "#u1", "type": "Update", "actor": ALICE, "object": edited})
    c = h.comment(n["id"])
    assert c is not None and c.content == "<p>Edited</p>"
    assert c.updated == dt.datetime(2026, 2, 2, 10, 0, 0, 123000, tzinfo=dt.UTC)
    assert c.published == dt.datetime(2026, 2, 1, 10, tzinfo=dt.UTC)


async def test_update_or_delete_by_someone_else_changes_nothing(h: Harness) -> None:
    n = note("https://social.example/users/alice/statuses/81")
    await h.send(create(n))
    forged = dict(n, content="<p>pwned</p>", attributedTo=MALLORY)
    await h.send({"id": "https://social.example/x#u", "type": "Update", "actor": MALLORY,
                  "object": forged})  # fmt: skip
    h.remote.serve(n["id"], n)
    await h.send({"id": "https://social.example/x#u2", "type": "Update", "actor": MALLORY,
                  "object": forged}, forwarded=True)  # fmt: skip
    for obj in (n["id"], {"id": n["id"], "type": "Tombstone"}, n):
        await h.send({"id": "https://social.example/x#d", "type": "Delete", "actor": MALLORY,
                      "object": obj})  # fmt: skip
        await h.send({"type": "Delete", "actor": BOB, "object": obj})
    c = h.comment(n["id"])
    assert c is not None and c.content == "<p>Great post!</p>"


@pytest.mark.parametrize("shape", ["bare", "tombstone", "embedded"])
async def test_delete_by_the_author_removes_the_comment(h: Harness, shape: str) -> None:
    n = note("https://social.example/users/alice/statuses/82")
    await h.send(create(n))
    obj: Any = {"bare": n["id"], "tombstone": {"id": n["id"], "type": "Tombstone"}, "embedded": n}[
        shape
    ]
    h.dirty.clear()
    await h.send({"type": "Delete", "actor": ALICE, "object": obj})
    assert h.comment(n["id"]) is None
    assert h.dirty == ["first-article"]


async def test_actor_delete_removes_all_its_comments(h: Harness) -> None:
    for i in range(3):
        await h.send(create(note(f"https://social.example/users/alice/statuses/9{i}")))
    await h.send(create(note("https://other.example/users/bob/statuses/99", BOB), BOB))
    await h.send({"id": f"{BASE}#l", "type": "Like", "actor": ALICE, "object": POST_ID})
    await h.send({"id": ALICE + "#delete", "type": "Delete", "actor": ALICE,
                  "object": {"id": ALICE, "type": "Person"}})  # fmt: skip
    assert [c.author.name for c in h.comments().values()] == ["Bob"]


async def test_actor_update_refreshes_the_author_on_comments(h: Harness) -> None:
    await h.send(create(note("https://social.example/users/alice/statuses/100")))
    doc = {
        "id": ALICE,
        "type": "Person",
        "inbox": ALICE + "/inbox",
        "preferredUsername": "alice",
        "name": "Alice Liddell",
        "url": "https://social.example/@alice",
    }
    await h.send({"id": ALICE + "#u", "type": "Update", "actor": ALICE, "object": doc})
    (c,) = h.comments().values()
    assert c.author.name == "Alice Liddell" and c.author.photo == ""


# ---- likes, boosts, undo ---------------------------------------------------------------------


def like(
    actor: str, obj: Any = POST_ID, kind: str = "Like", n: int = 1, **extra: Any
) -> dict[str, Any]:
    return {"id": f"{actor}#likes/{n}", "type": kind, "actor": actor, "object": obj, **extra}


async def test_likes_reactions_and_boosts(h: Harness) -> None:
    await h.send(like(ALICE))
    await h.send(like(BOB, POST, "EmojiReact", content="🔥"))
    await h.send(like(MALLORY, {"id": POST_ID, "type": "Article"}, _misskey_reaction=":blob:"))
    await h.send(like(ALICE, POST_ID, "Announce", n=2, to=PUBLIC))
    await h.send(like(BOB, POST_ID, "Dislike", n=3))
    await h.send(like(BOB, POST_ID, "SuperLike", n=4))
    kinds = sorted((c.author.name, c.type) for c in h.comments().values())
    assert kinds == [("Alice", "like"), ("Alice", "repost"), ("Bob", "like"), ("Mallory", "like")]
    html = h.build()
    parsed = mf2py.parse(doc=html, url=POST)
    entry = next(i for i in parsed["items"] if "h-entry" in i["type"])
    assert len(entry["properties"]["like"]) == 3
    assert len(entry["properties"]["repost"]) == 1
    assert entry["properties"]["repost"][0]["properties"]["author"][0]["properties"]["name"] == [
        "Alice"
    ]


async def test_like_of_a_post_that_does_not_exist_changes_nothing(h: Harness) -> None:
    await h.send(like(ALICE, f"{BASE}/ap/posts/missing.json"))
    await h.send(like(ALICE, "https://elsewhere.example/post"))
    assert h.comments() == {}
    assert h.dirty == []


async def test_undo_by_embedded_activity_bare_id_or_actor_and_object(h: Harness) -> None:
    await h.send(like(ALICE))
    await h.send(like(BOB))
    await h.send(like(ALICE, kind="Announce", n=2))
    assert len(h.comments()) == 3
    # Embedded, with another id than the Like had (some servers re-mint it).
    await h.send({"type": "Undo", "actor": ALICE,
                  "object": {"id": "https://x.example/other", "type": "Like", "actor": ALICE,
                             "object": POST}})  # fmt: skip
    # Bare id of the boost.
    await h.send({"type": "Undo", "actor": ALICE, "object": f"{ALICE}#likes/2"})
    # Someone else's undo of Bob's like does nothing.
    await h.send({"type": "Undo", "actor": MALLORY, "object": f"{BOB}#likes/1"})
    await h.send({"type": "Undo", "actor": MALLORY,
                  "object": {"type": "Like", "actor": BOB, "object": POST_ID}})  # fmt: skip
    assert [c.author.name for c in h.comments().values()] == ["Bob"]
    await h.send({"type": "Undo", "actor": BOB,
                  "object": {"id": f"{BOB}#likes/1", "type": "Like", "actor": BOB,
                             "object": POST_ID}})  # fmt: skip
    assert h.comments() == {}


# ---- what reaches the page -------------------------------------------------------------------

XSS = (
    '<p onclick="alert(1)" style="color:red" class="x">Hi<script>alert(2)</script>'
    '<a href="javascript:alert(3)">js</a><a href="data:text/html,<b>4</b>">data</a>'
    '<a href="https://ok.example/" onmouseover="alert(5)" target="_blank">ok</a>'
    "<img src=x onerror=alert(6)><svg onload=alert(7)><script>alert(8)</script></svg>"
    '<iframe src="https://evil.example/"></iframe><form action="https://evil.example/">'
    '<input name="pw"><button>go</button></form><style>body{display:none}</style>'
    '<math><mi xlink:href="javascript:alert(9)">m</mi></math>'
    '<a href="  JaVaScRiPt:alert(10)">case</a><a href="vbscript:x">vb</a></p>'
)
BAD = (
    "<script", "onclick", "onerror", "onload", "onmouseover", "javascript:", "data:text",
    "style=", "<style", "<svg", "<iframe", "<form", "<input", "<img", "<math", "vbscript",
    "alert(",
)  # fmt: skip


async def test_hostile_content_never_reaches_the_file_or_the_page(h: Harness) -> None:
    n = note("https://social.example/users/alice/statuses/110", content=XSS)
    n["summary"] = '<b onclick="x">cw</b>'
    await h.send(create(n))
    c = h.comment(n["id"])
    assert c is not None
    raw = next((h.site / "content/comments/first-article").glob(f"{c.id}.json")).read_text()
    for bad in BAD:
        assert bad not in c.content.lower(), bad
        assert bad not in raw.lower(), bad
    assert '<a href="https://ok.example/" rel="nofollow ugc noopener">ok</a>' in c.content
    html = h.build()
    article = html[html.index(f'id="c-{c.id}"') :]
    body = article[article.index('<div class="e-content">') : article.index("</article>")]
    for bad in BAD:
        assert bad not in body.lower(), bad
    assert "<bdi>Alice</bdi>" in article


async def test_hostile_author_fields_are_neutralised(h: Harness) -> None:
    evil = "https://social.example/users/evil"
    h.actor(
        evil,
        name='Eve\u202egnp.exe"><script>alert(1)</script>\u2066x\u0000',
        url="javascript:alert(1)",
    )
    await h.send(create(note("https://social.example/users/evil/statuses/1", evil), evil))
    (c,) = h.comments().values()
    assert "\u202e" not in c.author.name and "\u2066" not in c.author.name
    assert "\u0000" not in c.author.name
    assert c.author.url == evil  # the javascript: profile URL is replaced by the actor id
    html = h.build()
    assert "\u202e" not in html
    assert "<bdi>Eve gnp.exe&#34;&gt;&lt;script&gt;" in html
    assert "javascript:" not in html


async def test_lenient_timestamps() -> None:
    parse = moderation.parse_time
    utc = dt.UTC
    assert parse("2023-10-30T12:44:35+0000") == dt.datetime(2023, 10, 30, 12, 44, 35, tzinfo=utc)
    assert parse("2023-10-30T12:44:35Z") == dt.datetime(2023, 10, 30, 12, 44, 35, tzinfo=utc)
    assert parse("2023-10-30T14:44:35.5+02:00") == dt.datetime(
        2023, 10, 30, 12, 44, 35, 500000, tzinfo=utc
    )
    assert parse("2023-10-30T12:44:35.123456789Z") == dt.datetime(
        2023, 10, 30, 12, 44, 35, 123456, tzinfo=utc
    )
    assert parse("Mon, 30 Oct 2023 12:44:35 GMT") == dt.datetime(
        2023, 10, 30, 12, 44, 35, tzinfo=utc
    )
    assert parse("2023-10-30 12:44:35") == dt.datetime(2023, 10, 30, 12, 44, 35, tzinfo=utc)
    assert parse("yesterday") is None and parse(None) is None and parse(17) is None
    future = parse("2999-01-01T00:00:00Z")
    assert future is not None and future <= dt.datetime.now(utc)


async def test_comments_read_back_with_mf2py(h: Harness) -> None:
    await h.send(create(note("https://social.example/users/alice/statuses/120")))
    html = h.build()
    parsed = mf2py.parse(doc=html, url=POST)
    entry = next(i for i in parsed["items"] if "h-entry" in i["type"])
    replies = entry["properties"]["comment"]
    (alice,) = replies
    assert "h-entry" in alice["type"]
    card = alice["properties"]["author"][0]
    assert "h-card" in card["type"]
    assert card["properties"]["url"][0] == "https://social.example/@alice"
    assert card["properties"]["photo"][0] in (
        "https://social.example/avatars/alice.png",
        {"value": "https://social.example/avatars/alice.png", "alt": ""},
    )
    assert alice["properties"]["content"][0]["html"].strip() == "<p>Great post!</p>"


async def test_blocked_authors_are_ignored_and_removed(h: Harness) -> None:
    await h.send(create(note("https://social.example/users/alice/statuses/130")))
    await h.send(create(note("https://other.example/users/bob/statuses/131", BOB), BOB))
    await h.send(like(MALLORY))
    followers.block(h.ctx.db, "@bob@other.example")
    await h.send(create(note("https://other.example/users/bob/statuses/132", BOB), BOB))
    removed = moderation.apply_blocks(h.ctx)
    assert len(removed) == 1
    followers.block(h.ctx.db, MALLORY)
    followers.block(h.ctx.db, "social.example")
    assert len(moderation.apply_blocks(h.ctx)) == 2
    assert h.comments() == {}


async def test_approved_reply_queues_a_salmention(h: Harness) -> None:
    from bridge.conversations import salmention

    await h.send(create(note("https://social.example/users/alice/statuses/140")))
    assert set(salmention.read_queue(h.ctx.db)) == {"first-article"}


async def test_fixture_update_delete_and_undo_chains(h: Harness) -> None:
    if not _fixture_files():
        pytest.skip("shared activity fixtures not present")

    def load(name: str) -> dict[str, Any]:
        a = retarget(json.loads((FIXTURES / name).read_text(encoding="utf-8")))
        h.actor(first_id(a["actor"]) or "")
        return a

    update = load("friendica--update--note.json")
    note_id = update["object"]["id"]
    original = dict(update["object"], content="<p>before the edit</p>", updated=None)
    await h.send({"id": note_id + "#create", "type": "Create", "actor": update["actor"],
                  "object": original})  # fmt: skip
    assert h.comment(note_id).content == "<p>before the edit</p>"  # type: ignore[union-attr]
    await h.send(update)
    edited = h.comment(note_id)
    assert edited is not None and "before the edit" not in edited.content and edited.updated
    await h.send(load("friendica--delete--tombstone.json"))
    assert h.comment(note_id) is None

    boost = load("mastodon--announce--public.json")
    await h.send(boost)
    assert [c.type for c in h.comments().values()] == ["repost"]
    await h.send(load("mastodon--undo--announce.json"))
    assert h.comments() == {}
