"""The services one running site shares: settings, store, keys, fetcher, queues.

``Context`` is built once, by the composition root (``bridge.daemon.services``) for the
daemon and for CLI commands, and passed to the inbox processor, the conversation handlers
and the webmention verifier, so none of them reads settings or opens connections on its
own and tests can swap any part.

Two hooks are given when the context is built and never reassigned by the code:
``on_queued`` (wake the delivery worker: ``wake_delivery()``) and ``mark_dirty(slug)``
(a comment on that post changed: rebuild).  ``enqueue(activity, inboxes)`` stores
delivery rows and wakes the worker.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bridge import __version__
from bridge.config import SiteConfig
from bridge.db import Database
from bridge.federation import delivery
from bridge.federation.actors import Actors
from bridge.federation.fetch import SafeFetcher
from bridge.federation.signatures import HTTPSignatureAuth, SchemeMemory
from bridge.keys import ActorKeys
from bridge.site.comments import CommentStore

_POST_PATH = re.compile(
    r"^/(?:posts/([a-z0-9][a-z0-9-]*)/?|ap/posts/([a-z0-9][a-z0-9-]*)(?:\.json|/[a-z0-9]+\.json))$"
)


@dataclass
class Context:
    config: SiteConfig
    db: Database
    keys: ActorKeys
    fetcher: SafeFetcher
    auth: httpx.Auth
    actors: Actors
    comments: CommentStore
    on_queued: Callable[[], None] = field(default=lambda: None)
    mark_dirty: Callable[[str], None] = field(default=lambda slug: None)
    enqueue: Callable[[dict[str, Any], list[str]], None] = field(init=False)

    def __post_init__(self) -> None:
        self.enqueue = self._enqueue

    def _enqueue(self, activity: dict[str, Any], inboxes: list[str]) -> None:
        """Queue ``activity`` for ``inboxes`` (one row each) and wake the worker."""
        if inboxes:
            delivery.enqueue(self.db, activity, inboxes)
        self.wake_delivery()

    def wake_delivery(self) -> None:
        """Rows were queued: the delivery worker (if one runs here) looks at once."""
        self.on_queued()

    def post_slug(self, url: str) -> str | None:
        """The slug of one of our posts named by its HTML URL or ActivityStreams id."""
        path = self.config.local_path(url.split("#", 1)[0].split("?", 1)[0])
        if path is None:
            return None
        m = _POST_PATH.match(path)
        if not m:
            return None
        slug = m.group(1) or m.group(2)
        out = self.config.output_dir
        if (out / "posts" / slug / "index.html").is_file():
            return slug
        return None


def user_agent(config: SiteConfig) -> str:
    return f"indiebridge/{__version__} (+{config.base_url}/)"


def make_context(
    config: SiteConfig,
    db: Database,
    keys: ActorKeys,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_queued: Callable[[], None] | None = None,
    mark_dirty: Callable[[str], None] | None = None,
    comments: CommentStore | None = None,
) -> Context:
    fetcher = SafeFetcher(
        allow_private=config.allow_private_addresses,
        user_agent=user_agent(config),
        transport=transport,
    )
    auth = HTTPSignatureAuth(
        keys.rsa,
        config.key_id,
        scheme=config.signature_scheme,  # type: ignore[arg-type]
        memory=SchemeMemory(),
    )
    return Context(
        config=config,
        db=db,
        keys=keys,
        fetcher=fetcher,
        auth=auth,
        actors=Actors(db, fetcher, auth),
        comments=comments or CommentStore(config.content_dir),
        on_queued=on_queued or _nothing,
        mark_dirty=mark_dirty or _no_rebuild,
    )


def _nothing() -> None:
    """No delivery worker runs in this process: a later one (or ``publish``) sends."""


def _no_rebuild(slug: str) -> None:
    """No rebuilder runs in this process: the next build shows the change."""
