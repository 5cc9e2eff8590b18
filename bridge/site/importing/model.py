"""What an import reads, whatever the source: a feed, its entries and their comments."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from bridge.errors import FeedError

__all__ = ["FeedEntry", "FeedError", "ImportedComment", "ParsedFeed", "visibility"]

PUBLIC, DRAFT, PRIVATE, SKIP = "public", "draft", "private", "skip"

# WordPress post statuses (wp-includes/post.php, register_post_status): only "publish"
# is public, and only without a password (post_password, "protected" posts).
WP_DRAFT_STATUSES = frozenset({"draft", "pending", "future"})
WP_SKIPPED_STATUSES = frozenset({"trash", "auto-draft", "inherit"})


@dataclass(frozen=True)
class ImportedComment:
    """A comment, pingback or trackback of a WordPress post, without email or IP."""

    key: str  # wp:comment_id
    kind: str  # comment | pingback | trackback
    author: str
    author_url: str
    date: dt.datetime | None
    html: str
    approved: str  # "1" approved, "0" held for moderation, "spam", "trash"
    parent: str = ""  # wp:comment_parent, "" or "0" for a top-level comment


@dataclass(frozen=True)
class FeedEntry:
    """One entry of a feed, normalised: plain-text title, absolute links, UTC dates."""

    key: str  # identity within the feed: guid, else link, else title and date
    title: str | None
    link: str | None
    date: dt.datetime | None
    updated: dt.datetime | None
    tags: tuple[str, ...]
    summary: str | None  # the author's own excerpt as plain text, never a cut of the body
    html: str  # the body, relative links resolved
    status: str = "publish"  # WordPress status; "publish" for plain feeds
    kind: str = "post"  # WordPress post type; "post" for plain feeds
    slug_hint: str = ""  # WordPress post_name
    guid: str = ""
    password: bool = False  # a WordPress "protected" post
    comments: tuple[ImportedComment, ...] = ()
    truncated: bool = False  # the feed carries a summary only; see full_content
    warnings: tuple[str, ...] = ()
    markdown: str | None = None  # a body that is Markdown already (site sources)
    tag_links: tuple[tuple[str, str], ...] = ()  # (tag, its page) where the feed names one


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    link: str
    updated: dt.datetime | None
    wordpress: bool
    entries: tuple[FeedEntry, ...]
    generator: str = ""
    attachments: dict[str, str] = field(default_factory=dict)  # WordPress id -> file URL


def visibility(entry: FeedEntry) -> str:
    """``PUBLIC``, ``DRAFT``, ``PRIVATE`` or ``SKIP``: private stays private, always.

    Only a published entry without a password is public.  An unknown status is treated
    as private, so a status WordPress adds later never leaks.
    """
    if entry.status in WP_SKIPPED_STATUSES:
        return SKIP
    if entry.status == "publish" and not entry.password:
        return PUBLIC
    if entry.status in WP_DRAFT_STATUSES and not entry.password:
        return DRAFT
    return PRIVATE
