"""The signed ActivityStreams documents of a build: each post's object and its Create, and
the actor.

Each is signed once per build (``proofs.sign_object``) and kept between the outputs that
embed it (``_remember``: a post's object in its Create, its Create in an outbox page).  A
Create whose key matches the one the last build wrote is read back from that file
(``Documents.previous``) instead of being signed again.  ``bridge.site.plan`` asks for
them; the keys of their outputs are made here too, as they are made of the same parts.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Callable
from typing import Any

from bridge import keys
from bridge.config import SiteConfig
from bridge.site import activities, collections
from bridge.site.ledger import Ledger
from bridge.site.plan_keys import key_of
from bridge.site.posts import Post
from bridge.site.preview import notice


class Documents:
    """The signed documents of one build's federated posts, signed when first asked for."""

    def __init__(
        self,
        config: SiteConfig,
        actor_keys: keys.ActorKeys,
        ledger: Ledger,
        federated: list[Post],
        base_key: str,
    ) -> None:
        self.config = config
        self.keys = actor_keys
        self.ledger = ledger
        self.federated = federated
        self.base_key = base_key
        # Signed documents kept between the outputs that embed them (see ``_remember``).
        self._objects: dict[str, dict[str, Any]] = {}
        self._object_ids: dict[str, str] = {}  # slug -> object id (asked for 6 times a post)
        self._creates: dict[str, dict[str, Any]] = {}
        # (path, key) -> the bytes the last build wrote there with that key, else None
        # (``bridge.site.output.previous_outputs``); nothing by default.
        self.previous: Callable[[str, str], bytes | None] = lambda rel, key: None

    def sign(self, obj: dict[str, Any], created: dt.datetime) -> dict[str, Any]:
        from bridge.site import proofs

        return proofs.sign_object(obj, self.keys.ed25519, self.config.ed25519_key_id, created)

    def object_id(self, post: Post) -> str:
        """The post's current ActivityStreams id (a new generation after a Delete)."""
        found = self._object_ids.get(post.slug)
        if found is None:
            found = self._object_ids[post.slug] = self.ledger.object_id(self.config, post.slug)
        return found

    def object_rel(self, post: Post) -> str:
        return (self.config.local_path(self.object_id(post)) or "").lstrip("/")

    def post_object(self, post: Post) -> dict[str, Any]:
        obj = self._objects.get(post.slug)
        if obj is None:
            object_id = self.object_id(post)
            obj = activities.post_object(self.config, post, object_id=object_id)
            obj = self.sign(obj, post.last_modified)
            _remember(self._objects, post.slug, obj)
        return obj

    def create(self, post: Post) -> dict[str, Any]:
        doc = self._creates.get(post.slug) or self._unchanged_create(post)
        if doc is None:
            doc = self.sign(activities.create(self.config, self.post_object(post)), post.date)
            self._objects.pop(post.slug, None)
            _remember(self._creates, post.slug, doc)
        return doc

    def object_key(self, post: Post) -> str:
        """The key of the post's object and its Create: all either is made from."""
        return key_of(self.base_key, "as", post.digest, self.object_id(post))

    def create_rel(self, post: Post) -> str:
        return self.object_rel(post).removesuffix(".json") + "/create.json"

    def _unchanged_create(self, post: Post) -> dict[str, Any] | None:
        """The post's Create as the last build wrote it, when nothing it is made from has
        changed: an outbox page re-rendered for one edited post then signs that post's
        documents only, not the other nineteen's again."""
        data = self.previous(self.create_rel(post), self.object_key(post))
        if data is None:
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def actor_doc(self) -> dict[str, Any]:
        published = min(
            (p.date for p in self.federated), default=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        )
        doc = activities.actor(
            self.config,
            public_key_pem=self.keys.public_pem,
            ed25519_multibase=self.keys.ed25519_multibase,
            published=published,
            moved_to=self.ledger.moved_to["id"] if self.ledger.moved_to else None,
        )
        if self.config.preview_of:
            doc = _marked_as_preview(self.config, doc)
        return self.sign(doc, published)


def _marked_as_preview(config: SiteConfig, actor: dict[str, Any]) -> dict[str, Any]:
    """The actor of a preview says so in its name and the first line of its summary, where
    a person looking it up from a fediverse server would read it."""
    text = html.escape(notice(config))
    return {
        **actor,
        "name": f"{actor.get('name', '')} (preview)",
        "summary": f"<p><strong>{text}</strong></p>{actor.get('summary', '')}",
    }


def _remember(cache: dict[str, dict[str, Any]], slug: str, doc: dict[str, Any]) -> None:
    """Keep a signed document for the next outputs that embed it (its Create, its outbox
    page), so each is signed once per build; a few pages' worth at most, so memory stays
    flat however many posts there are."""
    if len(cache) >= 4 * collections.OUTBOX_PAGE_SIZE:
        cache.clear()
    cache[slug] = doc
