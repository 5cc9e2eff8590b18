"""A verified webmention source becomes a comment: what ``mf2`` read, turned into a
``Comment`` for one of our posts.

* An HTML source is read with ``mf2.interpret`` (type, authorship, content) in a worker
  thread, since parsing is CPU work on a stranger's markup; an author page is resolved to
  its representative h-card.  Any other content type is a plain ``mention``.
* Only replies and mentions keep their content (sanitised against the source's final URL);
  a reply's real title is shown above it.
* A reply to one of the post's comments (not to the post itself) is nested under that
  comment (``nest``).
* The author falls back to the source's domain; the status follows ``comments_policy``.
"""

from __future__ import annotations

import datetime as dt
import html
from urllib.parse import urlsplit

import anyio

from bridge.conversations import mf2, moderation
from bridge.conversations.names import display_name
from bridge.federation.context import Context
from bridge.site.posts import Comment, CommentAuthor

__all__ = ["comment_from", "nest"]


async def comment_from(
    ctx: Context, final_url: str, text: str, content_type: str, source: str, slug: str, cid: str
) -> Comment | None:
    """The comment a linking source makes under ``slug``; None when a block covers it."""
    post_url = ctx.config.post_url(slug)
    targets = [post_url, ctx.config.post_ap_id(slug)]
    if content_type in mf2.HTML_TYPES:
        # Parsing is CPU work on a stranger's markup: off the event loop, and bounded in
        # depth, size and CPU time (html_budget).
        found = await anyio.to_thread.run_sync(mf2.interpret, text, final_url, targets)
        author = found.author
        if found.author_page:
            author = await mf2.resolve_author(ctx.fetcher, found.author_page) or author
        kind, in_reply_to = nest(ctx, slug, found.type, found.in_reply_to)
        content = ""
        if kind in ("reply", "mention"):
            body = found.content_html
            if found.name and kind == "reply":
                body = f"<p><strong>{_escape(found.name)}</strong></p>{body}"
            content = moderation.sanitize_html(body, final_url)
        published = moderation.parse_time(found.published)
        updated = moderation.parse_time(found.updated)
    else:
        author, kind, in_reply_to, content = None, "mention", "", ""
        published = updated = None
    domain = urlsplit(source).hostname or source
    name = display_name(author.name if author else "") or domain
    author_url = moderation.absolute(final_url, author.url if author else "")
    photo = moderation.absolute(final_url, author.photo if author else "")
    comment = Comment(
        id=cid,
        type=kind,
        protocol="webmention",
        source=source,
        target=post_url,
        author=CommentAuthor(
            name=name,
            url=author_url or f"{urlsplit(source).scheme}://{urlsplit(source).netloc}/",
            photo=photo,
        ),
        content=content,
        published=published or dt.datetime.now(dt.UTC),
        updated=updated,
        status=moderation.initial_status(ctx, None),
        in_reply_to=in_reply_to,
    )
    if moderation.is_comment_blocked(ctx.db, comment):
        return None
    return comment


def _escape(text: str) -> str:
    return html.escape(display_name(text, 300))


def nest(ctx: Context, slug: str, kind: str, in_reply_to: list[str]) -> tuple[str, str]:
    """(kind, in_reply_to): a reply to one of the post's comments (not to the post itself)
    is nested under it."""
    if kind not in ("reply", "mention") or not in_reply_to:
        return kind, ""
    post = {
        mf2.normalize_url(ctx.config.post_url(slug)),
        mf2.normalize_url(ctx.config.post_ap_id(slug)),
    }
    wanted = {mf2.normalize_url(u) for u in in_reply_to} - post
    if not wanted:
        return kind, ""
    for folder, c in ctx.comments.iter_all():
        if folder != slug or c.type != "reply":
            continue
        for ref in (c.source, c.object_id):
            if ref and mf2.normalize_url(ref) in wanted:
                return "reply", ref
    return kind, ""
