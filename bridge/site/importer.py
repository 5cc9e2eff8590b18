"""``indiebridge import``: bring an existing blog's posts in from its feed or export.

``import_feed(config, source)`` reads an RSS 1.0/2.0 or Atom feed, or a WordPress export
(WXR: RSS 2.0 with ``content:encoded``, ``wp:post_date_gmt``, ``wp:status``, categories),
from a file or an http(s) URL, and writes one Markdown post per entry under
``content/posts/``:

* front matter: ``title``, ``date``, ``updated`` (when later than the date), ``tags``
  (categories and tags; WordPress's "Uncategorized" is dropped), ``original_url`` (the
  entry's link), ``summary`` (only when the feed has a real excerpt beside the content),
  ``slug``, and ``draft: true`` for WordPress posts that are not published (draft,
  pending, private, future);
* body: the entry's HTML converted to Markdown with ``markdownify``, after every relative
  ``href``/``src``/``srcset`` was resolved against the entry's link (then the feed's link,
  then the feed's own URL).  WordPress's classic-editor text, whose paragraphs are blank
  lines rather than ``<p>`` tags, is paragraphed first, as WordPress does on display;
* file name: ``<date>-<slug>.md``; the slug comes from WordPress's ``post_name``, else the
  title, else the last segment of the link.  Two entries with the same title get distinct
  slugs (``-2``, ``-3`` in date order), and a slug already used by a post of the site is
  never reused.

WordPress pages become ``content/pages/<slug>.md``; attachments, menu items and trashed
posts are skipped and counted.

Never overwriting
-----------------
An entry whose link is the ``original_url`` of a post already in ``content/posts/``, or
(without a link) whose title and date match one, is skipped with a one-line message, and
files are created with an exclusive link (``os.link``), so an existing file is never
replaced, even one that appears while the import runs.  Importing the same feed twice
therefore changes nothing the second time.

Entries without a date
----------------------
An entry with no date (or WordPress's ``0000-00-00`` for drafts never scheduled) is dated
deterministically: the feed's own ``updated``/``lastBuildDate``/``pubDate`` when it has one,
else the file's modification time for a file, else the ``Last-Modified`` header of a URL,
and only when there is none of those the moment of the import.  WordPress's local
``post_date`` is used (as UTC) when ``post_date_gmt`` is missing.

URLs are fetched with ``SafeFetcher``: loopback and private addresses are refused unless
``allow_private_addresses`` is on.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import email.utils
import html as html_mod
import os
import re
import secrets
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import feedparser
import yaml
from bs4 import BeautifulSoup
from bs4.element import NavigableString, Tag
from markdownify import MarkdownConverter

from bridge.config import SiteConfig
from bridge.errors import BridgeError, FetchError
from bridge.site.content import RESERVED_PAGE_SLUGS, split_front_matter
from bridge.site.posts import slugify

FEED_ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
MAX_EXPORT_BYTES = 64 * 1024 * 1024  # WordPress exports of big blogs are tens of MiB

WP_DRAFT_STATUSES = {"draft", "pending", "private", "future"}
WP_SKIPPED_STATUSES = {"trash", "auto-draft"}
_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")
_BLOCK_START = re.compile(
    r"^\s*<(?:p|div|h[1-6]|ul|ol|li|blockquote|pre|table|figure|hr|dl|section|!--)\b", re.I
)


class FeedError(BridgeError):
    """The source is not a feed indiebridge can read."""


# ---- reading feeds ------------------------------------------------------------------


@dataclass(frozen=True)
class FeedEntry:
    """One entry of a feed, normalised: plain-text title, absolute links, UTC dates."""

    key: str  # identity within the feed: guid, else link, else title and date
    title: str | None
    link: str | None
    date: dt.datetime | None
    updated: dt.datetime | None
    tags: tuple[str, ...]
    summary: str | None  # plain text, only when the feed has an excerpt beside the content
    html: str  # the body, relative links resolved
    status: str = "publish"  # WordPress status; "publish" for plain feeds
    kind: str = "post"  # WordPress post type; "post" for plain feeds
    slug_hint: str = ""  # WordPress post_name


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    link: str
    updated: dt.datetime | None
    wordpress: bool
    entries: tuple[FeedEntry, ...]


def _struct_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        moment = dt.datetime.fromtimestamp(calendar.timegm(value), dt.UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return moment if moment.year > 1970 else None


def _raw(mapping: Any, key: str) -> Any:
    """A key of a feedparser dict, without its deprecated updated/published aliasing."""
    return dict.get(mapping, key) if isinstance(mapping, dict) else None


def _wp_date(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip() or value.startswith("0000"):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace(" ", "T"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def plain_text(fragment: str) -> str:
    """The text of an HTML fragment, entities decoded, whitespace collapsed."""
    text = BeautifulSoup(fragment, "html.parser").get_text(" ")
    return " ".join(html_mod.unescape(text).split())


def _title(entry: Mapping[str, Any]) -> str | None:
    title = entry.get("title")
    if not isinstance(title, str):
        return None
    detail = entry.get("title_detail") or {}
    if "html" in str(detail.get("type", "")):
        title = plain_text(title)
    title = " ".join(title.split())
    return title or None


def _is_http(url: Any) -> bool:
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


def _srcset(value: str, base: str) -> str:
    out = []
    for candidate in value.split(","):
        parts = candidate.strip().split(maxsplit=1)
        if parts:
            parts[0] = urljoin(base, parts[0])
            out.append(" ".join(parts))
    return ", ".join(out)


def absolutize(fragment: str, base: str) -> str:
    """``fragment`` with relative ``href``/``src``/``srcset``/``poster`` resolved on ``base``.

    In-page anchors (``#note-1``) stay as they are.
    """
    if not base:
        return fragment
    soup = BeautifulSoup(fragment, "html.parser")
    for tag in soup.find_all(True):
        if not isinstance(tag, Tag):
            continue
        for attr in ("href", "src", "poster"):
            value = tag.get(attr)
            if isinstance(value, str) and value.strip() and not value.startswith("#"):
                tag[attr] = urljoin(base, value.strip())
        srcset = tag.get("srcset")
        if isinstance(srcset, str):
            tag["srcset"] = _srcset(srcset, base)
    return str(soup)


def autop(text: str) -> str:
    """WordPress classic-editor text -> HTML paragraphs (blank lines separate them, single
    newlines are line breaks; chunks that start with a block tag are left alone)."""
    chunks = [c for c in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if c.strip()]
    out = []
    for chunk in chunks:
        if _BLOCK_START.match(chunk):
            out.append(chunk)
        else:
            out.append("<p>" + chunk.strip().replace("\n", "<br>\n") + "</p>")
    return "\n".join(out)


def _text_to_html(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n".join(f"<p>{html_mod.escape(p.strip())}</p>" for p in paragraphs)


def _body(entry: Mapping[str, Any], wordpress: bool) -> tuple[str, str | None]:
    """(body HTML, plain-text summary if the feed has a separate excerpt)."""
    contents = [c for c in entry.get("content") or [] if isinstance(c.get("value"), str)]
    html_contents = [c for c in contents if "html" in str(c.get("type", ""))]
    chosen = (html_contents or contents or [None])[0]
    summary_detail = entry.get("summary_detail")
    summary_value = entry.get("summary") if isinstance(entry.get("summary"), str) else ""
    summary: str | None = None
    if chosen is not None:
        body = str(chosen["value"])
        if "html" not in str(chosen.get("type", "")):
            body = _text_to_html(body)
        elif wordpress:
            body = autop(body)
        if summary_detail is not None and summary_value and summary_value != chosen["value"]:
            summary = plain_text(summary_value) or None
    else:
        body = summary_value or ""
        if summary_detail is not None and "html" not in str(summary_detail.get("type", "html")):
            body = _text_to_html(body)
    excerpt = entry.get("excerpt_encoded")
    if wordpress and isinstance(excerpt, str) and excerpt.strip():
        summary = plain_text(excerpt) or None
    return body, summary


def _tags(entry: Mapping[str, Any], wordpress: bool) -> tuple[str, ...]:
    out: dict[str, str] = {}
    for tag in entry.get("tags") or []:
        name = tag.get("label") or tag.get("term")
        if not isinstance(name, str):
            continue
        name = " ".join(html_mod.unescape(name).split()).lstrip("#")
        if not name or (wordpress and name.lower() == "uncategorized"):
            continue
        out.setdefault(name.lower(), name)
    return tuple(out.values())


def parse_feed(data: bytes, *, url: str = "") -> ParsedFeed:
    """Parse feed bytes; ``url`` (where they came from) resolves relative links last.

    Raises:
        FeedError: not a feed (nothing feed-like could be read).
    """
    parsed = feedparser.parse(data, resolve_relative_uris=False, response_headers={})
    feed = parsed.get("feed") or {}
    entries = parsed.get("entries") or []
    if parsed.get("bozo") and not entries and not feed.get("title"):
        reason = parsed.get("bozo_exception")
        raise FeedError(f"{url or 'source'}: not an RSS or Atom feed ({reason})")
    if not parsed.get("version") and not entries:
        raise FeedError(f"{url or 'source'}: not an RSS or Atom feed")
    wordpress = "wp_wxr_version" in feed or any("wp_post_type" in e for e in entries)
    feed_link = feed.get("link") if _is_http(feed.get("link")) else ""
    feed_updated = _struct_time(_raw(feed, "updated_parsed")) or _struct_time(
        _raw(feed, "published_parsed")
    )
    out = []
    for entry in entries:
        title = _title(entry)
        link = entry.get("link") if _is_http(entry.get("link")) else None
        if wordpress:
            date = (
                _wp_date(entry.get("wp_post_date_gmt"))
                or _wp_date(entry.get("wp_post_date"))
                or _struct_time(_raw(entry, "published_parsed"))
            )
            updated = _wp_date(entry.get("wp_post_modified_gmt"))
        else:
            date = _struct_time(_raw(entry, "published_parsed")) or _struct_time(
                _raw(entry, "updated_parsed")
            )
            updated = _struct_time(_raw(entry, "updated_parsed"))
        body, summary = _body(entry, wordpress)
        base = link or str(feed_link or "") or url
        guid = entry.get("id") if isinstance(entry.get("id"), str) else ""
        key = guid or link or f"{title or ''}\0{date.isoformat() if date else ''}"
        out.append(
            FeedEntry(
                key=key,
                title=title,
                link=link,
                date=date,
                updated=updated,
                tags=_tags(entry, wordpress),
                summary=summary,
                html=absolutize(body, base),
                status=str(entry.get("wp_status") or "publish") if wordpress else "publish",
                kind=str(entry.get("wp_post_type") or "post") if wordpress else "post",
                slug_hint=str(entry.get("wp_post_name") or "") if wordpress else "",
            )
        )
    return ParsedFeed(
        title=_title(feed) or "",
        link=str(feed_link or ""),
        updated=feed_updated,
        wordpress=wordpress,
        entries=tuple(out),
    )


# ---- Markdown and slugs ---------------------------------------------------------------


def to_markdown(fragment: str) -> str:
    """HTML -> Markdown (ATX headings, ``-`` bullets, fenced code); scripts dropped."""
    soup = BeautifulSoup(fragment, "html.parser")
    for bad in soup.find_all(["script", "style", "iframe", "object", "embed", "form"]):
        bad.decompose()
    # Text like "a <b> c" must stay text: Markdown would pass "<b>" through as a tag.
    for node in soup.find_all(string=re.compile("[<>]")):
        if isinstance(node, NavigableString) and not node.find_parent(["code", "pre"]):
            node.replace_with(node.replace("<", "&lt;").replace(">", "&gt;"))
    converter = MarkdownConverter(heading_style="ATX", bullets="-", code_language="")
    text: str = converter.convert_soup(soup)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _has_slug_text(text: str) -> bool:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.search(r"[a-z0-9]", folded.lower()) is not None


def slug_base(entry: FeedEntry) -> str:
    """WordPress's post_name, else the title, else the link's last path segment, else 'post'."""
    hint = unquote(entry.slug_hint).replace("__trashed", "")
    candidates = [hint, entry.title or ""]
    if entry.link:
        segments = [s for s in urlsplit(entry.link).path.split("/") if s]
        if segments:
            candidates.append(re.sub(r"\.(html?|php|aspx?)$", "", unquote(segments[-1])))
    for text in candidates:
        if text and _has_slug_text(text):
            return slugify(text)
    return "post"


def unique_slug(base: str, taken: set[str]) -> str:
    slug, n = base, 2
    while slug in taken:
        suffix = f"-{n}"
        slug = base[: 80 - len(suffix)].rstrip("-") + suffix
        n += 1
    return slug


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _yaml_line(key: str, value: Any) -> str:
    """``key: value`` in YAML, quoted only where YAML needs it; lists in flow style."""
    dumped = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 20)
    return f"{key}: {dumped.removesuffix(chr(10)).removesuffix(chr(10) + '...')}"


def post_text(entry: FeedEntry, slug: str, date: dt.datetime, draft: bool) -> str:
    """The Markdown file for an entry: front matter, a blank line, the body."""
    lines = ["---"]
    if entry.title:
        lines.append(_yaml_line("title", entry.title))
    lines.append(f"date: {_iso(date)}")
    if entry.updated and entry.updated > date:
        lines.append(f"updated: {_iso(entry.updated)}")
    lines.append(f"slug: {slug}")
    if entry.tags:
        lines.append(_yaml_line("tags", list(entry.tags)))
    if entry.summary:
        lines.append(_yaml_line("summary", entry.summary))
    if entry.link:
        lines.append(_yaml_line("original_url", entry.link))
    if draft:
        lines.append("draft: true")
    lines.append("---")
    return "\n".join(lines) + "\n" + to_markdown(entry.html) + "\n"


def page_text(entry: FeedEntry, slug: str, date: dt.datetime) -> str:
    lines = [
        "---",
        _yaml_line("title", entry.title or slug),
        f"slug: {slug}",
        f"date: {_iso(date)}",
    ]
    if entry.updated and entry.updated > date:
        lines.append(f"updated: {_iso(entry.updated)}")
    lines.append("---")
    return "\n".join(lines) + "\n" + to_markdown(entry.html) + "\n"


# ---- what the site already has -----------------------------------------------------------


@dataclass
class _Existing:
    slugs: set[str] = field(default_factory=set)
    originals: dict[str, str] = field(default_factory=dict)
    unlinked: dict[tuple[str, str], str] = field(default_factory=dict)


def _front_matter(path: Path) -> tuple[dict[str, Any], str]:
    try:
        meta, body, _ = split_front_matter(path.read_text(encoding="utf-8"), path.name)
    except (BridgeError, OSError, UnicodeDecodeError):
        return {}, ""
    return meta, body


def _identity(title: str | None, date: str, body: str) -> tuple[str, str]:
    """How an entry without a link is recognised: its title and date, or for an untitled
    note its text and date."""
    return (f"title:{title.strip()}" if title else f"text:{body.strip()}", date)


def _meta_date(value: Any) -> str:
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return _iso(moment)
    if isinstance(value, dt.date):
        return f"{value.isoformat()}T00:00:00Z"
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
        return _iso(parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC))
    return ""


def _scan(folder: Path) -> _Existing:
    found = _Existing()
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.md")):
        meta, body = _front_matter(path)
        slug = meta.get("slug")
        found.slugs.add(str(slug) if slug else slugify(_DATE_PREFIX.sub("", path.stem)))
        rel = f"{folder.parent.name}/{folder.name}/{path.name}"
        original = meta.get("original_url")
        if isinstance(original, str) and original:
            found.originals.setdefault(original, rel)
        title = meta.get("title")
        key = _identity(str(title) if title else None, _meta_date(meta.get("date")), body)
        found.unlinked.setdefault(key, rel)
    return found


def _create(path: Path, text: str) -> bool:
    """Write ``path`` only if it does not exist; never a half-written file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


# ---- importing ---------------------------------------------------------------------------


@dataclass
class ImportReport:
    source: str
    written: list[str] = field(default_factory=list)  # paths relative to the site folder
    drafts: int = 0
    pages: int = 0
    skipped: list[str] = field(default_factory=list)  # one line per entry left out
    ignored: dict[str, int] = field(default_factory=dict)  # WordPress post types not imported
    undated: int = 0
    fallback_date: dt.datetime | None = None

    def summary(self) -> str:
        posts = len(self.written) - self.pages
        text = f"Imported {posts} post(s)"
        if self.drafts:
            text += f" ({self.drafts} draft(s))"
        if self.pages:
            text += f" and {self.pages} page(s)"
        text += f" from {self.source}; {len(self.skipped)} skipped"
        if self.ignored:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.ignored.items()))
            text += f"; ignored {kinds}"
        if self.undated and self.fallback_date is not None:
            text += f"; {self.undated} undated, dated {_iso(self.fallback_date)}"
        return text


