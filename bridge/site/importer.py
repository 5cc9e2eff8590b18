"""``indiebridge import``: bring an existing blog in from its feed or WordPress export.

``import_feed(config, source, ...)`` reads an RSS 1.0/2.0 or Atom feed (``importing.feeds``),
a WordPress export (``importing.wxr``) or a Hugo or Jekyll site folder's Markdown sources
(``importing.site_folders``) and writes one Markdown file per entry:

* posts go to ``content/posts/<date>-<slug>.md`` with ``title``, ``date``, ``updated``
  (when later), ``tags``, ``summary`` (the author's excerpt, else a clean cut of the
  prose when the text is long or has code), ``original_url`` and ``slug``;
* the slug is the original URL's last path segment, else WordPress's ``post_name``, else
  the title; a slug already in use gets ``-2``, ``-3``;
* private stays private: only a published entry without a password is public.  WordPress
  drafts, pending, scheduled, private and password-protected posts are written with
  ``draft: true``; such pages go to ``content/drafts/pages/``, which the build never
  reads; trashed items and auto-drafts are skipped with a line;
* WordPress pages go to ``content/pages/<slug>.md``; approved and held comments,
  pingbacks and trackbacks of public posts go to ``content/comments/<slug>/``;
* a summary-only entry (Hugo's RSS, Pelican's RSS, an ellipsis or "Read more") is
  completed from its permalink through the ``fetch_page`` callable; when that fails it is
  imported as a draft with a warning naming it;
* anything converted imperfectly (an unknown shortcode, an inline script) is a warning
  line, never a silent loss.

Never overwriting: an entry whose guid is in the import ledger, or whose link is the
``original_url`` of a post, or (without a link) whose title and date match one, is
skipped with a one-line message, and files are created exclusively, so importing the
same source twice changes nothing.  Entries without a date are dated by the feed's own
date, else the file's modification time or the URL's ``Last-Modified``, else now.

This module does no network I/O: URLs are read through the ``fetch_source`` and
``fetch_page`` callables the caller passes (the CLI builds them on ``SafeFetcher``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bridge.config import SiteConfig
from bridge.site.comments import CommentStore
from bridge.site.content import RESERVED_PAGE_SLUGS
from bridge.site.importing import (
    feeds,
    files,
    full_content,
    site_folders,
    wordpress_comments,
    wxr,
)
from bridge.site.importing.full_content import Fetch
from bridge.site.importing.html_to_markdown import convert, to_markdown
from bridge.site.importing.model import (
    PRIVATE,
    PUBLIC,
    SKIP,
    FeedEntry,
    FeedError,
    ParsedFeed,
    visibility,
)
from bridge.site.importing.text import absolutize, cut_summary, is_http, plain_text
from bridge.site.markdown_render import MarkdownRenderer
from bridge.site.posts import slugify

__all__ = [
    "FEED_ACCEPT", "FeedEntry", "FeedError", "ImportReport", "ParsedFeed", "absolutize",
    "import_feed", "import_feed_async", "import_parsed", "import_slug", "messages",
    "parse_feed", "plain_text", "slug_base", "to_markdown", "unique_slug",
]  # fmt: skip

FEED_ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
MAX_EXPORT_BYTES = 64 * 1024 * 1024  # WordPress exports of big blogs are tens of MiB


@dataclass(frozen=True)
class Fetched:
    body: bytes
    url: str  # after redirects
    last_modified: dt.datetime | None


SourceFetch = Callable[[str], Awaitable[Fetched]]
"""GET a feed or export URL.  Raises a ``BridgeError`` (one line) on failure."""


def parse_feed(data: bytes, *, url: str = "") -> ParsedFeed:
    """A WordPress export or any RSS/Atom feed.  Raises ``FeedError`` for anything else."""
    return wxr.read(data, url=url) if wxr.is_wxr(data) else feeds.read(data, url=url)


def _has_slug_text(text: str) -> bool:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.search(r"[a-z0-9]", folded.lower()) is not None


def _last_segment(link: str) -> str:
    segments = [unquote(s) for s in urlsplit(link).path.split("/") if s]
    while segments:
        name = re.sub(r"\.(html?|php|aspx?)$", "", segments.pop())
        if name.lower() not in ("index", "default"):
            return name
    return ""


def _first_sluggable(candidates: Iterable[str]) -> str:
    for text in candidates:
        if text and _has_slug_text(text):
            return slugify(text)
    return "post"


def import_slug(entry: FeedEntry) -> str:
    """The original URL's last path segment, else WordPress's post_name, else the title,
    else 'post': so the new URL keeps the old one's words."""
    hint = unquote(entry.slug_hint).replace("__trashed", "")
    link = _last_segment(entry.link) if entry.link else ""
    return _first_sluggable([link, hint, entry.title or ""])


