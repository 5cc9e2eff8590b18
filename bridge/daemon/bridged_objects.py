"""Bridge mode: feed entries -> ``Post`` values -> the signed objects this site serves.

A bridged entry's object is ``activities.post_object`` of its ``Post`` with this site's id
(``/ap/bridge/<slug>.json``), the entry's own link as ``url`` and no replies/likes/shares
collections.  The diff that decides what is announced is in ``bridge.daemon.bridged_entries``.

* **Images** stay inline and also travel as ``attachment`` (``Image`` with the ``alt`` text
  as ``name``), as posts' ``images:`` do: Mastodon strips ``<img>`` from content and shows
  attachments only (docs.joinmastodon.org/spec/activitypub/#sanitization), the first 4 of
  them.  At most ``MAX_IMAGES`` are taken, http(s) only, once each, and 1x1 tracking
  pixels are left out; alt text is cut at ``MAX_ALT`` characters (Mastodon's own limit
  for a description, ``MediaAttachment::MAX_DESCRIPTION_LENGTH``).
* **Hashtags** link to the tag's page on the original site when the feed names one (a
  category ``scheme`` that is a tag folder, ``importing.feeds.tag_page``), else to no page
  at all: this site has no tag pages for bridged entries.  Mastodon needs only ``name``
  (``app/lib/activitypub/activity/create.rb``, ``process_hashtag``) and links the tag to
  its own tag timeline.  A category that makes no hashtag (only digits or punctuation) is
  left out.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

import nh3

from bridge.config import SiteConfig
from bridge.federation.context import Context
from bridge.site import activities, importer, proofs
from bridge.site.hashtags import hashtag_name
from bridge.site.posts import Image, Post

MAX_IMAGES = 16
MAX_ALT = 1500


def object_id(config: SiteConfig, slug: str) -> str:
    return f"{config.base_url}/ap/bridge/{slug}.json"


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "img" or len(self.found) >= MAX_IMAGES:
            return
        at = {k: (v or "").strip() for k, v in attrs}
        src = at.get("src", "")
        if not src.startswith(("https://", "http://")) or src in self.found:
            return
        if at.get("width") in ("0", "1") or at.get("height") in ("0", "1"):
            return  # a tracking pixel
        self.found[src] = " ".join(at.get("alt", "").split())[:MAX_ALT]


def entry_images(html: str) -> tuple[Image, ...]:
    """The images of an entry's (sanitised) HTML, in order, as attachments."""
    parser = _Images()
    parser.feed(html)
    parser.close()
    return tuple(
        Image(url=src, alt=alt, media_type=activities.media_type(src.split("?")[0]))
        for src, alt in parser.found.items()
    )


def entry_post(
    config: SiteConfig, feed_url: str, entry: importer.FeedEntry, slug: str, date: dt.datetime
) -> Post:
    """The ``Post`` value of a feed entry (its HTML sanitised; ``original_url`` its link)."""
    html = nh3.clean(entry.html).strip()
    updated = entry.updated if entry.updated and entry.updated > date else None
    digest = hashlib.sha256(
        json.dumps(
            [
                entry.title,
                entry.link,
                date.isoformat(),
                updated and updated.isoformat(),
                list(entry.tags),
                list(entry.tag_links),
                entry.summary,
                html,
            ],
        ).encode()
    ).hexdigest()
    return Post(
        source=feed_url,
        slug=slug,
        title=entry.title,
        date=date,
        updated=updated,
        tags=tuple(t for t in entry.tags if hashtag_name(t) is not None),
        summary=entry.summary,
        draft=False,
        lang=config.language,
        content_warning=None,
        images=entry_images(html),
        in_reply_to=None,
        fediverse_format=config.fediverse_format,
        body=html,
        html=html,
        digest=digest,
        extra={"original_url": entry.link} if entry.link else {},
    )


def bridged_object(
    config: SiteConfig, post: Post, tag_pages: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``activities.post_object`` with our id, the entry's link as ``url``, hashtags linked
    to ``tag_pages`` (tag -> its page on the original site) or to nothing, and no
    replies/likes/shares collections (this site serves none for bridged entries)."""
    obj = activities.post_object(config, post)
    pages = {"#" + (hashtag_name(t) or t): url for t, url in (tag_pages or {}).items()}
    for tag in obj["tag"]:
        if tag.get("type") == "Hashtag":
            if tag["name"] in pages:
                tag["href"] = pages[tag["name"]]
            else:
                tag.pop("href", None)
    link = post.extra.get("original_url") or config.base_url + "/"
    own_page = config.post_url(post.slug)
    for key in ("content", "summary"):
        if isinstance(obj.get(key), str):
            obj[key] = obj[key].replace(own_page, link)
    obj["contentMap"] = {post.lang: obj["content"]}
    obj["id"] = object_id(config, post.slug)
    obj["url"] = link
    for key in ("replies", "likes", "shares"):
        obj.pop(key, None)
    return obj


def sign(ctx: Context, obj: dict[str, Any], moment: dt.datetime) -> dict[str, Any]:
    return proofs.sign_object(
        proofs.strip_proof(obj), ctx.keys.ed25519, ctx.config.ed25519_key_id, moment
    )