def _describe(entry: FeedEntry) -> str:
    return repr(entry.title) if entry.title else (entry.link or entry.key)


def import_parsed(
    config: SiteConfig, feed: ParsedFeed, *, source: str, fallback_date: dt.datetime
) -> ImportReport:
    """Write the posts and pages of an already parsed feed; see the module docstring."""
    report = ImportReport(source=source, fallback_date=fallback_date)
    posts_dir = config.content_dir / "posts"
    pages_dir = config.content_dir / "pages"
    posts = _scan(posts_dir)
    pages = _scan(pages_dir)

    def date_of(entry: FeedEntry) -> dt.datetime:
        return (entry.date or fallback_date).replace(microsecond=0)

    order = sorted(enumerate(feed.entries), key=lambda item: (date_of(item[1]), item[0]))
    for _, entry in order:
        if entry.status in WP_SKIPPED_STATUSES:
            report.skipped.append(f"skipped {_describe(entry)}: WordPress status '{entry.status}'")
            continue
        if entry.kind not in ("post", "page"):
            report.ignored[entry.kind] = report.ignored.get(entry.kind, 0) + 1
            continue
        date = date_of(entry)
        if entry.kind == "page":
            _import_page(report, pages, pages_dir, entry, date, config)
            continue
        text = post_text(entry, "-", date, False)
        markdown = text.split("\n---\n", 1)[1]
        identity = _identity(entry.title, _iso(date), markdown)
        known = posts.originals.get(entry.link) if entry.link else posts.unlinked.get(identity)
        if known is not None:
            report.skipped.append(f"skipped {_describe(entry)}: already imported as {known}")
            continue
        slug = unique_slug(slug_base(entry), posts.slugs)
        draft = entry.status in WP_DRAFT_STATUSES
        path = posts_dir / f"{date.astimezone(dt.UTC):%Y-%m-%d}-{slug}.md"
        rel = f"content/posts/{path.name}"
        posts_dir.mkdir(parents=True, exist_ok=True)
        if not _create(path, post_text(entry, slug, date, draft)):
            report.skipped.append(
                f"skipped {_describe(entry)}: {rel} exists and is never overwritten"
            )
            continue
        posts.slugs.add(slug)
        if entry.link:
            posts.originals[entry.link] = rel
        posts.unlinked.setdefault(identity, rel)
        report.written.append(rel)
        report.drafts += draft
        report.undated += entry.date is None
    return report