def slug_base(entry: FeedEntry) -> str:
    """Bridge mode's slug: WordPress's post_name, else the title, else the link's last
    segment (kept as it was; imports use ``import_slug``)."""
    hint = unquote(entry.slug_hint).replace("__trashed", "")
    link = _last_segment(entry.link) if entry.link else ""
    return _first_sluggable([hint, entry.title or "", link])


def unique_slug(base: str, taken: set[str]) -> str:
    slug, n = base, 2
    while slug in taken:
        suffix = f"-{n}"
        slug = base[: 80 - len(suffix)].rstrip("-") + suffix
        n += 1
    return slug


@dataclass
class ImportReport:
    source: str
    written: list[str] = field(default_factory=list)  # paths relative to the site folder
    posts: int = 0  # public posts
    pages: int = 0  # public pages
    drafts: int = 0  # drafts, pending, scheduled and summary-only entries
    private: int = 0  # private and password-protected entries
    comments: int = 0
    skipped: list[str] = field(default_factory=list)  # one line per entry left out
    warnings: list[str] = field(default_factory=list)  # one line per imperfect conversion
    ignored: dict[str, int] = field(default_factory=dict)  # WordPress post types not imported
    undated: int = 0
    fallback_date: dt.datetime | None = None

    def summary(self) -> str:
        text = (
            f"Imported {self.posts} post(s), {self.pages} page(s), {self.drafts} draft(s), "
            f"{self.private} private, {self.comments} comment(s) from {self.source}; "
            f"{len(self.skipped)} skipped, {len(self.warnings)} warning(s)"
        )
        if self.ignored:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.ignored.items()))
            text += f"; ignored {kinds}"
        if self.undated and self.fallback_date is not None:
            text += f"; {self.undated} undated, dated {files.iso(self.fallback_date)}"
        return text


def _describe(entry: FeedEntry) -> str:
    return repr(entry.title) if entry.title else (entry.link or entry.key)


def _rank(entry: FeedEntry) -> tuple[int, dt.datetime]:
    """Of two items with one guid, the published one wins, then the later one."""
    moment = entry.updated or entry.date or dt.datetime.min.replace(tzinfo=dt.UTC)
    return (visibility(entry) == PUBLIC, moment)


def _deduplicated(entries: Iterable[FeedEntry], report: ImportReport) -> list[FeedEntry]:
    best: dict[str, FeedEntry] = {}
    for entry in entries:
        if entry.guid and (entry.guid not in best or _rank(entry) > _rank(best[entry.guid])):
            best[entry.guid] = entry
    out = []
    for entry in entries:
        if entry.guid and best[entry.guid] is not entry:
            report.skipped.append(f"skipped {_describe(entry)}: another item has its guid")
            continue
        out.append(entry)
    return out


def _why_draft(entry: FeedEntry, seen: str) -> str | None:
    """Why an entry is imported as a draft (a comment in its front matter), or None."""
    if seen == PRIVATE:
        return "password-protected" if entry.password else f"status '{entry.status}'"
    if seen != PUBLIC:
        return f"status '{entry.status}'"
    return "the feed has a summary only" if entry.truncated else None


