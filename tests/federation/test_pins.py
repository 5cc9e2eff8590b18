"""Publishing pins: ``Add``/``Remove`` with ``target`` = our ``featured`` collection go to
followers when pins change (Mastodon's ``ActivityPub::Activity::Add``/``Remove`` accept
only that target), signed, and after the ``Create`` of a post pinned as it is published."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge import config as config_mod
from bridge import keys
from bridge.db import Database
from bridge.federation import followers, outbox, pins
from bridge.federation.context import Context, make_context
from bridge.site import build as site_mod
from bridge.site import content, proofs

pytestmark = pytest.mark.anyio

FOLLOWER_INBOX = "https://peer.example/inbox"
FIRST = "https://blog.example/ap/posts/first-article.json"
NOTE = "https://blog.example/ap/posts/quick-note.json"


@pytest.fixture
def site(make_site: Callable[..., Path]) -> Path:
    """The test site with every post federated (published after ``federate_since``)."""
    return make_site({"federate_since": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)})


@pytest.fixture
async def ctx(site: Path) -> AsyncIterator[Context]:
    config = config_mod.load(site)
    context = make_context(config, Database(config.db_path), keys.load(config.state_dir))
    followers.upsert(
        context.db,
        actor="https://peer.example/users/alice",
        inbox="https://peer.example/users/alice/inbox",
        shared_inbox=FOLLOWER_INBOX,
        follow_id="https://peer.example/follows/1",
        handle="@alice@peer.example",
        state="accepted",
    )
    yield context
    await context.fetcher.aclose()
    context.db.close()


def set_pinned(site: Path, name: str, pinned: bool) -> None:
    path = site / "content/posts" / name
    text = path.read_text("utf-8").replace("pinned: true\n", "")
    if pinned:
        text = text.replace("---\n", "---\npinned: true\n", 1)
    path.write_text(text, "utf-8")


async def publish(ctx: Context) -> outbox.PublishReport:
    site_mod.build(ctx.config)
    posts, _ = content.load(ctx.config)
    return await outbox.publish(ctx, posts)


def queued(ctx: Context) -> list[dict[str, Any]]:
    rows = ctx.db.query(
        "SELECT o.body FROM outgoing o JOIN deliveries d ON d.activity_id = o.id "
        "WHERE d.inbox = ? ORDER BY d.id",
        (FOLLOWER_INBOX,),
    )
    return [json.loads(r["body"]) for r in rows]


def pin_activities(ctx: Context) -> list[tuple[str, str]]:
    return [(a["type"], a["object"]) for a in queued(ctx) if a["type"] in ("Add", "Remove")]


async def test_first_publish_records_pins_without_sending(site: Path, ctx: Context) -> None:
    set_pinned(site, "2026-01-10-first-article.md", True)
    await publish(ctx)
    assert pin_activities(ctx) == []
    assert json.loads(ctx.db.get_meta(pins.META_KEY) or "[]") == [FIRST]


async def test_pin_and_unpin_send_add_and_remove(site: Path, ctx: Context) -> None:
    await publish(ctx)
    set_pinned(site, "2026-01-10-first-article.md", True)
    report = await publish(ctx)
    assert report.queued >= 1
    assert pin_activities(ctx) == [("Add", FIRST)]
    add = next(a for a in queued(ctx) if a["type"] == "Add")
    assert add["target"] == ctx.config.featured_url
    assert add["actor"] == ctx.config.actor_id
    proofs.verify_object(add, ctx.keys.ed25519.public_key())

    # Publishing again without a change sends nothing more.
    await publish(ctx)
    assert pin_activities(ctx) == [("Add", FIRST)]

    # Swap the pin: the unpin goes out, then the new pin.
    set_pinned(site, "2026-01-10-first-article.md", False)
    set_pinned(site, "2026-01-12-quick-note.md", True)
    await publish(ctx)
    assert pin_activities(ctx) == [("Add", FIRST), ("Remove", FIRST), ("Add", NOTE)]


async def test_a_deleted_pinned_post_gets_a_delete_not_a_remove(site: Path, ctx: Context) -> None:
    set_pinned(site, "2026-01-12-quick-note.md", True)
    await publish(ctx)
    (site / "content/posts/2026-01-12-quick-note.md").unlink()
    await publish(ctx)
    kinds = [(a["type"], a["object"]) for a in queued(ctx) if a["type"] != "Create"]
    assert ("Remove", NOTE) not in kinds
    assert ("Delete", {"id": NOTE, "type": "Tombstone"}) in kinds
    assert json.loads(ctx.db.get_meta(pins.META_KEY) or "[]") == []


async def test_a_post_pinned_when_first_published_is_created_before_it_is_added(
    site: Path, ctx: Context
) -> None:
    await publish(ctx)
    (site / "content/posts/2026-09-01-new.md").write_text(
        "---\ndate: 2099-01-01T00:00:00Z\npinned: true\n---\nFresh and pinned.\n", "utf-8"
    )
    await publish(ctx)
    kinds = [(a["type"], a.get("object", {})) for a in queued(ctx)]
    new_id = "https://blog.example/ap/posts/new.json"
    create_at = next(i for i, (k, o) in enumerate(kinds) if k == "Create" and o.get("id") == new_id)
    add_at = next(i for i, (k, o) in enumerate(kinds) if k == "Add" and o == new_id)
    assert create_at < add_at


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ([], ["a"], (["a"], [])),
        (["a", "b"], ["b"], ([], ["a"])),
        (["a"], ["c", "a"], (["c"], [])),
        (["a"], ["a"], ([], [])),
    ],
)
def test_changes(before: list[str], after: list[str], expected: Any) -> None:
    assert pins.changes(before, after) == expected


def test_pinned_ids_without_a_built_collection_is_empty(tmp_path: Path) -> None:
    class _Cfg:
        output_dir = tmp_path

    class _Ctx:
        config = _Cfg()

    assert pins.pinned_ids(_Ctx()) == []  # type: ignore[arg-type]
