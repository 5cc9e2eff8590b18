"""HTTP Signatures, both ways: signing our requests and verifying the ones we receive.

Two schemes are spoken, one module each:

* ``cavage``: draft-cavage-12 (``Signature: keyId=...,algorithm=...,headers=...``), what
  Mastodon and nearly every fediverse server send and accept;
* ``rfc9421``: RFC 9421 HTTP Message Signatures (``Signature-Input`` + ``Signature``), with
  the body bound by an RFC 9530 ``Content-Digest``.  Mastodon verifies it (4.5+) but never
  sends it.

``common`` holds what both share (the ``Received`` request, digests, the time window, key
checks); ``auth`` signs as an ``httpx.Auth`` with double-knocking.  This module is the
public API and the dispatch.  Facts relied on here (tests in tests/federation/test_signatures.py):

* RFC 9421 is recognised by the presence of ``Signature-Input``; otherwise the cavage
  ``Signature`` header is read, or ``Authorization: Signature ...``.
* Window: the moment of signing (``Date`` or ``(created)``/``created``) must lie within
  ``[now - max_age, now + max_future]``, by default one hour back and five minutes ahead.
  Mastodon accepts about 65 minutes back and one hour ahead, so what it sends passes here.
* When the looked-up key does not verify, the key is looked up once more with
  ``refresh=True`` (the sender may have rotated it) before the request is refused.
* Refusals are ``SignatureError`` with status 401, except malformed signature headers (400).
  The message says what failed (the computed digest, the clock skew...), which is what a
  remote admin needs when debugging.

Why not the ``http-message-signatures`` package: its verifier resolves keys synchronously
(ours come from an async fetch with a refresh-and-retry on rotation), reads the wall clock
itself with a fixed skew (we need an injectable ``now`` and Mastodon's asymmetric window),
fixes the algorithm per verifier instead of taking it from ``alg`` or the key type, refuses
several signatures without a tag, and its HTTPX integration targets ``httpx2``.  Structured
fields are parsed with ``http-sf``; all cryptography is ``cryptography``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from bridge.errors import SignatureError
from bridge.federation.signatures import cavage, rfc9421
from bridge.federation.signatures.auth import (
    HTTPSignatureAuth,
    SchemeMemory,
    SchemeSetting,
    origin_of,
    sign_request,
)
from bridge.federation.signatures.common import (
    KeyLookup,
    PrivateKey,
    PublicKey,
    PublicKeyInfo,
    Received,
    Scheme,
    Target,
    Verified,
    Window,
    content_digest_header,
    digest_header,
    http_date,
    utcnow,
)

__all__ = [
    "HTTPSignatureAuth",
    "KeyLookup",
    "PrivateKey",
    "PublicKey",
    "PublicKeyInfo",
    "Received",
    "Scheme",
    "SchemeMemory",
    "SchemeSetting",
    "Target",
    "Verified",
    "Window",
    "content_digest_header",
    "digest_header",
    "http_date",
    "origin_of",
    "sign_request",
    "verify",
    "verify_request",
]


async def verify(received: Received, lookup: KeyLookup) -> Verified:
    """Verify ``received`` with the scheme it uses; raise ``SignatureError`` when it fails."""
    headers = received.headers
    if "signature-input" in headers:
        return await rfc9421.verify(received, lookup)
    raw = headers.get("signature")
    if raw is None:
        authorization = headers.get("authorization", "")
        if authorization[:10].lower() == "signature ":
            raw = authorization[10:]
    if raw is None:
        raise SignatureError("request is not signed", 401)
    return await cavage.verify(received, raw, lookup)


async def verify_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup: KeyLookup,
    *,
    now: dt.datetime | None = None,
    max_age: int = 3600,
    max_future: int = 300,
    authority: str = "",
) -> Verified:
    """Verify the HTTP signature of a received request.

    ``url`` is the request URL as the sender addressed it (scheme, host, raw path and query;
    a bare path is completed with ``https`` and the ``Host`` header).  ``headers`` may be a
    Starlette ``Headers``, an ``httpx.Headers`` or any mapping.  ``body`` is the raw body.
    ``authority``, when given, is our own host (``federation_url``'s): a request signed for
    any other host is refused.

    Returns who signed; raises ``SignatureError`` (401, or 400 for malformed headers).
    """
    received = Received.build(
        method,
        url,
        headers,
        body,
        utcnow() if now is None else now,
        Window(max_age, max_future),
        authority,
    )
    return await verify(received, lookup)
