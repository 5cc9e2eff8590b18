"""The services one running site shares: settings, store, keys, fetcher, queues.

``Context`` is built once by the daemon (or a CLI command) and passed to the inbox
processor, the conversation handlers and the webmention verifier, so none of them reads
settings or opens connections on its own and tests can swap any part.
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
    enqueue: Callable[[dict[str, Any], list[str]], None] = field(default=lambda a, i: None)
    mark_dirty: Callable[[str], None] = field(default=lambda slug: None)

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
        comments=CommentStore(config.content_dir),
    )