class _Run:
    """One import: what the site holds, and the report being written."""

    def __init__(self, config: SiteConfig, report: ImportReport) -> None:
        self.config = config
        self.report = report
        self.posts = files.scan(config.content_dir / "posts", config.site_dir)
        self.pages = files.scan(config.content_dir / "pages", config.site_dir)
        self.ledger = files.read_ledger(config.state_dir)
        self.store = CommentStore(config.content_dir)
        self.renderer = MarkdownRenderer(None)

    def known(self, entry: FeedEntry, ident: tuple[str, str]) -> str | None:
        if entry.guid and entry.guid in self.ledger:
            return self.ledger[entry.guid]
        if entry.link:
            return self.posts.originals.get(entry.link)
        return self.posts.unlinked.get(ident)

    def count(self, entry: FeedEntry, seen: str) -> None:
        if entry.guid:
            self.ledger[entry.guid] = self.report.written[-1]
        if seen == PUBLIC and not entry.truncated:
            if entry.kind == "page":
                self.report.pages += 1
            else:
                self.report.posts += 1
        elif seen == PRIVATE:
            self.report.private += 1
        else:
            self.report.drafts += 1

    def body(self, entry: FeedEntry) -> str:
        converted = convert(entry.html) if entry.markdown is None else None
        for line in (*entry.warnings, *(converted.warnings if converted else ())):
            self.report.warnings.append(f"warning: {_describe(entry)}: {line}")
        return converted.markdown if converted else entry.markdown or ""

    def cut_summary(self, entry: FeedEntry) -> str | None:
        """For a titled post without an excerpt: its prose cut cleanly, when the whole
        text would not do (it has code, or is long).  Sources are rendered first."""
        if not entry.title:
            return None
        html = entry.html if entry.markdown is None else self.renderer.render(entry.markdown)
        cut = cut_summary(html)
        return cut if cut and cut != plain_text(html) else None

    def post(self, entry: FeedEntry, date: dt.datetime, seen: str) -> None:
        probe = to_markdown(entry.html) if entry.markdown is None else entry.markdown
        ident = files.identity(entry.title, files.iso(date), probe + "\n")
        known = self.known(entry, ident)
        if known is not None:
            self.report.skipped.append(f"skipped {_describe(entry)}: already imported as {known}")
            return
        slug = unique_slug(import_slug(entry), self.posts.slugs)
        rel = f"content/posts/{date.astimezone(dt.UTC):%Y-%m-%d}-{slug}.md"
        summary = entry.summary if entry.summary else self.cut_summary(entry)
        draft = seen != PUBLIC or entry.truncated
        text = files.post_text(
            entry, slug, date, draft=_why_draft(entry, seen), summary=summary, body=self.body(entry)
        )
        if not files.create(self.config.site_dir / rel, text):
            self.report.skipped.append(f"skipped {_describe(entry)}: {rel} exists")
            return
        self.posts.slugs.add(slug)
        if entry.link:
            self.posts.originals[entry.link] = rel
        self.posts.unlinked.setdefault(ident, rel)
        self.report.written.append(rel)
        self.count(entry, seen)
        self.report.undated += entry.date is None
        self.comments(entry, slug, date, public=not draft)

    def comments(self, entry: FeedEntry, slug: str, date: dt.datetime, public: bool) -> None:
        if not entry.comments:
            return
        if not public:
            self.report.skipped.append(
                f"skipped {len(entry.comments)} comment(s) of {_describe(entry)}: "
                "the post is not public"
            )
            return
        converted = wordpress_comments.convert(entry, self.config.post_url(slug), date)
        for line in converted.left_out:
            self.report.skipped.append(f"skipped {line} on {_describe(entry)}")
        for comment in converted.comments:
            try:
                self.store.write(slug, comment)
            except OSError as exc:
                where = f"content/comments/{slug}/{comment.id}.json"
                raise FeedError(f"{where}: cannot be written: {exc.strerror or exc}") from None
            self.report.comments += 1

    def page(self, entry: FeedEntry, date: dt.datetime, seen: str) -> None:
        if entry.guid and entry.guid in self.ledger:
            known = self.ledger[entry.guid]
            self.report.skipped.append(f"skipped page {_describe(entry)}: already {known}")
            return
        slug = import_slug(entry)
        if slug in RESERVED_PAGE_SLUGS:
            slug = unique_slug(f"{slug}-page", self.pages.slugs)
        public = seen == PUBLIC and not entry.truncated
        rel = f"content/{'pages' if public else 'drafts/pages'}/{slug}.md"
        path = self.config.site_dir / rel
        taken = (public and slug in self.pages.slugs) or path.exists()
        if taken or not files.create(path, files.page_text(entry, slug, date, self.body(entry))):
            self.report.skipped.append(f"skipped page {_describe(entry)}: {rel} exists")
            return
        if public:
            self.pages.slugs.add(slug)
        self.report.written.append(rel)
        self.count(entry, seen)