def _import_page(
    report: ImportReport,
    pages: _Existing,
    pages_dir: Path,
    entry: FeedEntry,
    date: dt.datetime,
    config: SiteConfig,
) -> None:
    slug = slug_base(entry)
    if slug in RESERVED_PAGE_SLUGS:
        slug = unique_slug(f"{slug}-page", pages.slugs)
    rel = f"content/pages/{slug}.md"
    if slug in pages.slugs:
        report.skipped.append(
            f"skipped page {_describe(entry)}: {rel} exists and is never overwritten"
        )
        return
    pages_dir.mkdir(parents=True, exist_ok=True)
    if not _create(pages_dir / f"{slug}.md", page_text(entry, slug, date)):
        report.skipped.append(
            f"skipped page {_describe(entry)}: {rel} exists and is never overwritten"
        )
        return
    pages.slugs.add(slug)
    report.written.append(rel)
    report.pages += 1


async def fetch_source(config: SiteConfig, url: str) -> tuple[bytes, str, dt.datetime | None]:
    """GET a feed or export with ``SafeFetcher``: (body, final URL, Last-Modified)."""
    from bridge.federation.context import user_agent
    from bridge.federation.fetch import SafeFetcher

    async with SafeFetcher.from_config(
        config, max_bytes=MAX_EXPORT_BYTES, timeout=120.0, user_agent=user_agent(config)
    ) as fetcher:
        page = await fetcher.get(url, accept=FEED_ACCEPT)
    if not page.ok:
        raise FetchError(f"{url}: HTTP {page.status}", page.status)
    modified = None
    header = page.headers.get("last-modified")
    if header:
        try:
            modified = email.utils.parsedate_to_datetime(header).astimezone(dt.UTC)
        except (TypeError, ValueError):
            modified = None
    return page.body, page.url, modified


