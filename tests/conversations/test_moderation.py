"""Sanitising, the comments policy and the owner's decisions (approve, reject, delete,
blocks) on a copy of the test site."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import config as config_mod
from bridge.conversations import moderation, salmention
from bridge.db import Database
from bridge.federation import followers
from bridge.federation.actors import parse_actor
from bridge.federation.context import Context, make_context
from bridge.keys import load as load_keys
from bridge.site import sanitize
from bridge.site.comments import CommentStore, comment_id
from bridge.site.posts import Comment, CommentAuthor

POST = "https://blog.example/posts/first-article/"
ALICE = "https://social.example/users/alice"


@pytest.fixture
def ctx_factory(make_site: Callable[..., Path]) -> Iterator[Callable[..., Context]]:
    made: list[Context] = []

    def make(**overrides: Any) -> Context:
        folder = make_site(overrides)
        config = config_mod.load(folder)
        ctx = make_context(config, Database(config.db_path), load_keys(config.state_dir))
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.db.close()


@pytest.fixture
def ctx(ctx_factory: Callable[..., Context]) -> Context:
    return ctx_factory()


def comment(
    n: int,
    *,
    status: str = "approved",
    kind: str = "reply",
    handle: str = "@alice@social.example",
    host: str = "social.example",
    protocol: str = "activitypub",
) -> Comment:
    object_id = f"https://{host}/users/alice/statuses/{n}"
    return Comment(
        id=comment_id(protocol, object_id),
        type=kind,
        protocol=protocol,
        source=object_id,
        target=POST,
        author=CommentAuthor(name="Alice", url=f"https://{host}/@alice", photo="", handle=handle),
        content=f"<p>comment {n}</p>",
        published=dt.datetime(2026, 2, n, tzinfo=dt.UTC),
        status=status,
        object_id=object_id if protocol == "activitypub" else "",
    )


# ---- sanitising ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("<p>plain</p>", "<p>plain</p>"),
        ('<p class="x" style="color:red" onclick="a()">t</p>', "<p>t</p>"),
        ("<script>alert(1)</script><p>after</p>", "<p>after</p>"),
        ("<style>p{}</style>ok", "ok"),
        ('<svg onload="x"><text>in svg</text></svg>ok', "ok"),
        ('<iframe src="https://e.example/">inner</iframe>ok', "ok"),
        ('<form action="/x"><input value="v"><button>b</button></form>ok', "ok"),
        ('<img src="https://e.example/i.png" alt="pic">', ""),
        ('<a href="javascript:alert(1)">x</a>', '<a rel="nofollow ugc noopener">x</a>'),
        ('<a href=" JAVASCRIPT:alert(1)">x</a>', '<a rel="nofollow ugc noopener">x</a>'),
        ('<a href="data:text/html,hi">x</a>', '<a rel="nofollow ugc noopener">x</a>'),
        ('<a href="/relative">x</a>', '<a rel="nofollow ugc noopener">x</a>'),
        (
            '<a href="https://ok.example/" target="_blank" rel="me">x</a>',
            '<a href="https://ok.example/" rel="nofollow ugc noopener">x</a>',
        ),
        (
            '<a href="mailto:a@b.example">m</a>',
            '<a href="mailto:a@b.example" rel="nofollow ugc noopener">m</a>',
        ),
        (
            "<blockquote><ul><li><em>e</em> <b>s</b> <code>c</code></li></ul></blockquote>",
            "<blockquote><ul><li><em>e</em> <b>s</b> <code>c</code></li></ul></blockquote>",
        ),
        ("<h1>Head</h1><table><tr><td>cell</td></tr></table>", "Headcell"),
        ("<!-- comment --><p>x</p>", "<p>x</p>"),
        ("", ""),
    ],
)
def test_sanitize_html(dirty: str, clean: str) -> None:
    assert moderation.sanitize_html(dirty) == clean


def test_relative_links_resolve_against_the_source() -> None:
    assert moderation.sanitize_html('<a href="../x">x</a>', "https://s.example/a/b") == (
        '<a href="https://s.example/x" rel="nofollow ugc noopener">x</a>'
    )


def test_very_long_content_is_cut_and_still_well_formed() -> None:
    html = "<p><em>" + "word " * 10_000 + "</em></p>"
    out = moderation.sanitize_html(html)
    assert len(out) <= sanitize.MAX_CONTENT + 40
    assert out.endswith("</em></p>")


def test_clean_text_and_http_url() -> None:
    assert moderation.clean_text("A\u202eB\u2066C\u200fD\x00E\nF  G") == "A B C D E F G"
    assert moderation.clean_text("x" * 500).endswith("…")
    assert len(moderation.clean_text("x" * 500)) == sanitize.MAX_NAME
    assert moderation.clean_text(None) == ""
    assert moderation.plain_text("<b>bold</b> &amp; <script>x()</script>text") == "bold & text"
    assert moderation.http_url("https://ok.example/a") == "https://ok.example/a"
    for bad in ("javascript:alert(1)", "data:x", "//host/x", "/x", "https://", 'https://a/"x', 5):
        assert moderation.http_url(bad) == ""


# ---- policy and authorship -------------------------------------------------------------------


def test_initial_status_follows_the_policy(ctx_factory: Callable[..., Context]) -> None:
    assert moderation.initial_status(ctx_factory(comments_policy="open"), ALICE) == "approved"
    manual = ctx_factory(comments_policy="manual")
    assert moderation.initial_status(manual, ALICE) == "pending"
    fol = ctx_factory(comments_policy="followers")
    assert moderation.initial_status(fol, ALICE) == "pending"
    assert moderation.initial_status(fol, None) == "pending"
    followers.upsert(
        fol.db, actor=ALICE, inbox=ALICE + "/inbox", shared_inbox=None,
        follow_id=ALICE + "#f", handle="@alice@social.example", state="accepted",
    )  # fmt: skip
    assert moderation.initial_status(fol, ALICE) == "approved"


def test_author_matches_needs_origin_and_handle() -> None:
    def actor(actor_id: str, username: str) -> Any:
        return parse_actor({"id": actor_id, "inbox": actor_id + "/inbox",
                            "preferredUsername": username})  # fmt: skip

    c = comment(1)
    assert moderation.author_matches(c, actor(ALICE, "alice"))
    assert not moderation.author_matches(c, actor("https://social.example/users/bob", "bob"))
    assert not moderation.author_matches(c, actor("https://evil.example/users/alice", "alice"))
    assert not moderation.author_matches(comment(1, protocol="webmention"), actor(ALICE, "alice"))


# ---- listing and decisions -------------------------------------------------------------------


def test_list_comments_shape(ctx: Context) -> None:
    ctx.comments.write("first-article", comment(2, status="pending"))
    entries = moderation.list_comments(ctx)
    assert [e["id"] for e in entries] == ["c0ffee0000000000a001", comment(2).id]
    e = entries[1]
    assert set(e) >= {
        "id", "type", "protocol", "source", "target", "author", "content", "published",
        "updated", "status",
    }  # fmt: skip
    assert e["author"] == {
        "name": "Alice", "url": "https://social.example/@alice", "photo": "",
        "handle": "@alice@social.example",
    }  # fmt: skip
    assert (e["published"], e["updated"], e["status"]) == ("2026-02-02T00:00:00Z", None, "pending")
    assert e["content"] == "<p>comment 2</p>"
    json.dumps(entries)
    assert [e["id"] for e in moderation.list_comments(ctx, pending_only=True)] == [comment(2).id]
    assert moderation.list_comments(CommentStore(ctx.config.content_dir)) == entries


def test_approve_reject_delete(ctx: Context) -> None:
    dirty: list[str] = []
    ctx.mark_dirty = dirty.append
    pending = comment(3, status="pending")
    ctx.comments.write("first-article", pending)
    assert moderation.approve(ctx, pending.id).status == "approved"
    assert ctx.comments.get(pending.id)[1].status == "approved"  # type: ignore[index]
    assert dirty == ["first-article"]
    assert set(salmention.read_queue(ctx.db)) == {"first-article"}
    moderation.reject(ctx, pending.id)
    assert ctx.comments.get(pending.id) is None
    assert moderation.is_rejected(ctx.db, pending.id)
    assert moderation.delete(ctx, "c0ffee0000000000a001") == "reply"
    assert ctx.comments.get("c0ffee0000000000a001") is None
    for action in (moderation.approve, moderation.reject, moderation.delete):
        with pytest.raises(moderation.ModerationError, match="no comment with id"):
            action(ctx, "0123456789abcdef0123")
    with pytest.raises(moderation.ModerationError):
        moderation.approve(ctx, "../../site")


def test_private_mentions_can_only_be_deleted(ctx: Context) -> None:
    with ctx.db.tx() as con:
        con.execute(
            "INSERT INTO notifications(id, type, actor, url, content, received) "
            "VALUES ('abc123', 'mention', ?, 'https://social.example/@alice/9', '<p>hi</p>', 0)",
            (ALICE,),
        )
    (entry,) = [e for e in moderation.list_comments(ctx) if e["status"] == "private"]
    assert entry["author"]["url"] == ALICE and entry["type"] == "mention"
    assert moderation.list_comments(ctx, include_private=False)[-1]["status"] != "private"
    with pytest.raises(moderation.ModerationError, match="private mention"):
        moderation.approve(ctx, "abc123")
    assert moderation.delete(ctx, "abc123") == "private mention"
    assert ctx.db.query("SELECT * FROM notifications") == []


def test_apply_blocks_by_domain_handle_and_actor_url(ctx: Context) -> None:
    ctx.comments.write("first-article", comment(4))
    ctx.comments.write(
        "first-article", comment(5, handle="@bob@other.example", host="other.example")
    )
    ctx.comments.write(
        "first-article", comment(6, handle="@carol@third.example", host="third.example")
    )
    ctx.comments.write("quick-note", comment(7, protocol="webmention", host="web.example"))
    assert moderation.apply_blocks(ctx) == []
    followers.block(ctx.db, "@bob@other.example")
    assert moderation.apply_blocks(ctx) == [comment(5, host="other.example").id]
    carol = "https://third.example/users/carol"
    ctx.actors.store(parse_actor({"id": carol, "inbox": carol + "/inbox",
                                  "preferredUsername": "carol"}))  # fmt: skip
    followers.block(ctx.db, carol)
    followers.block(ctx.db, "web.example")
    removed = moderation.apply_blocks(ctx)
    assert set(removed) == {
        comment(6, host="third.example").id,
        comment(7, protocol="webmention", host="web.example").id,
    }
    remaining = {c.id for _, c in ctx.comments.iter_all()}
    assert remaining == {"c0ffee0000000000a001", comment(4).id}
