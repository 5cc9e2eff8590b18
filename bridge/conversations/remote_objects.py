"""Reading a remote ActivityStreams object for a comment: where it comes from, what it
says, who wrote it.

Trust: an embedded object is used only when it is on the actor's origin and attributed
to the actor (``trusted_embedded``); otherwise (and always for a ``forwarded`` activity)
``fetch_object`` fetches it from its own origin with ``ctx.actors.fetch_document``.  A
``FetchError`` propagates so the inbox retries later; 404/410 mean the object is gone.

Content: ``comment_html`` is the sanitised content (``content``, else the first
``contentMap`` value, else the escaped ``name``), preceded by the content warning
(``summary``) and followed by the media as plain links (the theme shows no remote images).
"""

from __future__ import annotations

import html
import logging
from typing import Any

from bridge.conversations import moderation
from bridge.conversations.names import display_name, handle_of, host_label
from bridge.conversations.shapes import RemoteObject, objects, read_object, ref, types
from bridge.errors import FetchError
from bridge.federation.actors import RemoteActor, as_list, same_origin
from bridge.federation.context import Context
from bridge.site.posts import CommentAuthor

__all__ = [
    "actor_or_none",
    "author_of",
    "comment_html",
    "fetch_object",
    "trusted_embedded",
    "url_of",
]

log = logging.getLogger("indiebridge.conversations")

MAX_ATTACHMENTS = 4
MEDIA_TYPES = frozenset({"Image", "Video", "Audio", "Document", "Event"})
"""Objects Mastodon converts to a status (name, summary, then a link to ``url``; its
``app/lib/activitypub/activity/create.rb`` converted types): shown here as comments whose
media are links."""


def _text_value(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _content(obj: dict[str, Any]) -> str:
    """``content``, else the first ``contentMap`` value (raw HTML)."""
    content = obj.get("content")
    if isinstance(content, str) and content.strip():
        return content
    cmap = obj.get("contentMap")
    if isinstance(cmap, dict):
        for value in cmap.values():
            if isinstance(value, str) and value.strip():
                return value
    name = obj.get("name")
    return html.escape(name) if isinstance(name, str) else ""


def url_of(value: Any) -> str:
    """The first http(s) URL of a ``url`` value: a string, a Link, or a list of either
    (an HTML link preferred)."""
    candidates: list[tuple[int, str]] = []
    for item in as_list(value):
        if isinstance(item, str):
            candidates.append((1, item))
        elif isinstance(item, dict):
            href = item.get("href") or item.get("id")
            if isinstance(href, str):
                kind = str(item.get("mediaType") or item.get("mimeType") or "")
                candidates.append((0 if kind == "text/html" else 1, href))
    for _, url in sorted(candidates, key=lambda c: c[0]):
        if moderation.http_url(url):
            return url.strip()
    return ""


def _media_link(url: str, kind: str, label: str) -> str:
    if not url:
        return ""
    text = f"{kind}: {label}" if label else kind
    return f'<a href="{html.escape(url)}">{html.escape(text)}</a>'


def _attachments_html(obj: dict[str, Any]) -> str:
    """Media of a reply as plain links (the theme shows no remote images)."""
    links = []
    for item in objects(obj.get("attachment"))[:MAX_ATTACHMENTS]:
        kinds = types(item)
        if kinds & {"PropertyValue", "Link"}:
            continue
        label = _text_value(item.get("name")) or _text_value(item.get("summary"))
        kind = min(kinds).lower() if kinds else "attachment"
        links.append(_media_link(url_of(item.get("url")), kind, label))
    return f"<p>{' · '.join(x for x in links if x)}</p>" if any(links) else ""


def _own_media_html(obj: dict[str, Any]) -> str:
    """An Image, Video, Audio, Document or Event reply: its own ``url`` entries that are not
    an HTML page, as links, and an Event's start time."""
    kinds = types(obj) & MEDIA_TYPES
    if not kinds:
        return ""
    kind = min(kinds).lower()
    label = _text_value(obj.get("name"))
    links = []
    for item in as_list(obj.get("url")):
        media = str(item.get("mediaType") or "") if isinstance(item, dict) else ""
        if media != "text/html":
            links.append(_media_link(url_of(item), kind, label))
    parts = [f"<p>{' · '.join(x for x in links[:MAX_ATTACHMENTS] if x)}</p>"] if any(links) else []
    start = obj.get("startTime")
    if "Event" in kinds and isinstance(start, str) and start.strip():
        parts.append(f"<p>Starts {html.escape(moderation.plain_text(start, 64))}</p>")
    return "".join(parts)


def comment_html(obj: dict[str, Any]) -> str:
    """The sanitised content of a remote object: content warning, text, media links."""
    parts = []
    summary = obj.get("summary")
    if isinstance(summary, str) and summary.strip():
        warning = moderation.plain_text(summary, 300)
        parts.append(f"<p><strong>Content warning: {html.escape(warning)}</strong></p>")
    parts.append(_content(obj))
    parts.append(_own_media_html(obj))
    parts.append(_attachments_html(obj))
    return moderation.sanitize_html("".join(parts))


def author_of(actor: RemoteActor) -> CommentAuthor:
    """The author shown on a comment: visible name, ``@user@real-host`` handle
    (``names``), http(s) URLs only."""
    handle = handle_of(actor.id, actor.doc.get("preferredUsername"))
    return CommentAuthor(
        name=display_name(actor.name) or handle or host_label(actor.id),
        url=moderation.http_url(actor.url) or moderation.http_url(actor.id),
        photo=moderation.http_url(actor.icon),
        handle=handle,
    )


async def actor_or_none(ctx: Context, actor_id: str) -> RemoteActor | None:
    """The actor from the cache (the inbox just verified its key), else fetched; None when
    it cannot be had (used where a missing actor means 'nothing to do')."""
    cached = ctx.actors.cached(actor_id)
    if cached is not None:
        return cached
    try:
        return await ctx.actors.get(actor_id)
    except FetchError as exc:
        log.info("cannot fetch actor %s: %s", actor_id, exc)
        return None


def trusted_embedded(obj: RemoteObject | None, actor_id: str) -> bool:
    """Whether an embedded object may be used as sent: on the actor's origin and
    attributed to the actor."""
    if obj is None:
        return False
    return (obj.author or actor_id) == actor_id and same_origin(obj.id, actor_id)


async def fetch_object(
    ctx: Context, activity: dict[str, Any], forwarded: bool
) -> RemoteObject | None:
    """The activity's object, fetched from its origin unless the embedded copy is trusted.

    Returns None when it is gone (404/410) or has no id; other FetchErrors propagate.
    """
    actor_id = ref(activity.get("actor")) or ""
    embedded = read_object(activity.get("object"))
    if not forwarded and trusted_embedded(embedded, actor_id):
        return embedded
    obj_id = ref(activity.get("object"))
    if not obj_id or not moderation.http_url(obj_id):
        return None
    try:
        return read_object(await ctx.actors.fetch_document(obj_id))
    except FetchError as exc:
        if exc.status in (404, 410):
            return None
        raise
