"""Pure ActivityStreams 2.0 converters: posts, the actor, collections and activities.

No I/O here.  Facts the shapes rely on (each has a test in tests/site/test_activitypub_docs.py,
which reads the built documents; ids in tests/federation/test_outbox.py):

* ``@context`` includes the ActivityStreams context; Mastodon's own extension terms are
  defined inline so JSON-LD processors (Fedify) keep them: ``manuallyApprovesFollowers``,
  ``sensitive``, ``Hashtag``, ``alsoKnownAs`` (as an ``@id``), ``toot:discoverable``,
  ``schema:PropertyValue`` / ``schema:value`` for profile fields.
* Public posts are addressed ``to`` the full Public IRI and ``cc`` our followers collection.
* An Article shows on Mastodon as name + summary + link, never its body; a Note shows its
  full content.  Images travel as attachments with their alt text in ``name`` (Mastodon
  strips ``<img>`` from content); tags as ``Hashtag`` objects whose name starts with ``#``
  and is one Mastodon accepts (``bridge.site.hashtags``), ``href`` the site's tag page.
* Every id dereferences: object ids are files under ``/ap/`` and equal the URL they are
  served at.  Update, Delete and Move ids are derived from their content and the previous
  activity about the same object (``bridge.site.ledger``): receivers such as Fedify and
  Mastodon drop an activity whose id they have seen, so two edits never share one.
* The actor publishes an RSA key as SPKI PEM (``publicKey``) for HTTP Signatures and an
  Ed25519 ``Multikey`` in ``assertionMethod`` (FEP-521a) for object integrity proofs.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Sequence
from typing import Any

from bridge.config import SiteConfig
from bridge.site import attribution, ledger, quote_card, quote_policy, threads
from bridge.site.hashtags import hashtag_name
from bridge.site.posts import Post, tag_slug

AS = "https://www.w3.org/ns/activitystreams"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
SECURITY = "https://w3id.org/security/v1"
DATA_INTEGRITY = "https://w3id.org/security/data-integrity/v1"
MULTIKEY = "https://w3id.org/security/multikey/v1"
DID = "https://www.w3.org/ns/did/v1"  # defines assertionMethod (FEP-521a)
AP_CONTENT_TYPE = "application/activity+json"

EXTENSIONS: dict[str, Any] = {
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "sensitive": "as:sensitive",
    "Hashtag": "as:Hashtag",
    "alsoKnownAs": {"@id": "as:alsoKnownAs", "@type": "@id"},
    "movedTo": {"@id": "as:movedTo", "@type": "@id"},
    "toot": "http://joinmastodon.org/ns#",
    "discoverable": "toot:discoverable",
    "indexable": "toot:indexable",
    "schema": "http://schema.org#",
    "PropertyValue": "schema:PropertyValue",
    "value": "schema:value",
    "webfinger": {"@id": "https://purl.archive.org/socialweb/webfinger#webfinger"},
    # Mastodon 4.3+ author attribution (bridge/site/attribution.py); pins (featured.py).
    "attributionDomains": {"@id": "toot:attributionDomains", "@type": "@id"},
    "featured": {"@id": "toot:featured", "@type": "@id"},
    **quote_policy.TERMS,  # FEP-044f quote posts
}
CONTEXT: list[Any] = [AS, SECURITY, DATA_INTEGRITY, MULTIKEY, EXTENSIONS]
# The actor also needs the DID context: without it JSON-LD processors (Fedify) drop
# ``assertionMethod`` and cannot find the Ed25519 key that verifies our proofs.
ACTOR_CONTEXT: list[Any] = [AS, SECURITY, DATA_INTEGRITY, DID, MULTIKEY, EXTENSIONS]
# Only on an actor that features tags (the ``featured_tags`` setting).
FEATURED_TAGS_TERM = {"featuredTags": {"@id": "toot:featuredTags", "@type": "@id"}}
# Activities wrap objects: a short context keeps them small; embedded objects carry theirs.
ACTIVITY_CONTEXT: list[Any] = [AS, DATA_INTEGRITY, EXTENSIONS]


def iso(moment: dt.datetime) -> str:
    """UTC ISO 8601 with a ``Z`` and whole seconds, as Mastodon emits."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the actor ------------------------------------------------------------------


def _link_html(value: str) -> str:
    """Profile field values are HTML; a bare URL becomes a rel=me link (verification)."""
    if re.match(r"^https?://\S+$", value):
        shown = re.sub(r"^https?://", "", value).rstrip("/")
        return (
            f'<a href="{html.escape(value)}" rel="me nofollow noopener" target="_blank">'
            f"{html.escape(shown)}</a>"
        )
    return html.escape(value)


