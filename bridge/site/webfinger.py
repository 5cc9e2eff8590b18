"""WebFinger, host-meta and NodeInfo for the single actor: pure builders.

Facts relied on (tests/site/test_activitypub_docs.py checks each; the daemon's
answers in tests/e2e/test_webfinger.py):

* Mastodon requires a non-blank ``subject`` and a ``self`` link typed
  ``application/activity+json`` whose ``href`` equals the actor id exactly; it then
  WebFingers ``preferredUsername@<actor host>`` back and needs the same answer.
* A static host ignores the query string, so one file answers every ``resource=``; the
  daemon answers dynamically and returns 404 for anyone else.
* RFC 7033 section 4.2: a ``resource`` that is absent or malformed gets 400 Bad Request.
  It must be a URI (RFC 3986: ``scheme ":" ...``, the scheme a letter then letters,
  digits, ``+ - .``), so ``user@host`` without ``acct:`` and ``=acct:user@host`` (from
  ``resource==acct:...``) are 400, as is an ``acct:`` URI without ``user@host`` (RFC 7565)
  and an http(s) URI without a host; a well-formed URI of someone else is 404.
* host-meta is only read after a 404 from WebFinger: an XRD with an ``lrdd`` template.
* No FEP-3b86 Activity Intents and no OStatus ``subscribe`` template
  (tests/federation/test_fep_3b86.py).  FEP-3b86 defines a "Home Server" as "the location where a
  user is logged in, and that publishes the Actor's Activity Intents via WebFinger", and each
  intent as "the API endpoint where the current user can" follow, like, create...  The blog
  is nobody's place to log in: no page of it lets its owner, or anyone, follow, like or post
  through a browser (the owner writes files and runs commands), and ``/interact`` does the
  opposite job (it sends a *reader* to *their* server, for the blog's own objects only).
  A site that asked a visitor for a handle and got the blog's would be sent to a page that
  cannot act for them.  Readers' servers offer their own intents, which ``/interact`` uses
  (``bridge.federation.remote_interaction``).
* NodeInfo 2.1: ``/.well-known/nodeinfo`` links the document; software name lowercase.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from bridge import __version__
from bridge.config import SiteConfig
from bridge.site.activities import AP_CONTENT_TYPE
from bridge.site.xmltext import quoteattr

NODEINFO_21 = "http://nodeinfo.diaspora.software/ns/schema/2.1"
NODEINFO_20 = "http://nodeinfo.diaspora.software/ns/schema/2.0"


def acct(config: SiteConfig) -> str:
    return f"acct:{config.username}@{config.host}"


def jrd(config: SiteConfig) -> dict[str, Any]:
    return {
        "subject": acct(config),
        "aliases": [config.base_url + "/", config.actor_id],
        "links": [
            {"rel": "self", "type": AP_CONTENT_TYPE, "href": config.actor_id},
            {
                "rel": "http://webfinger.net/rel/profile-page",
                "type": "text/html",
                "href": config.base_url + "/",
            },
        ],
    }


def matches(config: SiteConfig, resource: str) -> bool:
    """True when ``resource`` names our actor: ``acct:user@host`` (any case) or its URLs."""
    resource = resource.strip()
    if resource.lower().startswith("acct:"):
        name = resource[5:].lstrip("@")
        return name.lower() == f"{config.username}@{config.host}".lower()
    return resource in (config.actor_id, config.base_url, config.base_url + "/")


_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_ACCT = re.compile(r"acct:[^@\s]+@[^@\s]+", re.IGNORECASE)


def resource_status(config: SiteConfig, resource: str | None) -> tuple[int, str]:
    """(HTTP status, error or ``""``) for a WebFinger ``resource``: 200 ours, 400 missing or
    malformed (RFC 7033 section 4.2), 404 a well-formed URI that is not ours."""
    if resource is None or not resource.strip():
        return 400, "resource parameter required"
    if not _URI.fullmatch(resource):
        return 400, f"resource {resource!r} is not a URI (expected acct:user@host)"
    scheme = resource.split(":", 1)[0].lower()
    if scheme == "acct" and not _ACCT.fullmatch(resource):
        return 400, f"resource {resource!r} is not an acct:user@host URI"
    if scheme in ("http", "https") and not urlsplit(resource).netloc:
        return 400, f"resource {resource!r} has no host"
    if not matches(config, resource):
        return 404, "no such account"
    return 200, ""


def host_meta(config: SiteConfig) -> str:
    template = f"{config.base_url}/.well-known/webfinger?resource={{uri}}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" template={quoteattr(template)}/>\n'
        "</XRD>\n"
    )


def nodeinfo_links(config: SiteConfig) -> dict[str, Any]:
    return {
        "links": [
            {"rel": NODEINFO_21, "href": f"{config.base_url}/nodeinfo/2.1"},
            {"rel": NODEINFO_20, "href": f"{config.base_url}/nodeinfo/2.0"},
        ]
    }


def nodeinfo(config: SiteConfig, *, posts: int, version: str = "2.1") -> dict[str, Any]:
    software: dict[str, str] = {"name": "indiebridge", "version": __version__}
    if version == "2.1":
        software["repository"] = "https://github.com/indiebridge/indiebridge"
        software["homepage"] = "https://github.com/indiebridge/indiebridge"
    return {
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": ["atom1.0"]},
        "openRegistrations": False,
        "usage": {
            "users": {"total": 1, "activeMonth": 1, "activeHalfyear": 1},
            "localPosts": posts,
        },
        "metadata": {"nodeName": config.title, "nodeDescription": config.description},
    }
