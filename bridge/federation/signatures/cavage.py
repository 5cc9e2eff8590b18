"""draft-cavage-http-signatures-12: the ``Signature: keyId=...,headers=...,signature=...`` scheme.

What Mastodon and nearly every fediverse server send and accept.  Facts relied on (tests in
tests/federation/test_signatures.py):

* We sign a POST's ``(request-target) host date digest`` with ``Digest: SHA-256=<base64>``,
  a GET's ``(request-target) host date``; ``algorithm`` is ``rsa-sha256`` (``hs2019`` for an
  Ed25519 key).  Mastodon rejects a POST whose ``digest`` is not signed and a GET whose
  ``host`` is not signed.
* Verifying follows Mastodon (``SignedRequest::HttpSignature``): ``keyId`` and ``signature``
  are required; ``algorithm`` defaults to ``hs2019``; only ``rsa-sha256`` and ``hs2019`` are
  accepted (HMAC is refused); ``headers`` defaults to ``date``.  ``date`` or ``(created)``
  must be signed; ``(request-target)`` or a digest must be signed; ``(created)``/``(expires)``
  only with hs2019.
* Every request must sign ``host``: Mastodon asks it of a GET; we ask it of a POST too, so
  that a request signed for another server cannot be replayed here.  When the verifier is
  told our authority (the inbox passes ``federation_url``'s host), the signed host must be
  it (port included, default ports and a trailing dot ignored).
* A POST must sign its body digest: ``digest`` (a comma list, algorithm names compared
  case-insensitively, SHA-256 or SHA-512 of the raw body) or ``content-digest`` (RFC 9530,
  ``sha-256=:<base64>:``), which servers moving to RFC 9421 send with cavage signatures
  too (issue 11 of the project; Fedify 1.x, ``fedify/sig/http.ts``, writes
  ``Content-Digest`` for both schemes).  Whichever is signed must match the body.
* ``(request-target)`` is ``<lowercase method> <path>?<query>``; if that does not verify, the
  same signature is tried without the query string (Mastodon does the same for servers that
  drop it).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bridge.errors import SignatureError
from bridge.federation.signatures.common import (
    KeyLookup,
    PrivateKey,
    PublicKey,
    Received,
    Verified,
    b64,
    b64decode,
    check_content_digest,
    check_digest,
    digest_header,
    ed25519,
    http_date,
    parse_http_date,
    rsa_pkcs1_sha256,
    sign_bytes,
    timestamp,
    verify_with_key,
)

_ESCAPE = re.compile(r"\\(.)")
_PARAM = re.compile(
    r"[ \t]*([A-Za-z][A-Za-z0-9_-]*)[ \t]*=[ \t]*"  # name =
    r'(?:"((?:[^"\\]|\\.)*)"|([0-9]+(?:\.[0-9]+)?))[ \t]*'  # "quoted" or a number
)
_DIGEST_HEADERS = ("digest", "content-digest")


def quoted(value: str, what: str) -> str:
    if '"' in value or "\\" in value or "\n" in value:
        raise ValueError(f"{what} may not contain quotes, backslashes or newlines: {value!r}")
    return value


def sign(request: httpx.Request, key: PrivateKey, key_id: str, now: dt.datetime) -> None:
    """Add ``Date``, ``Digest`` (unless a bodiless GET/HEAD) and ``Signature`` to ``request``."""
    date = http_date(now)
    request.headers["Date"] = date
    host = request.headers.get("Host") or request.url.netloc.decode("ascii")
    values = {
        "(request-target)": f"{request.method.lower()} {request.url.raw_path.decode('ascii')}",
        "host": host,
        "date": date,
    }
    body = request.content
    if body or request.method.upper() not in ("GET", "HEAD"):
        values["digest"] = request.headers["Digest"] = digest_header(body)
    signing_string = "\n".join(f"{name}: {value}" for name, value in values.items())
    signature = sign_bytes(key, signing_string.encode("utf-8"))
    algorithm = "hs2019" if isinstance(key, Ed25519PrivateKey) else "rsa-sha256"
    request.headers["Signature"] = (
        f'keyId="{quoted(key_id, "keyId")}",algorithm="{algorithm}",'
        f'headers="{" ".join(values)}",signature="{b64(signature)}"'
    )


def parse(value: str) -> dict[str, str]:
    """The parameters of a ``Signature`` header (names lower-cased); 400 when malformed."""
    params: dict[str, str] = {}
    pos = 0
    while True:
        match = _PARAM.match(value, pos)
        if not match:
            raise SignatureError(f"malformed Signature header at {value[pos : pos + 30]!r}", 400)
        name = match.group(1).lower()
        if name in params:
            raise SignatureError(f"malformed Signature header: {name} given twice", 400)
        quoted_value = match.group(2)
        if quoted_value is None:
            params[name] = match.group(3)
        elif "\\" in quoted_value:  # an escape: rare (a re.sub each was 3 % of the inbox)
            params[name] = _ESCAPE.sub(r"\1", quoted_value)
        else:
            params[name] = quoted_value
        pos = match.end()
        if pos == len(value):
            return params
        if value[pos] != ",":
            raise SignatureError(f"malformed Signature header at {value[pos : pos + 30]!r}", 400)
        pos += 1


def _check_rules(
    received: Received, signed: list[str], algorithm: str, params: dict[str, str]
) -> None:
    """The coverage rules (module docstring); raises the first one broken."""
    method = received.method
    if "date" not in signed and "(created)" not in signed:
        raise SignatureError("signature must cover date or (created)", 401)
    digests = [name for name in _DIGEST_HEADERS if name in signed]
    if "(request-target)" not in signed and not digests:
        raise SignatureError("signature must cover (request-target) or digest", 401)
    if "host" not in signed:
        raise SignatureError(f"a {method} signature must cover host", 401)
    if received.has_body and not digests:
        raise SignatureError(f"a {method} signature must cover digest", 401)
    pseudo = [name for name in ("(created)", "(expires)") if name in signed]
    if pseudo and algorithm != "hs2019":
        raise SignatureError(f"{pseudo[0]} may only be signed with algorithm hs2019", 401)
    for name in pseudo:
        if name[1:-1] not in params:
            raise SignatureError(f"{name} is signed but the {name[1:-1]} parameter is missing", 400)


def _check_values(received: Received, signed: list[str], params: dict[str, str]) -> None:
    """Window, expiry, signed host and body digests."""
    if "(created)" in signed:
        signed_at = timestamp(params["created"], "created")
        received.window.check(signed_at, received.now, "signature (created)")
    if "date" in signed:
        signed_at = parse_http_date(received.headers.get("date"))
        received.window.check(signed_at, received.now, "Date header")
    if "(expires)" in signed and timestamp(params["expires"], "expires") < received.now:
        raise SignatureError("signature has expired ((expires) is in the past)", 401)
    host = received.headers.get("host") or received.target.authority
    received.check_authority(host, "the signed host header")
    if "digest" in signed:
        check_digest(received.headers.get("digest"), received.body)
    if "content-digest" in signed:
        check_content_digest(received.headers.get("content-digest"), received.body)


def signing_string(
    signed: list[str], received: Received, request_target: str, params: Mapping[str, str]
) -> str:
    """The string a cavage signature covers, rebuilt from the request."""
    lines = []
    headers = received.headers
    for name in signed:
        if name == "(request-target)":
            value = f"{received.method.lower()} {request_target}"
        elif name in ("(created)", "(expires)"):
            value = params[name[1:-1]]
        elif name == "host":
            value = headers.get("host") or received.target.authority
        elif name in headers:
            value = headers[name]
        else:
            raise SignatureError(f"signed header {name!r} is missing from the request", 401)
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


async def verify(received: Received, raw: str, lookup: KeyLookup) -> Verified:
    """Verify the cavage signature ``raw`` (the ``Signature`` header's value)."""
    params = parse(raw)
    key_id = params.get("keyid")
    if not key_id or not params.get("signature"):
        raise SignatureError("Signature header needs keyId and signature", 400)
    signature = b64decode(params["signature"], "signature")
    algorithm = params.get("algorithm", "hs2019").lower()
    if algorithm not in ("rsa-sha256", "hs2019"):
        raise SignatureError(
            f"unsupported signature algorithm {algorithm!r} (use rsa-sha256 or hs2019)", 401
        )
    signed = params.get("headers", "date").lower().split()
    if not signed:
        raise SignatureError("Signature header lists no headers", 400)
    _check_rules(received, signed, algorithm, params)
    _check_values(received, signed, params)

    target = received.target
    targets = [target.request_target]
    if target.query is not None:
        targets.append(target.path)  # Mastodon's compat fallback: without the query string
    candidates = [signing_string(signed, received, t, params).encode("utf-8") for t in targets]

    def check(key: PublicKey) -> str | None:
        for data in candidates:
            if algorithm == "hs2019" and ed25519(key, signature, data):
                return "ed25519"
            if rsa_pkcs1_sha256(key, signature, data):
                return "rsa-sha256"
        return None

    info, used = await verify_with_key(lookup, key_id, check)
    return Verified(key_id=key_id, owner=info.owner, scheme="cavage", algorithm=used)