def actor(
    config: SiteConfig,
    *,
    public_key_pem: str,
    ed25519_multibase: str,
    published: dt.datetime,
    followers_count: int | None = None,
    moved_to: str | None = None,
) -> dict[str, Any]:
    author = config.author
    bio = author.bio or config.description
    doc: dict[str, Any] = {
        "@context": ACTOR_CONTEXT,
        "id": config.actor_id,
        "type": "Person",
        "preferredUsername": config.username,
        "name": author.name or config.title,
        "summary": f"<p>{html.escape(bio)}</p>" if bio else "",
        "url": config.base_url + "/",
        "inbox": config.inbox_url,
        "outbox": config.outbox_url,
        "followers": config.followers_url,
        "following": config.following_url,
        "endpoints": {"sharedInbox": config.shared_inbox_url},
        "manuallyApprovesFollowers": config.manually_approves_followers,
        "discoverable": config.discoverable,
        "indexable": config.discoverable,
        "published": iso(published),
        "webfinger": f"{config.username}@{config.host}",
        "publicKey": {
            "id": config.key_id,
            "owner": config.actor_id,
            "publicKeyPem": public_key_pem,
        },
        "assertionMethod": [
            {
                "id": config.ed25519_key_id,
                "type": "Multikey",
                "controller": config.actor_id,
                "publicKeyMultibase": ed25519_multibase,
            }
        ],
        "attachment": [
            {"type": "PropertyValue", "name": f.name, "value": _link_html(f.value)}
            for f in author.fields
        ],
        "alsoKnownAs": list(config.also_known_as),
        "attributionDomains": attribution.domains(config),
        "featured": config.featured_url,
    }
    if moved_to:  # after ``indiebridge move``: Mastodon shows a redirect banner
        doc["movedTo"] = moved_to
    if config.featured_tags:  # Mastodon's featured hashtags (bridge/site/featured.py)
        doc["@context"] = [*ACTOR_CONTEXT, FEATURED_TAGS_TERM]
        doc["featuredTags"] = config.featured_tags_url
    if author.avatar:
        url = absolute(config, author.avatar)
        doc["icon"] = {"type": "Image", "mediaType": media_type(url), "url": url}
    return doc


def absolute(config: SiteConfig, url: str) -> str:
    if url.startswith(("http://", "https://")):
        return url
    return config.base_url + "/" + url.lstrip("/")


def media_type(url: str) -> str:
    ext = url.rsplit(".", 1)[-1].lower()
    return {
        "png": "image/png",
        "gif": "image/gif",
        "webp": "image/webp",
        "svg": "image/svg+xml",
        "avif": "image/avif",
    }.get(ext, "image/jpeg")


# ---- posts ------------------------------------------------------------------------


_TAG_RE = re.compile(r"<[^>]+>")


def excerpt(post: Post, limit: int = 280) -> str:
    """The post's summary, or the first words of its text."""
    if post.summary:
        return post.summary
    text = html.unescape(_TAG_RE.sub(" ", post.html))
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + "…"


def post_collections(config: SiteConfig, slug: str) -> dict[str, str]:
    base = f"{config.base_url}/ap/posts/{slug}"
    return {
        "replies": f"{base}/replies.json",
        "likes": f"{base}/likes.json",
        "shares": f"{base}/shares.json",
    }


def post_object(
    config: SiteConfig,
    post: Post,
    *,
    mentions: Sequence[tuple[str, str]] = (),
    object_id: str | None = None,
) -> dict[str, Any]:
    """The Article or Note for a post.

    ``mentions`` are (actor id, @handle) pairs learnt when the post replies to a fediverse
    post: the author is tagged and addressed so the reply threads and notifies.
    ``object_id`` is the post's current id (``Ledger.object_id``), by default its first.
    """
    url = config.post_url(post.slug)
    ap_id = object_id or config.post_ap_id(post.slug)
    obj: dict[str, Any] = {
        "@context": CONTEXT,
        "id": ap_id,
        "type": post.as_type,
        "attributedTo": config.actor_id,
        "url": url,
        "published": iso(post.date),
        "to": [PUBLIC],
        "cc": list(dict.fromkeys([config.followers_url, *[m[0] for m in mentions]])),
    }
    if post.mentions:  # mentioned in the text (bridge.site.mentions): tagged and addressed
        obj["cc"] = list(dict.fromkeys([*obj["cc"], *[m[0] for m in post.mentions]]))
    if post.updated and post.updated > post.date:
        obj["updated"] = iso(post.updated)
    body = post.html
    mention_html = " ".join(
        f'<span class="h-card"><a href="{html.escape(a)}" class="u-url mention">'
        f"{html.escape(h)}</a></span>"
        for a, h in mentions
    )
    if mention_html:
        body = f"<p>{mention_html}</p>{body}"
    if post.as_type == "Article":
        obj["name"] = post.title
        obj["content"] = body
        obj["summary"] = post.content_warning or excerpt(post)
    else:
        if post.title:  # a titled post federated as a Note: title first, link back last
            body = (
                f"<p><strong>{html.escape(post.title)}</strong></p>{body}"
                f'<p><a href="{html.escape(url)}">{html.escape(url)}</a></p>'
            )
        obj["content"] = body
        if post.content_warning:
            obj["summary"] = post.content_warning
    obj["sensitive"] = bool(post.content_warning)
    obj["contentMap"] = {post.lang: obj["content"]}
    tags: list[dict[str, str]] = [
        {
            "type": "Hashtag",
            "name": "#" + _hashtag(post, tag),
            "href": config.tag_url(tag_slug(tag)),
        }
        for tag in post.tags
    ]
    tags += [{"type": "Mention", "name": h, "href": a} for a, h in mentions]
    tags += [
        {"type": "Mention", "name": h, "href": a}
        for a, h in post.mentions
        if a not in {m[0] for m in mentions}
    ]
    obj["tag"] = tags
    obj["attachment"] = [
        {"type": "Image", "mediaType": img.media_type, "url": img.url, "name": img.alt}
        for img in post.images
    ]
    if post.in_reply_to:
        obj["inReplyTo"] = post.in_reply_to
    obj["interactionPolicy"] = quote_policy.interaction_policy(config)
    obj["context"] = threads.context_url(config, post.slug)  # FEP-7888
    obj.update(post_collections(config, post.slug))
    return quote_card.with_quote(obj, post)  # quote_of (FEP-044f)