def _read_file(source: str) -> tuple[bytes, dt.datetime]:
    path = Path(source).expanduser()
    try:
        data = path.read_bytes()
        mtime = dt.datetime.fromtimestamp(int(path.stat().st_mtime), dt.UTC)
    except OSError as exc:
        raise FeedError(f"{source}: cannot be read: {exc.strerror or exc}") from None
    return data, mtime


async def import_feed_async(config: SiteConfig, source: str) -> ImportReport:
    """``import_feed`` for callers that already run an event loop."""
    if _is_http(source):
        data, final_url, modified = await fetch_source(config, source)
        feed = parse_feed(data, url=final_url)
        fallback = feed.updated or modified or dt.datetime.now(dt.UTC)
    else:
        data, mtime = _read_file(source)
        feed = parse_feed(data, url="")
        fallback = feed.updated or mtime
    return import_parsed(config, feed, source=source, fallback_date=fallback)


def import_feed(config: SiteConfig, source: str) -> ImportReport:
    """Import every entry of ``source`` (a file path or an http(s) URL) as a post.

    Raises:
        FeedError: the source cannot be read or is not a feed.
        FetchError: the URL could not be fetched (or is refused as a private address).
    """
    return asyncio.run(import_feed_async(config, source))


def messages(report: ImportReport) -> Iterable[str]:
    """The lines to print: one per written file and one per skipped entry."""
    for rel in report.written:
        yield f"wrote {rel}"
    yield from report.skipped