def import_parsed(
    config: SiteConfig, feed: ParsedFeed, *, source: str, fallback_date: dt.datetime
) -> ImportReport:
    """Write the posts, pages and comments of a parsed (and completed) feed."""
    report = ImportReport(source=source, fallback_date=fallback_date)
    run = _Run(config, report)

    def date_of(entry: FeedEntry) -> dt.datetime:
        return (entry.date or fallback_date).replace(microsecond=0)

    entries = _deduplicated(feed.entries, report)
    for entry in sorted(entries, key=date_of):
        seen = visibility(entry)
        if entry.kind not in ("post", "page"):
            report.ignored[entry.kind] = report.ignored.get(entry.kind, 0) + 1
        elif seen == SKIP:
            report.skipped.append(f"skipped {_describe(entry)}: WordPress status '{entry.status}'")
        elif entry.kind == "page":
            run.page(entry, date_of(entry), seen)
        else:
            run.post(entry, date_of(entry), seen)
    files.write_ledger(config.state_dir, run.ledger)
    return report


def _read_file(source: str) -> tuple[bytes, dt.datetime]:
    path = Path(source).expanduser()
    try:
        data = path.read_bytes()
        mtime = dt.datetime.fromtimestamp(int(path.stat().st_mtime), dt.UTC)
    except OSError as exc:
        raise FeedError(f"{source}: cannot be read: {exc.strerror or exc}") from None
    return data, mtime


async def import_feed_async(
    config: SiteConfig,
    source: str,
    *,
    fetch_source: SourceFetch | None = None,
    fetch_page: Fetch | None = None,
) -> ImportReport:
    """``import_feed`` for callers that already run an event loop."""
    if Path(source).expanduser().is_dir():
        feed = site_folders.read(Path(source).expanduser())
        fallback = dt.datetime.now(dt.UTC)
    elif is_http(source):
        if fetch_source is None:
            raise FeedError(f"{source}: importing from a URL needs a fetcher")
        fetched = await fetch_source(source)
        feed = parse_feed(fetched.body, url=fetched.url)
        fallback = feed.updated or fetched.last_modified or dt.datetime.now(dt.UTC)
    else:
        data, mtime = _read_file(source)
        feed = parse_feed(data, url="")
        fallback = feed.updated or mtime
    feed = await full_content.complete(feed, fetch_page)
    return import_parsed(config, feed, source=source, fallback_date=fallback)


def import_feed(
    config: SiteConfig,
    source: str,
    *,
    fetch_source: SourceFetch | None = None,
    fetch_page: Fetch | None = None,
) -> ImportReport:
    """Import every entry of ``source`` (a file path or an http(s) URL).

    Raises:
        FeedError: the source cannot be read or is not a feed.
        BridgeError: ``fetch_source`` failed (e.g. a private address was refused).
    """
    return asyncio.run(
        import_feed_async(config, source, fetch_source=fetch_source, fetch_page=fetch_page)
    )


def messages(report: ImportReport) -> Iterable[str]:
    """The lines to print: one per written file, skipped entry and warning."""
    for rel in report.written:
        yield f"wrote {rel}"
    yield from report.skipped
    yield from report.warnings