def _hashtag(post: Post, tag: str) -> str:
    name = hashtag_name(tag)
    if name is None:  # content.load refuses such a tag with a one-line error
        raise ValueError(f"{post.source}: tag {tag!r} has no valid hashtag name")
    return name


def create(config: SiteConfig, obj: dict[str, Any]) -> dict[str, Any]:
    """The Create that first announced an object; its id is stable (``.../create.json``)."""
    return {
        "@context": ACTIVITY_CONTEXT,
        "id": ledger.create_id(obj["id"]),
        "type": "Create",
        "actor": config.actor_id,
        "published": obj["published"],
        "to": obj["to"],
        "cc": obj["cc"],
        "object": obj,
    }


def _with_id(activity: dict[str, Any], base: str, kind: str, previous: str) -> dict[str, Any]:
    return {
        "@context": activity["@context"],
        "id": ledger.activity_id(base, kind, activity, previous),
        **activity,
    }


def update(
    config: SiteConfig, obj: dict[str, Any], moment: dt.datetime, *, previous: str = ""
) -> dict[str, Any]:
    """An Update whose id is derived from its content and the ``previous`` activity about
    the object (``ledger.activity_id``); ``object.updated`` must be set (Mastodon 3.5+)."""
    obj = dict(obj)
    obj.setdefault("updated", iso(moment))
    activity = {
        "@context": ACTIVITY_CONTEXT,
        "type": "Update",
        "actor": config.actor_id,
        "published": iso(moment),
        "to": obj["to"],
        "cc": obj["cc"],
        "object": obj,
    }
    return _with_id(activity, obj["id"], "updates", previous)


def delete(
    config: SiteConfig, object_id: str, moment: dt.datetime, *, previous: str = ""
) -> dict[str, Any]:
    activity = {
        "@context": ACTIVITY_CONTEXT,
        "type": "Delete",
        "actor": config.actor_id,
        "published": iso(moment),
        "to": [PUBLIC],
        "cc": [config.followers_url],
        "object": {"id": object_id, "type": "Tombstone"},
    }
    return _with_id(activity, object_id, "delete", previous)


def tombstone(object_id: str, former_type: str, deleted: dt.datetime) -> dict[str, Any]:
    return {
        "@context": AS,
        "id": object_id,
        "type": "Tombstone",
        "formerType": former_type,
        "deleted": iso(deleted),
    }


def actor_update(
    config: SiteConfig, actor_doc: dict[str, Any], moment: dt.datetime, *, previous: str = ""
) -> dict[str, Any]:
    activity = {
        "@context": ACTIVITY_CONTEXT,
        "type": "Update",
        "actor": config.actor_id,
        "published": iso(moment),
        "to": [PUBLIC],
        "cc": [config.followers_url],
        "object": actor_doc,
    }
    return _with_id(activity, config.actor_id, "updates", previous)


def accept(
    config: SiteConfig, follow: dict[str, Any], accept_id: str, kind: str = "Accept"
) -> dict[str, Any]:
    """Accept (or Reject) embedding the original Follow with its original id."""
    embedded = {
        "id": follow["id"],
        "type": "Follow",
        "actor": follow["actor"],
        "object": config.actor_id,
    }
    return {
        "@context": ACTIVITY_CONTEXT,  # defines ``proof``: JSON-LD verifiers keep it
        "id": accept_id,
        "type": kind,
        "actor": config.actor_id,
        "to": [follow["actor"]],
        "object": embedded,
    }


def move(
    config: SiteConfig, target: str, moment: dt.datetime, *, previous: str = ""
) -> dict[str, Any]:
    activity = {
        "@context": ACTIVITY_CONTEXT,
        "type": "Move",
        "actor": config.actor_id,
        "object": config.actor_id,
        "target": target,
        "published": iso(moment),
        "to": [config.followers_url],
    }
    return _with_id(activity, config.actor_id, "move", previous)


# ---- collections -------------------------------------------------------------------
