"""Mentions in posts: resolved over loopback WebFinger at publish time, then linked,
tagged, addressed and delivered (``bridge.federation.mention_resolver``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.federation import mention_resolver
from bridge.site import build as site_mod
from bridge.site import mentions
from tests.federation.test_outbox import FOLLOWER_INBOX, Site
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = pytest.mark.anyio
AP = "application/activity+json"


def serve_account(web: WebServer, user: str) -> str:
    """WebFinger and an actor for ``@user@<loopback host>``; returns the handle."""
    host = web.url("/").split("//", 1)[1].rstrip("/")
    actor_id = web.url(f"/users/{user}")
    jrd = {
        "subject": f"acct:{user}@{host}",
        "links": [{"rel": "self", "type": AP, "href": actor_id}],
    }
    web.route("/.well-known/webfinger", body=json.dumps(jrd), content_type="application/jrd+json")
    actor = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": actor_id,
        "type": "Person",
        "preferredUsername": user,
        "inbox": f"{actor_id}/inbox",
        "url": web.url(f"/@{user}"),
    }
    web.route(f"/users/{user}", body=json.dumps(actor), content_type=AP)
    return f"@{user}@{host}"


@pytest.fixture
async def blog(make_site: Callable[..., Path]) -> AsyncIterator[Site]:
    site = Site(make_site({"allow_private_addresses": True}))
    yield site
    await site.ctx.fetcher.aclose()


def deliveries(site: Site, inbox: str) -> list[dict[str, Any]]:
    rows = site.ctx.db.query(
        "SELECT o.body FROM outgoing o JOIN deliveries d ON d.activity_id = o.id "
        "WHERE d.inbox = ? ORDER BY o.created, o.rowid",
        (inbox,),
    )
    return [json.loads(r["body"]) for r in rows]


async def test_a_mention_is_resolved_linked_tagged_and_delivered(
    blog: Site, web: WebServer
) -> None:
    handle = serve_account(web, "alice")
    actor_id, inbox = web.url("/users/alice"), web.url("/users/alice/inbox")
    blog.write("hello", f"Hello {handle}, and `{handle}` in code.")

    # The build alone never looks anything up: the handle stays text, with a warning.
    first = blog.ctx.config
    result = site_mod.build(first)
    assert any(
        w.startswith("content/posts/hello.md: mention ") and handle in w for w in result.warnings
    )
    assert web.requests_to("/.well-known/webfinger") == []

    changed, warnings = await mention_resolver.resolve(blog.ctx, blog.build())
    assert (changed, warnings) == (1, [])
    assert mentions.read_cache(first)[handle].inbox == inbox

    report = await blog.publish()
    assert report.created == ["hello"]
    obj = json.loads((first.output_dir / "ap/posts/hello.json").read_text("utf-8"))
    assert {"type": "Mention", "href": actor_id, "name": handle} in obj["tag"]
    assert actor_id in obj["cc"]
    assert f'class="u-category h-card mention" href="{web.url("/@alice")}"' in obj["content"]
    assert f"<code>{handle}</code>" in obj["content"]
    page = (first.output_dir / "posts/hello/index.html").read_text("utf-8")
    assert 'class="u-category h-card mention"' in page
    # The Create goes to the followers and to the mentioned account, which does not follow.
    [create] = deliveries(blog, inbox)
    assert create["type"] == "Create" and create["object"]["id"] == obj["id"]
    assert deliveries(blog, FOLLOWER_INBOX)[-1]["id"] == create["id"]

    # A cached handle is not looked up again before it expires.
    assert await mention_resolver.resolve(blog.ctx, blog.build()) == (0, [])
    assert len(web.requests_to("/.well-known/webfinger")) == 1

    # An edit that drops the mention still corrects the copy it got; so does the Delete.
    blog.write("hello", "Hello nobody.")
    await blog.publish()
    blog.remove("hello")
    await blog.publish()
    assert [a["type"] for a in deliveries(blog, inbox)] == ["Create", "Update", "Delete"]


async def test_an_unknown_handle_stays_text_with_one_line_naming_the_file(
    blog: Site, web: WebServer
) -> None:
    host = web.url("/").split("//", 1)[1].rstrip("/")
    web.route("/.well-known/webfinger", status=404, body="no")
    blog.write("lonely", f"Hi @ghost@{host}!")
    changed, warnings = await mention_resolver.resolve(blog.ctx, blog.build())
    assert changed == 0
    [line] = warnings
    assert line.startswith(f"content/posts/lonely.md: mention @ghost@{host} not resolved (")
    assert "HTTP 404" in line and "\n" not in line
    report = await blog.publish()
    obj = json.loads((blog.ctx.config.output_dir / "ap/posts/lonely.json").read_text("utf-8"))
    assert not [t for t in obj["tag"] if t["type"] == "Mention"]
    assert f"Hi @ghost@{host}!" in obj["content"]
    assert report.planned[0].inboxes == [FOLLOWER_INBOX]
