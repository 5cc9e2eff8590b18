"""Publishing: what ``outbox.publish`` queues for each change of the site.

Each publish is checked against the queue itself (the ``outgoing`` and ``deliveries``
tables): what the report says was sent is exactly what the rows carry.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge import config as config_mod
from bridge import keys
from bridge.db import Database
from bridge.errors import PublishError
from bridge.federation import followers, outbox, published
from bridge.federation.context import make_context
from bridge.site import build as site_mod
from bridge.site.posts import Post

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]
FOLLOWER_INBOX = "https://peer.example/inbox"


class Site:
    """A test site with one follower: write posts, publish, read the queue."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.posts_dir = folder / "content" / "posts"
        config = config_mod.load(folder)
        # Every post of the test data is older than this: only what a test writes federates.
        self.ctx = make_context(config, Database(config.db_path), keys.load(config.state_dir))
        self.ctx.db.set_meta("federate_since", "2026-02-01T00:00:00+00:00")
        followers.upsert(
            self.ctx.db,
            actor="https://peer.example/users/alice",
            inbox="https://peer.example/users/alice/inbox",
            shared_inbox=FOLLOWER_INBOX,
            follow_id="https://peer.example/follows/1",
            handle="@alice@peer.example",
            state="accepted",
        )
        # The follower has the current profile: only post activities are queued below.
        self.build()
        actor = json.loads((config.output_dir / "ap/actor.json").read_text(encoding="utf-8"))
        self.ctx.db.set_meta("actor_digest", outbox.object_digest(actor))

    def write(self, slug: str, body: str, *, tags: str = "", date: str = "2026-03-01") -> None:
        front = f"---\ntitle: {slug.title()}\ndate: {date}\n"
        if tags:
            front += f"tags: [{tags}]\n"
        (self.posts_dir / f"{slug}.md").write_text(front + "---\n" + body + "\n", "utf-8")

    def remove(self, slug: str) -> None:
        (self.posts_dir / f"{slug}.md").unlink()

    def build(self) -> list[Post]:
        return list(site_mod.build(self.ctx.config).built_posts)

    async def publish(self, **kwargs: Any) -> outbox.PublishReport:
        return await outbox.publish(self.ctx, self.build(), **kwargs)

    def queued(self) -> list[dict[str, Any]]:
        """Every queued activity body, oldest first."""
        rows = self.ctx.db.query(
            "SELECT o.body FROM outgoing o JOIN deliveries d ON d.activity_id = o.id "
            "WHERE d.inbox = ? ORDER BY o.created, o.rowid",
            (FOLLOWER_INBOX,),
        )
        return [json.loads(r["body"]) for r in rows]


@pytest.fixture
async def blog(make_site: Callable[..., Path]) -> AsyncIterator[Site]:
    site = Site(make_site())
    yield site
    await site.ctx.fetcher.aclose()


