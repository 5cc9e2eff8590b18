"""Bridge mode: feed entries -> ``Post`` values -> the signed objects this site serves.

A bridged entry's object is ``activities.post_object`` of its ``Post`` with this site's id
(``/ap/bridge/<slug>.json``), the entry's own link as ``url`` and no replies/likes/shares
collections.  The diff that decides what is announced is in ``bridge.daemon.bridged_entries``.
"""

import datetime as dt
import hashlib
import json
from typing import Any

import nh3

from bridge.config import SiteConfig
from bridge.federation.context import Context
from bridge.site import activities, importer, proofs
from bridge.site.posts import Post


def object_id(config: SiteConfig, slug: str) -> str:
    return f"{config.base_url}/ap/bridge/{slug}.json"


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
        tags=entry.tags,
        summary=entry.summary,
        draft=False,
        lang=config.language,
        content_warning=None,
        images=(),
        in_reply_to=None,
        fediverse_format=config.fediverse_format,
        body=html,
        html=html,
        digest=digest,
        extra={"original_url": entry.link} if entry.link else {},
    )


def bridged_object(config: SiteConfig, post: Post) -> dict[str, Any]:
    """``activities.post_object`` with our id, the entry's link as ``url`` and no
    replies/likes/shares collections (this site serves none for bridged entries)."""
    obj = activities.post_object(config, post)
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
