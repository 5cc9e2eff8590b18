"""Reading a WordPress export (WXR: RSS 2.0 plus the ``wp:`` namespace).

The format is whatever ``wp-admin/includes/export.php`` writes: a ``channel`` with
``wp:wxr_version`` and ``wp:base_site_url``; one ``item`` per post, page, attachment or
menu item, with ``content:encoded``, ``excerpt:encoded``, ``wp:post_id``,
``wp:post_date_gmt``, ``wp:post_name``, ``wp:status``, ``wp:post_type``,
``wp:post_password``, ``wp:post_parent``, ``wp:attachment_url``, ``wp:postmeta`` and
``wp:comment`` children (``comment_author``, ``_url``, ``_date_gmt``, ``_content``,
``_approved``, ``_type``, ``_parent``; the commenter's email and IP are never read).
The namespace URI carries the version (``http://wordpress.org/export/1.2/``), so
elements are matched on their local name under any ``wordpress.org/export/`` URI.

XML is parsed with the standard library's expat (2.4+ refuses exponential entity
expansion; ElementTree never loads external entities), and a document declaring
entities is refused outright: WordPress never writes one.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from bridge.site.importing import wordpress_content
from bridge.site.importing.model import FeedEntry, FeedError, ImportedComment, ParsedFeed
from bridge.site.importing.text import absolutize, is_http, plain_text, shallow, wp_date
from bridge.site.importing.wordpress_content import Attachment

_WP = "wordpress.org/export/"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"


def is_wxr(data: bytes) -> bool:
    head = data[:65536]
    return _WP.encode() in head and b"wxr_version" in head


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        uri, _, name = tag[1:].partition("}")
        return uri, name
    return "", tag


def _wp(element: ET.Element, name: str) -> str:
    """The text of a ``wp:name`` (or ``excerpt:name``) child, "" when absent."""
    for child in element:
        uri, local = _local(child.tag)
        if local == name and _WP in uri:
            return (child.text or "").strip() if name != "comment_content" else child.text or ""
    return ""


def _children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    for child in element:
        uri, local = _local(child.tag)
        if local == name and _WP in uri:
            yield child


def _text(element: ET.Element, tag: str) -> str:
    found = element.find(tag)
    return (found.text or "") if found is not None else ""


def _rfc822(value: str) -> dt.datetime | None:
    if not value or "-0001" in value:  # WordPress's pubDate of a draft never scheduled
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.year <= 1970:
        return None
    return moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _meta(item: ET.Element, key: str) -> str:
    for meta in _children(item, "postmeta"):
        if _wp(meta, "meta_key") == key:
            return _wp(meta, "meta_value")
    return ""


def _comments(item: ET.Element) -> tuple[ImportedComment, ...]:
    out = []
    for node in _children(item, "comment"):
        out.append(
            ImportedComment(
                key=_wp(node, "comment_id"),
                kind=_wp(node, "comment_type") or "comment",
                author=_wp(node, "comment_author"),
                author_url=_wp(node, "comment_author_url"),
                date=wp_date(_wp(node, "comment_date_gmt")) or wp_date(_wp(node, "comment_date")),
                html=wordpress_content.autop(_wp(node, "comment_content")),
                approved=_wp(node, "comment_approved") or "0",
                parent=_wp(node, "comment_parent"),
            )
        )
    return tuple(out)


def _tags(item: ET.Element) -> tuple[str, ...]:
    out: dict[str, str] = {}
    for category in item.findall("category"):
        if category.get("domain", "category") not in ("category", "post_tag"):
            continue
        name = " ".join(html.unescape(category.text or "").split()).lstrip("#")
        if name and name.lower() != "uncategorized":
            out.setdefault(name.lower(), name)
    return tuple(out.values())


def _entry(item: ET.Element, attachments: dict[str, Attachment], site: str) -> FeedEntry:
    title = plain_text(_text(item, "title")) or None
    link = _text(item, "link").strip()
    link = link if is_http(link) else ""
    guid = _text(item, "guid").strip()
    post_id = _wp(item, "post_id")
    raw, deep = shallow(item.findtext(_CONTENT) or "")
    body, warnings = wordpress_content.to_html(raw, attachments=attachments, post_id=post_id)
    excerpt = next((c.text or "" for c in item if _local(c.tag)[1] == "encoded" and
                    "excerpt" in _local(c.tag)[0]), "")  # fmt: skip
    date = (
        wp_date(_wp(item, "post_date_gmt"))
        or wp_date(_wp(item, "post_date"))
        or _rfc822(_text(item, "pubDate"))
    )
    return FeedEntry(
        key=guid or link or post_id or f"{title}\0{date}",
        title=title,
        link=link or None,
        date=date,
        updated=wp_date(_wp(item, "post_modified_gmt")),
        tags=_tags(item),
        summary=plain_text(excerpt) or None,
        html=absolutize(body, link or site),
        status=_wp(item, "status") or "publish",
        kind=_wp(item, "post_type") or "post",
        slug_hint=_wp(item, "post_name"),
        guid=guid,
        password=bool(_wp(item, "post_password")),
        comments=_comments(item),
        warnings=(*deep, *warnings),
    )


def read(data: bytes, *, url: str = "") -> ParsedFeed:
    """Parse a WordPress export.

    Raises:
        FeedError: not well-formed XML, or it declares entities.
    """
    if b"<!ENTITY" in data:
        raise FeedError(f"{url or 'source'}: a WordPress export never declares XML entities")
    try:
        root = ET.fromstring(data)  # noqa: S314 - expat 2.4+, no external entities; see above
    except ET.ParseError as exc:
        raise FeedError(f"{url or 'source'}: not a readable WordPress export ({exc})") from None
    channel = root.find("channel")
    if channel is None:
        raise FeedError(f"{url or 'source'}: a WordPress export without a <channel>")
    site = _wp(channel, "base_blog_url") or _text(channel, "link").strip()
    site = site if is_http(site) else url
    items = channel.findall("item")
    attachments = {
        _wp(item, "post_id"): Attachment(
            url=_wp(item, "attachment_url"),
            alt=_meta(item, "_wp_attachment_image_alt") or plain_text(_text(item, "title")),
            parent=_wp(item, "post_parent"),
        )
        for item in items
        if _wp(item, "post_type") == "attachment" and is_http(_wp(item, "attachment_url"))
    }
    entries = tuple(_entry(item, attachments, site) for item in items)
    return ParsedFeed(
        title=plain_text(_text(channel, "title")),
        link=site if is_http(site) else "",
        updated=_rfc822(_text(channel, "pubDate")),
        wordpress=True,
        entries=entries,
        generator=_text(channel, "generator").strip(),
        attachments={key: item.url for key, item in attachments.items()},
    )
