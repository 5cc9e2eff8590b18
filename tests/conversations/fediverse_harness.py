"""The fediverse conversation harness: a built test site, a mock fediverse, the hooks.

A built copy of the test site (``make_site``) with ``allow_private_addresses`` on and a
fetcher on ``httpx.MockTransport`` serving the remote documents a test registers.  Actors
are put in the cache, as the inbox's signature check would have done.  The fixtures
``harness_factory`` and ``h`` (in this folder's ``conftest.py``) build one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from bridge.conversations import fediverse as conversations
from bridge.federation.actors import parse_actor
from bridge.federation.context import Context
from bridge.site import build as site_mod
from bridge.site.comments import comment_id
from bridge.site.posts import Comment

FIXTURES = Path(__file__).resolve().parents[3] / "shared/fixtures/activities"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
BASE = "https://blog.example"
POST = f"{BASE}/posts/first-article/"
POST_ID = f"{BASE}/ap/posts/first-article.json"
NOTE_POST = f"{BASE}/posts/quick-note/"
ALICE = "https://social.example/users/alice"
BOB = "https://other.example/users/bob"
MALLORY = "https://social.example/users/mallory"


class Body(httpx.AsyncByteStream):
    """A streamed body: ``SafeFetcher`` reads raw chunks, which a pre-read
    ``httpx.Response(json=...)`` no longer has."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


class Remote:
    """Documents served by the mock transport, by URL; everything else is 404."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[int, Any]] = {}
        self.requests: list[str] = []

    def serve(self, url: str, doc: Any, status: int = 200) -> None:
        self.docs[url] = (status, doc)

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(url)
        status, doc = self.docs.get(url, (404, {"error": "not found"}))
        return httpx.Response(
            status,
            headers={"Content-Type": "application/activity+json"},
            stream=Body(json.dumps(doc).encode()),
        )


class Harness:
    def __init__(self, ctx: Context, remote: Remote, site: Path) -> None:
        self.ctx = ctx
        self.remote = remote
        self.site = site
        self.dirty: list[str] = []
        ctx.mark_dirty = self.dirty.append

    def actor(self, actor_id: str, name: str = "", username: str = "", **extra: Any) -> None:
        username = username or actor_id.rstrip("/").rsplit("/", 1)[-1]
        host = actor_id.split("/")[2]
        doc = {
            "id": actor_id,
            "type": "Person",
            "inbox": actor_id + "/inbox",
            "preferredUsername": username,
            "name": name or username.title(),
            "url": f"https://{host}/@{username}",
            "icon": {"type": "Image", "url": f"https://{host}/avatars/{username}.png"},
            **extra,
        }
        self.ctx.actors.store(parse_actor(doc))
        self.remote.serve(actor_id, doc)

    async def send(self, activity: dict[str, Any], forwarded: bool = False) -> None:
        hook = conversations.HOOKS.get(str(activity.get("type")))
        if hook is not None:
            await hook(self.ctx, activity, forwarded)

    def comments(self) -> dict[str, Comment]:
        return {c.id: c for _, c in self.ctx.comments.iter_all()}

    def comment(self, object_id: str) -> Comment | None:
        found = self.ctx.comments.get(comment_id("activitypub", object_id))
        return found[1] if found else None

    def build(self) -> str:
        site_mod.build(self.ctx.config)
        return (self.ctx.config.output_dir / "posts/first-article/index.html").read_text("utf-8")


def note(
    note_id: str,
    actor: str = ALICE,
    *,
    in_reply_to: str | None = POST_ID,
    content: str = "<p>Great post!</p>",
    to: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": note_id,
        "type": "Note",
        "attributedTo": actor,
        "inReplyTo": in_reply_to,
        "content": content,
        "url": note_id.replace("/statuses/", "/@") if "/statuses/" in note_id else note_id,
        "published": "2026-02-01T10:00:00Z",
        "to": to if to is not None else [PUBLIC],
        "cc": [actor + "/followers"],
        **extra,
    }


def create(obj: dict[str, Any], actor: str = ALICE, **extra: Any) -> dict[str, Any]:
    return {
        "id": obj["id"] + "/activity",
        "type": "Create",
        "actor": actor,
        "object": obj,
        "to": obj.get("to"),
        **extra,
    }
