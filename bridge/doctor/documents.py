"""Doctor checks for the documents: the actor, a sample post, its proof, the outbox, caching.

Facts relied on, with their public sources:

* Actor and objects: since Mastodon 4.2.5 (GHSA-3fjr-858r-92rw) a document served with any
  type but ``application/activity+json`` or ``application/ld+json; profile="...activitystreams"``
  is ignored, and its ``id`` must equal the URL it was fetched from (Mastodon's
  ``fetch_resource`` and ``valid_activitypub_content_type?``).  A pasted page URL resolves
  through content negotiation or, failing that, the page's ``<link rel="alternate"
  type="application/activity+json">`` (``FetchResourceService``).
* Caching: an Update or Delete changes the documents at their URLs; a CDN or browser
  cache that keeps them longer than an hour hides the change from servers refetching them.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bridge import keys
from bridge.doctor.findings import Finding, failure, ok, warning
from bridge.doctor.responses import (
    AP_JSON,
    Expect,
    base_of,
    is_activitypub,
    json_object,
    media_type,
    type_label,
    url_of,
    verdict,
)
from bridge.errors import SignatureError
from bridge.site import proofs

MAX_CACHE_SECONDS = 3600
FIX_AP_TYPE = (
    "nginx: `types { } default_type application/activity+json;` in `location /ap/`; "
    "Caddy: `header @ap >Content-Type application/activity+json`"
)


def document(check: str, response: httpx.Response, *, url: str = "") -> Finding:
    """An ActivityPub document: 200, the AP content type, and ``id`` equal to its URL."""
    url = url or url_of(response)
    if response.status_code != 200:
        return failure(
            check,
            f"{url} answered {response.status_code}",
            "upload the whole public/ folder, or proxy /ap/ to the daemon",
        )
    if not is_activitypub(response):
        return failure(
            check,
            f"{url} is served as {type_label(response)}; Mastodon ignores it",
            FIX_AP_TYPE,
        )
    doc = json_object(response)
    if doc is None:
        return failure(check, f"{url} is not a JSON object", "rebuild and upload public/")
    if doc.get("id") != url:
        return failure(
            check,
            f"id {doc.get('id')} differs from the URL it was fetched from, {url}",
            f'set base_url = "{base_of(url)}" in site.toml, rebuild and upload public/',
        )
    return ok(check, f"{url} ({media_type(response)})")


def actor(expect: Expect, response: httpx.Response) -> Finding:
    found = document("actor", response)
    if found.level != "ok":
        return found
    doc = json_object(response) or {}
    problems: list[Finding] = []
    key = doc.get("publicKey") if isinstance(doc.get("publicKey"), dict) else {}
    key_id = key.get("id") if key else None
    if not isinstance(key_id, str) or not key_id.startswith(str(doc["id"]) + "#"):
        problems.append(
            failure("actor", f"publicKey id {key_id} is not {expect.key_id}", "rebuild the site")
        )
    try:
        load_pem_public_key(str((key or {}).get("publicKeyPem", "")).encode())
    except ValueError:
        problems.append(
            failure(
                "actor",
                "publicKey has no valid publicKeyPem",
                "check .indiebridge/keys/ and rebuild (`indiebridge keys show`)",
            )
        )
    if doc.get("preferredUsername") != expect.username:
        problems.append(
            failure(
                "actor",
                f"preferredUsername is {doc.get('preferredUsername')!r}, not {expect.username!r}",
                "rebuild and upload public/",
            )
        )
    return verdict("actor", problems, f"{found.message}, key {key_id}")


def post_page(check: str, response: httpx.Response) -> Finding:
    """A post's HTML URL fetched with the ActivityPub Accept header."""
    url = url_of(response)
    if response.status_code == 200 and media_type(response) == "text/html":
        return ok(check, f"{url} answers HTML; servers follow its alternate link")
    if response.status_code == 200 and is_activitypub(response):
        return ok(check, f"{url} answers its AS2 document by content negotiation")
    if response.status_code == 200 and json_object(response) is not None:
        return failure(check, f"{url} answers JSON as {type_label(response)}", FIX_AP_TYPE)
    return failure(
        check, f"{url} answered {response.status_code}", "upload the whole public/ folder"
    )


def post_document(html: httpx.Response, response: httpx.Response | None) -> Finding:
    """The AS2 document named by a post page's alternate link: type, id and url."""
    check = "post"
    if response is None:
        return failure(
            check,
            f"{url_of(html)} has no <link rel=alternate type={AP_JSON}>",
            "rebuild the site with the default templates (the alternate link is in base.html)",
        )
    found = document(check, response)
    if found.level != "ok":
        return found
    doc = json_object(response) or {}
    if doc.get("url") not in (url_of(html), None):
        return failure(
            check,
            f"url {doc.get('url')} is not the page {url_of(html)}",
            "rebuild and upload public/",
        )
    return ok(check, f"{url_of(html)} -> {found.message}")


def proof(document_: dict[str, Any], actor_doc: dict[str, Any]) -> Finding:
    """The FEP-8b32 proof of a post, checked with the actor's published Ed25519 key."""
    method = (document_.get("proof") or {}).get("verificationMethod")
    published = [
        m
        for m in actor_doc.get("assertionMethod") or []
        if isinstance(m, dict) and m.get("id") == method
    ]
    if not method or not published:
        return failure(
            "proofs",
            f"the post's proof names {method}, which the actor does not publish",
            "rebuild and upload public/ (actor and posts together)",
        )
    try:
        key = keys.ed25519_from_multibase(str(published[0].get("publicKeyMultibase", "")))
        proofs.verify_object(document_, key)
    except (ValueError, SignatureError) as exc:
        return failure(
            "proofs", f"the post's proof does not verify: {exc}", "rebuild and upload public/"
        )
    return ok("proofs", f"eddsa-jcs-2022 proof verifies with {method}")


def outbox(
    collection: httpx.Response, page: httpx.Response | None, items: list[httpx.Response]
) -> Finding:
    """The outbox, its first page, and its first items fetched by their ids."""
    found = document("outbox", collection)
    if found.level != "ok":
        return found
    doc = json_object(collection) or {}
    if page is None:
        return failure(
            "outbox", f"{url_of(collection)} names no first page", "rebuild and upload public/"
        )
    first = document("outbox", page)
    if first.level != "ok":
        return first
    if not isinstance((json_object(page) or {}).get("orderedItems"), list):
        return failure("outbox", f"{url_of(page)} has no orderedItems", "rebuild the site")
    for item in items:
        dereferenced = document("outbox", item)
        if dereferenced.level != "ok":
            return Finding("outbox", "failure", "item " + dereferenced.message, dereferenced.fix)
    return ok(
        "outbox",
        f"{doc.get('totalItems')} items, paged from {url_of(page)}; {len(items)} fetched by id",
    )


def cache(responses: list[httpx.Response]) -> Finding:
    """No document cached so long that an Update or Delete stays hidden."""
    for response in responses:
        control = response.headers.get("cache-control", "").lower()
        ages = [int(v) for v in re.findall(r"(?:s-)?max-age=(\d+)", control)]
        if "immutable" in control or any(age > MAX_CACHE_SECONDS for age in ages):
            return warning(
                "cache",
                f"{url_of(response)} is cached ({control}); Updates and Deletes stay hidden",
                f"send at most `Cache-Control: max-age={MAX_CACHE_SECONDS}` for pages and /ap/",
            )
    return ok("cache", f"no page or document cached longer than {MAX_CACHE_SECONDS} s")
