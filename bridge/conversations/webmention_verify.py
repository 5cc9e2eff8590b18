"""Verifying a received webmention (W3C Webmention, sections 3.2.1 and 3.2.2).

``validate`` holds the request rules both the endpoint and the verifier apply: ``source``
and ``target`` present, http(s), at most ``MAX_URL`` characters, different, the source not
a page of this site, and the target one of our posts (fragment ignored).

``verify`` fetches the source with ``ctx.fetcher`` (size, time and redirect limits; private
addresses refused unless ``allow_private_addresses``).  410 or 404, or a source that no
longer links to the target, removes the comment for that (source, target).  A linking
source becomes a comment (``webmention_comment.comment_from``) with protocol
``webmention`` and id ``comment_id("webmention", source + " " + post URL)``, so a re-sent
webmention updates it.  A new source that repeats a comment already shown from the same
page under another query string (same scheme, host and path, same author, kind and content:
``/p?1``, ``/p?2``... of a page that ignores its query) is refused; distinct pages that
differ only by query (``index.php?p=1``, ``?p=2``) differ in content and are kept.
Under ``comments_policy = "manual"`` an edited source's comment is held again.  Timeouts,
connection errors, 5xx, 408 and 429 raise ``SourceRetryLater``; the queue in
``webmentions`` retries them on its schedule.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from urllib.parse import urldefrag, urlsplit

from bridge.conversations import moderation
from bridge.conversations.salmention import note_change
from bridge.conversations.webmention_client import links_to
from bridge.conversations.webmention_comment import comment_from
from bridge.conversations.webmention_outbox import is_own
from bridge.errors import BlockedAddressError, FetchError, SourceRetryLater
from bridge.federation.context import Context
from bridge.site.comments import comment_id
from bridge.site.posts import Comment

__all__ = ["validate", "verify"]

MAX_URL = 2048
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
SOURCE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, application/json;q=0.5, text/plain;q=0.3"


def _is_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def validate(ctx: Context, source: str | None, target: str | None) -> tuple[str | None, str]:
    """(reason for a 400 or None, the post slug).  The checks of ``receive``."""
    if not source:
        return "missing 'source' parameter", ""
    if not target:
        return "missing 'target' parameter", ""
    if len(source) > MAX_URL or len(target) > MAX_URL:
        return f"source and target must be at most {MAX_URL} characters", ""
    if not _is_http(source):
        return "source must be an http or https URL", ""
    if not _is_http(target):
        return "target must be an http or https URL", ""
    if urldefrag(source).url == urldefrag(target).url:
        return "source and target must be different URLs", ""
    if is_own(ctx, source):
        return "source is a page of this site; only other sites can mention its posts", ""
    slug = ctx.post_slug(target)
    if slug is None:
        return "target is not a post of this site, so it does not accept webmentions", ""
    return None, slug


def _page_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{(parts.netloc or '').lower()}{parts.path or '/'}"


def _query_variant_of(ctx: Context, slug: str, comment: Comment) -> str | None:
    """The source of a comment under the post that this one repeats from the same page with
    another query string (same scheme, host and path, same author, kind and content)."""
    page = _page_of(comment.source)
    for folder, other in ctx.comments.iter_all():
        if (
            folder == slug
            and other.protocol == "webmention"
            and other.source != comment.source
            and _page_of(other.source) == page
            and (other.type, other.author, other.content)
            == (comment.type, comment.author, comment.content)
        ):
            return other.source
    return None


def _remove(ctx: Context, cid: str) -> bool:
    found = ctx.comments.get(cid)
    if found is None:
        return False
    ctx.comments.delete(cid)
    note_change(ctx, found[0], found[1])
    return True


async def verify(ctx: Context, source: str, target: str) -> str:
    """Fetch ``source`` and store, update or remove the comment for (source, target).

    Returns "" when a comment was stored, else why not (kept in ``webmentions_in.error``).

    Raises:
        SourceRetryLater: a transient failure (timeout, connection error, 5xx, 408, 429).
    """
    reason, slug = validate(ctx, source, target)
    if reason is not None:
        return reason
    post_url = ctx.config.post_url(slug)
    cid = comment_id("webmention", f"{source} {post_url}")
    try:
        page = await ctx.fetcher.get(source, accept=SOURCE_ACCEPT)
    except BlockedAddressError as exc:
        return f"source refused: {exc}"
    except FetchError as exc:
        if exc.status is not None:
            return f"source unusable: {exc}"  # e.g. too large: retrying will not help
        raise SourceRetryLater(str(exc)) from None
    if page.status in (404, 410):
        _remove(ctx, cid)
        return f"source answered HTTP {page.status}: mention removed"
    if page.status in TRANSIENT_STATUSES:
        raise SourceRetryLater(f"source answered HTTP {page.status}")
    if not page.ok:
        return f"source answered HTTP {page.status}"
    if not links_to(page.text, page.content_type, target, page.url):
        _remove(ctx, cid)
        return "source does not link to target"
    if moderation.is_rejected(ctx.db, cid):
        return "rejected by the owner"
    comment = await comment_from(ctx, page.url, page.text, page.content_type, source, slug, cid)
    if comment is None:
        return "source is blocked"
    existing = ctx.comments.get(cid)
    twin = _query_variant_of(ctx, slug, comment) if existing is None else None
    if twin is not None:
        return f"source is a query-string variant of {twin}, already shown"
    if existing is not None:
        old = existing[1]
        changed = (old.content, old.type, old.author) != (
            comment.content,
            comment.type,
            comment.author,
        )
        comment = replace(
            comment,
            published=old.published,
            status=moderation.status_after_edit(ctx, old) if changed else old.status,
            updated=comment.updated or (dt.datetime.now(dt.UTC) if changed else old.updated),
        )
        if comment == old:
            return ""
    ctx.comments.write(slug, comment)
    shown = existing[1] if existing is not None and existing[1].status == "approved" else comment
    note_change(ctx, slug, shown)
    return ""