def test_outbox_does_not_import_conversations() -> None:
    """Layers: federation never imports conversations (webmentions are passed in)."""
    code = (
        "import sys, bridge.federation.outbox\n"
        "bad = [m for m in sys.modules if m.startswith('bridge.conversations')]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


class RecordingMentions:
    """An ``outbox.Webmentions`` that records what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, list[str]]] = []

    def links(self, html: str, base: str) -> set[str]:
        return {"https://elsewhere.example/page"} if "elsewhere" in html else set()

    async def send(self, source: str, html: str, old_links: list[str]) -> list[Any]:
        self.sent.append((source, html, old_links))
        return []


async def test_webmentions_are_sent_through_the_callable(blog: Site) -> None:
    blog.write("linking", "See [there](https://elsewhere.example/page).")
    mentions = RecordingMentions()
    await blog.publish(webmentions=mentions)
    sources = [s for s, _, _ in mentions.sent]
    assert sources == [blog.ctx.config.post_url("linking")]
    # Without a sender nothing is sent, and the publish still queues the Create.
    blog.write("second", "No links.")
    report = await blog.publish()
    assert report.created == ["second"] and len(mentions.sent) == 1


NOON = dt.datetime(2026, 3, 2, 12, 0, 0, tzinfo=dt.UTC)


def by_type(activities: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [a for a in activities if a["type"] == kind]


async def test_several_edits_in_the_same_second_each_arrive(blog: Site) -> None:
    blog.write("edited", "Version 0.")
    assert (await blog.publish(moment=NOON)).created == ["edited"]
    for n in range(1, 4):
        blog.write("edited", f"Version {n}.")
        report = await blog.publish(moment=NOON)
        assert report.updated == ["edited"], report.summary()
        assert report.summary().startswith("0 new, 1 updated, 0 deleted")
        assert "1 deliveries queued" in report.summary()
        # What the report counts is exactly what the queue carries: the newest content.
        last = blog.queued()[-1]
        assert last["type"] == "Update" and f"Version {n}." in last["object"]["content"]
    updates = by_type(blog.queued(), "Update")
    assert len(updates) == 3
    assert len({u["id"] for u in updates}) == 3
    # Each later edit carries a later `updated`, so receivers keep the last one whatever
    # order the deliveries arrive in (Mastodon ignores an edit older than the one it has).
    stamps = [u["object"]["updated"] for u in updates]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3


async def test_the_same_content_sent_again_gets_a_new_id(blog: Site) -> None:
    blog.write("flip", "A.")
    await blog.publish(moment=NOON)
    for body in ("B.", "A.", "B.", "A."):
        blog.write("flip", body)
        await blog.publish(moment=NOON)
    ids = [a["id"] for a in blog.queued()]
    assert len(ids) == 5 and len(set(ids)) == 5


async def test_update_ids_are_derived_from_content(blog: Site) -> None:
    from bridge.site import activities

    obj = {"id": "https://blog.example/ap/posts/x.json", "to": [], "cc": [], "content": "a"}
    config = blog.ctx.config
    one = activities.update(config, obj, NOON)
    assert activities.update(config, obj, NOON)["id"] == one["id"]  # same content, same id
    assert activities.update(config, {**obj, "content": "b"}, NOON)["id"] != one["id"]
    assert activities.update(config, obj, NOON, previous=one["id"])["id"] != one["id"]
    moved = activities.move(config, "https://new.example/users/me", NOON)
    assert activities.move(config, "https://other.example/users/me", NOON)["id"] != moved["id"]
    gone = activities.delete(config, obj["id"], NOON)
    assert activities.delete(config, obj["id"] + "x", NOON)["id"] != gone["id"]


async def test_nothing_to_send_is_said(blog: Site) -> None:
    blog.write("once", "Once.")
    await blog.publish()
    report = await blog.publish()
    assert report.summary().startswith("Nothing to send: no post or profile changed")
    assert report.queued == 0


async def test_without_followers_publish_says_nothing_is_delivered(blog: Site) -> None:
    followers.remove(blog.ctx.db, "https://peer.example/users/alice")
    blog.write("alone", "Nobody reads this yet.")
    report = await blog.publish()
    assert report.created == ["alone"]
    assert report.summary().endswith("; no followers yet: nothing to deliver.")


async def test_dry_run_queues_and_records_nothing(blog: Site) -> None:
    blog.write("planned", "Not yet.")
    report = await blog.publish(dry_run=True)
    assert report.created == ["planned"] and report.queued == 1
    assert [p.describe() for p in report.planned] == [
        f"Create {blog.ctx.config.post_ap_id('planned')} -> 1 inbox"
    ]
    assert report.summary().startswith("Dry run: 1 new, 0 updated, 0 deleted")
    assert blog.queued() == []
    assert blog.ctx.db.query("SELECT * FROM published") == []
    # The real publish then sends it.
    assert (await blog.publish()).created == ["planned"]
    assert [a["type"] for a in blog.queued()] == ["Create"]


async def test_a_queued_activity_is_never_replaced(blog: Site) -> None:
    blog.write("guarded", "One.")
    await blog.publish(moment=NOON)
    blog.write("guarded", "Two.")
    [planned] = (await blog.publish(moment=NOON, dry_run=True)).planned
    with blog.ctx.db.tx() as con:
        con.execute(
            "INSERT INTO outgoing(id, type, body, created) VALUES (?, 'Update', '{}', 0)",
            (planned.activity["id"],),
        )
    with pytest.raises(PublishError, match="already queued with other content"):
        await blog.publish(moment=NOON)


async def test_a_recreated_post_gets_a_new_id_and_the_old_one_stays_gone(blog: Site) -> None:
    config = blog.ctx.config
    first = config.post_ap_id("again")
    blog.write("again", "First life.")
    await blog.publish(moment=NOON)
    blog.remove("again")
    report = await blog.publish(moment=NOON)
    assert report.deleted == ["again"]
    assert by_type(blog.queued(), "Delete")[0]["object"]["id"] == first

    blog.write("again", "Second life.", date="2026-01-05")  # older than federate_since too
    blog.build()
    second = f"{config.base_url}/ap/posts/again/g2.json"
    out = config.output_dir
    assert json.loads((out / "ap/posts/again/g2.json").read_text())["id"] == second
    assert not (out / "ap/posts/again.json").exists()
    page = (out / "posts/again/index.html").read_text()
    assert f'<link rel="alternate" type="application/activity+json" href="{second}">' in page
    assert outbox.live_object_path(blog.ctx, "again") == "ap/posts/again/g2.json"

    report = await blog.publish(moment=NOON)
    assert report.created == ["again"], report.summary()
    create = by_type(blog.queued(), "Create")[-1]
    assert create["object"]["id"] == second
    assert create["id"] == f"{config.base_url}/ap/posts/again/g2/create.json"
    live = {"again"}
    tomb = published.gone(config, blog.ctx.db, first, live)
    assert tomb is not None and isinstance(tomb.body, dict)
    assert tomb.body["type"] == "Tombstone" and tomb.body["id"] == first
    assert published.gone(config, blog.ctx.db, second, live) is None
    assert published.gone(config, blog.ctx.db, config.post_url("again"), live) is None

    # Once more: a third generation; both earlier ids stay gone.
    blog.remove("again")
    await blog.publish(moment=NOON)
    html_gone = published.gone(config, blog.ctx.db, config.post_url("again"), set())
    assert html_gone is not None and html_gone.media_type.startswith("text/html")
    blog.write("again", "Third life.")
    blog.build()
    assert (await blog.publish(moment=NOON)).created == ["again"]
    third = by_type(blog.queued(), "Create")[-1]["object"]["id"]
    assert third == f"{config.base_url}/ap/posts/again/g3.json"
    for old in (first, second):
        assert published.gone(config, blog.ctx.db, old, live) is not None


def test_publish_dry_run_command_prints_and_sends_nothing(make_site: Callable[..., Path]) -> None:
    from click.testing import CliRunner

    from bridge.cli import main

    folder = make_site()
    site = Site(folder)
    site.write("planned", "Not yet.")
    result = CliRunner().invoke(main, ["publish", "--dry-run", "--site", str(folder)])
    assert result.exit_code == 0, result.output
    object_id = site.ctx.config.post_ap_id("planned")
    assert f"would send Create {object_id} -> 1 inbox\n" in result.output
    assert "Dry run: 1 new, 0 updated, 0 deleted" in result.output
    assert "Delivered" not in result.output
    assert site.queued() == []
    assert site.ctx.db.query("SELECT * FROM published") == []


async def test_a_profile_change_sends_update_of_the_actor(blog: Site) -> None:
    toml = blog.folder / "site.toml"
    for n in (1, 2):
        toml.write_text(
            toml.read_text()
            .replace("Tess Tester", f"Tess {n}")
            .replace(f"Tess {n - 1}", f"Tess {n}")
        )
        blog.ctx.config = config_mod.load(blog.folder)
        report = await blog.publish(moment=NOON)
        assert report.profile and "profile updated" in report.summary()
        update = blog.queued()[-1]
        assert update["type"] == "Update" and update["object"]["type"] == "Person"
        assert update["object"]["name"] == f"Tess {n}"
    ids = [a["id"] for a in blog.queued()]
    assert len(ids) == 2 and len(set(ids)) == 2


async def test_unchanged_object_files_are_not_read_again(
    blog: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    blog.write("steady", "Written once.")
    blog.write("edited", "First words.")
    await blog.publish()
    read: list[str] = []
    real = outbox._load

    def counting(ctx: Any, rel: str) -> dict[str, Any]:
        read.append(rel)
        return real(ctx, rel)

    monkeypatch.setattr(outbox, "_load", counting)
    report = await blog.publish()
    assert not (report.created or report.updated)
    assert read == ["ap/actor.json"]  # only the profile; no post object was read

    blog.write("edited", "Second words.")
    read.clear()
    report = await blog.publish()
    assert report.updated == ["edited"]
    assert [r for r in read if "/posts/" in r] == [outbox.live_object_path(blog.ctx, "edited")]

    # The same bytes in a new file (restored from a backup, say): read once, nothing
    # sent, and remembered so that the next publish reads nothing again.
    path = blog.ctx.config.output_dir / outbox.live_object_path(blog.ctx, "steady")
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)
    read.clear()
    report = await blog.publish()
    assert not (report.created or report.updated)
    assert [r for r in read if "/posts/" in r] == [outbox.live_object_path(blog.ctx, "steady")]
    read.clear()
    await blog.publish()
    assert [r for r in read if "/posts/" in r] == []


async def test_a_missing_object_file_is_still_named(blog: Site) -> None:
    blog.write("there", "Built and published.")
    await blog.publish()
    rel = outbox.live_object_path(blog.ctx, "there")
    posts = blog.build()
    (blog.ctx.config.output_dir / rel).unlink()
    with pytest.raises(PublishError, match="missing; run 'indiebridge build'"):
        await outbox.publish(blog.ctx, posts)
