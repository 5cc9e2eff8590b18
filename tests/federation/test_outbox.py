"""Publishing: what ``outbox.publish`` queues for each change of the site.

Each publish is checked against the queue itself (the ``outgoing`` and ``deliveries``
tables): what the report says was sent is exactly what the rows carry.
"""

from __future__ import annotations

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
from bridge.federation import followers, outbox
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
