"""The ActivityStreams documents of a build: each post's object and its Create, the actor,
the outbox and the actor's other collections.

The object, the Create and the actor are signed once per build (``proofs.sign_object``),
and an object or a Create is kept between the outputs that embed it (``_remember``: a
post's object in its Create, its Create in an outbox page).  A Create whose key matches
the one the last build wrote is read back from that file (``Documents.previous``) instead
of being signed again.  ``bridge.site.plan`` asks for each post's documents in its post
steps, and for the site-wide ones (``Documents.outputs``) as one step; an outbox page
(``Documents.outbox_page``) comes right after the posts it lists.  Every JSON output is
``json_bytes``.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

from bridge import keys
from bridge.config import SiteConfig
from bridge.site import activities, collections, featured
from bridge.site.ledger import Ledger
from bridge.site.output import Output
from bridge.site.plan_keys import ids, key_of
from bridge.site.posts import Post
from bridge.site.preview import notice

_NO_ITEMS = b'"orderedItems":[]'


def json_bytes(doc: Any) -> bytes:
    """Compact JSON, as Mastodon serves it: ``indent`` would make ``json`` take its pure
    Python encoder, which was a fifth of a cold build (outbox pages embed 20 Creates)."""
    return (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


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
        self._creates: dict[str, bytes] = {}  # slug -> its Create's ``json_bytes``
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

    def create_json(self, post: Post) -> bytes:
        """The post's Create as ``json_bytes`` gives it: when nothing it is made of has
        changed, the bytes the last build wrote (read back, neither parsed nor signed
        again: an outbox page re-rendered for one edited post signs that post's documents
        only, and splices the others' bytes), else signed now."""
        data = self._creates.get(post.slug)
        if data is None:
            data = self.previous(self.create_rel(post), self.object_key(post))
            if data is None:
                create = activities.create(self.config, self.post_object(post))
                data = json_bytes(self.sign(create, post.date))
                self._objects.pop(post.slug, None)
            _remember(self._creates, post.slug, data)
        return data

    def object_key(self, post: Post) -> str:
        """The key of the post's object and its Create: all either is made from."""
        return key_of(self.base_key, "as", post.digest, self.object_id(post))

    def create_rel(self, post: Post) -> str:
        return self.object_rel(post).removesuffix(".json") + "/create.json"

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

    def outbox_page(self, n: int) -> Output:
        """Page ``n`` of the outbox: keyed on the posts it lists, not on the whole site."""
        federated, size = self.federated, collections.OUTBOX_PAGE_SIZE
        chunk = federated[(n - 1) * size : n * size]
        parts = [*ids(chunk), *(self.object_id(p) for p in chunk)]
        key = key_of(self.base_key, "outbox-page", str(n), str(len(federated)), *parts)
        return Output(f"ap/outbox/page-{n}.json", key, lambda: self._outbox_json(n, chunk))

    def _outbox_json(self, n: int, chunk: list[Post]) -> bytes:
        """Page ``n`` as ``json_bytes`` gives it, with its Creates' own bytes spliced in
        as its ``orderedItems``: compact JSON embeds a document as it writes it alone,
        so the bytes are the same as encoding the page whole (tested), without parsing
        and encoding 20 Creates again."""
        counted = collections.CountedCreates(len(self.federated))
        for _, doc in itertools.islice(collections.outbox_pages(self.config, counted), n, None):
            head, found, tail = json_bytes(doc).partition(_NO_ITEMS)
            assert found, "an outbox page has orderedItems"
            items = b",".join(self.create_json(p)[:-1] for p in chunk)
            return b"".join((head, b'"orderedItems":[', items, b"]", tail))
        raise AssertionError(f"outbox has no page {n}")  # pragma: no cover

    def outputs(self, followers_count: int) -> Iterator[Output]:
        """The site's ActivityPub documents: the actor, its collections, the outbox."""
        config, federated = self.config, self.federated
        # The actor shows the date of the first federated post, nothing else of them.
        first = min((p.date for p in federated), default=None)
        yield Output(
            "ap/actor.json",
            key_of(self.base_key, "actor", first.isoformat() if first else ""),
            lambda: json_bytes(self.actor_doc()),
        )
        pins = featured.pinned(federated)
        yield Output(
            "ap/featured.json",
            key_of(self.base_key, "featured", *ids(pins)),
            lambda: json_bytes(featured.collection(config, [self.post_object(p) for p in pins])),
        )
        if config.featured_tags:  # the most used tags (toot:featuredTags)
            yield Output(
                "ap/featured-tags.json",
                key_of(self.base_key, "featured-tags", *(p.digest for p in federated)),
                lambda: json_bytes(featured.tags_collection(config, federated)),
            )
        if not federated:
            yield self.outbox_page(1)
        yield Output(
            "ap/outbox.json",
            key_of(self.base_key, "outbox", str(len(federated))),
            lambda: json_bytes(self._outbox_collection()),
        )
        yield Output(
            "ap/followers.json",
            key_of(self.base_key, str(followers_count)),
            lambda: json_bytes(collections.followers_collection(config, followers_count)),
        )
        yield Output(
            collections.SHARED_EMPTY,
            key_of(self.base_key, "empty"),
            lambda: json_bytes(collections.shared_empty(config)),
        )
        yield Output(
            "ap/following.json",
            key_of(self.base_key, "following"),
            lambda: json_bytes(collections.ordered_collection(config.following_url, [])),
        )

    def _outbox_collection(self) -> dict[str, Any]:
        counted = collections.CountedCreates(len(self.federated))
        return next(iter(collections.outbox_pages(self.config, counted)))[1]


def _marked_as_preview(config: SiteConfig, actor: dict[str, Any]) -> dict[str, Any]:
    """The actor of a preview says so in its name and the first line of its summary, where
    a person looking it up from a fediverse server would read it."""
    text = html.escape(notice(config))
    return {
        **actor,
        "name": f"{actor.get('name', '')} (preview)",
        "summary": f"<p><strong>{text}</strong></p>{actor.get('summary', '')}",
    }


def _remember(cache: dict[str, Any], slug: str, doc: Any) -> None:
    """Keep a signed document for the next outputs that embed it (its Create, its outbox
    page), so each is signed once per build; a few pages' worth at most, so memory stays
    flat however many posts there are."""
    if len(cache) >= 4 * collections.OUTBOX_PAGE_SIZE:
        cache.clear()
    cache[slug] = doc
