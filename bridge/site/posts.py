"""The content model: posts, pages, images, comments and reactions.

Pure values that every converter (HTML pages, ActivityStreams, feeds) goes through.
This module imports nothing from the rest of the package.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def slugify(text: str) -> str:
    """ASCII, lowercase, dash-separated; never contains ``/`` or ``..``."""
    norm = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", norm.lower()).strip("-")
    return slug[:80].rstrip("-") or "post"


def tag_slug(tag: str) -> str:
    """Tags keep their letters in any script (``日本語`` stays ``日本語``), lowercased;
    anything else becomes a dash, so a tag slug never holds ``/`` or ``..``."""
    slug = re.sub(r"[\W_]+", "-", unicodedata.normalize("NFKC", tag).casefold()).strip("-")
    return slug[:80].rstrip("-") or "tag"


@dataclass(frozen=True)
class Image:
    url: str
    alt: str
    media_type: str = "image/jpeg"


@dataclass(frozen=True)
class QuotedPost:
    """The post a post quotes (``quote_of``), as the build knows it from the state
    database (``bridge.site.quote_card``); ``state`` "unknown" when never fetched."""

    url: str  # as written in quote_of
    state: str = "unknown"  # unknown | pending | accepted | rejected | revoked
    object_id: str = ""
    html_url: str = ""
    author_name: str = ""
    author_handle: str = ""
    author_url: str = ""
    avatar: str = ""
    content: str = ""  # sanitised HTML
    published: str = ""  # ISO 8601 as the remote server wrote it
    stamp: str = ""  # the QuoteAuthorization id once accepted


@dataclass(frozen=True)
class Post:
    """One post of the blog, parsed once from ``content/posts/*.md``."""

    source: str  # path relative to the site folder, for error messages
    slug: str
    title: str | None  # None: a short note
    date: dt.datetime
    updated: dt.datetime | None
    tags: tuple[str, ...]
    summary: str | None
    draft: bool
    lang: str
    content_warning: str | None
    images: tuple[Image, ...]
    in_reply_to: str | None
    fediverse_format: str  # "article" | "note"
    body: str  # Markdown source
    html: str  # rendered body
    digest: str  # hash of the source file bytes (cache key and change detection)
    extra: dict[str, str] = field(default_factory=dict)  # e.g. original_url
    pinned: bool = False  # featured on the profile, first on the home page
    # (actor id, @user@host) of accounts mentioned in the text and resolved (site.mentions)
    mentions: tuple[tuple[str, str], ...] = ()
    quote_of: str | None = None  # the URL of a post this one quotes (FEP-044f)
    quote: QuotedPost | None = None  # what the state database knows of it (build time)

    @property
    def is_note(self) -> bool:
        return self.title is None

    @property
    def as_type(self) -> str:
        """ActivityStreams type: notes are always Note; titled posts follow the format."""
        if self.title is None or self.fediverse_format == "note":
            return "Note"
        return "Article"

    @property
    def last_modified(self) -> dt.datetime:
        return self.updated or self.date


@dataclass(frozen=True)
class Page:
    """A standalone page (``content/pages/*.md``), e.g. /about/."""

    source: str
    slug: str
    title: str
    lang: str
    body: str
    html: str
    digest: str
    menu: bool = False  # listed in the site menu
    weight: int = 0  # menu order: lighter first, then by title
    author_card: bool = False  # show the author's card (the About page)


@dataclass(frozen=True)
class MenuItem:
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class CommentAuthor:
    name: str
    url: str
    photo: str = ""
    handle: str = ""


@dataclass(frozen=True, slots=True)
class Comment:
    """A reply, like, repost, bookmark or mention received from the fediverse or a webmention.

    Slotted: a post gone viral keeps thousands of these in the daemon's processes
    (``bridge.site.comment_cache``), and a slot row is about half an instance dict."""

    id: str
    type: str  # reply | like | repost | bookmark | mention
    protocol: str  # activitypub | webmention
    source: str  # remote post URL (or the webmention source)
    target: str  # our post URL
    author: CommentAuthor
    content: str  # sanitised HTML; empty for likes and reposts
    published: dt.datetime
    updated: dt.datetime | None = None
    status: str = "approved"  # approved | pending
    in_reply_to: str = ""  # parent comment source URL when nested, else ""
    object_id: str = ""  # ActivityStreams id of the remote object, when known
    actor_id: str = ""  # the remote actor who wrote it (fediverse); "" in files older than this
    received: dt.datetime | None = field(default=None, compare=False)
    """When this site first stored it (``CommentStore.write``); None in files older than
    this.  Orders replies with the same ``published`` second by arrival (``threads``).
    Not part of equality: the same comment read back from its file is equal to it."""
