"""RFC 9421 HTTP Message Signatures (``Signature-Input`` + ``Signature``).

The body is bound by an RFC 9530 ``Content-Digest``.  Mastodon verifies this scheme (4.5+)
but never sends it.  Facts relied on (tests in tests/federation/test_signatures.py):

* We sign ``("@method" "@target-uri" "content-digest")`` (GET: without the digest) with
  ``created``, ``keyid`` and ``alg="rsa-v1_5-sha256"`` under the label ``sig1``.
* Verifying uses one signature: the first label whose components satisfy the rules:
  ``created`` and ``keyid`` present, ``@method`` and ``@target-uri`` (or ``@authority`` with
  ``@path``/``@request-target``) covered and, on a POST, ``content-digest`` covered and
  matching the body.
* The covered authority (``@authority``, or the host of ``@target-uri``) must be our own
  host when the verifier is told it: a request signed for another server is refused.
* Without ``alg``, the key type decides (RSA: PKCS#1 v1.5 first, then PSS).
* The signature base (section 2.5) of the RFC's own example B.2.6 gives the RFC's signature.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import http_sf
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bridge.errors import SignatureError
from bridge.federation.signatures.common import (
    KeyLookup,
    PrivateKey,
    PublicKey,
    Received,
    Target,
    Verified,
    check_content_digest,
    content_digest_header,
    ed25519,
    http_date,
    parse_sf,
    rsa_pkcs1_sha256,
    rsa_pss_sha512,
    sign_bytes,
    timestamp,
    verify_with_key,
)

LABEL = "sig1"
ALGORITHMS = ("rsa-v1_5-sha256", "rsa-pss-sha512", "ed25519")
_VERIFIERS = {
    "rsa-v1_5-sha256": rsa_pkcs1_sha256,
    "rsa-pss-sha512": rsa_pss_sha512,
    "ed25519": ed25519,
}
_SF_DICTIONARY_FIELDS = frozenset(
    {"content-digest", "repr-digest", "signature", "signature-input", "accept-signature"}
)

Component = tuple[str, dict[str, Any]]


def serialize_member(member: Any) -> str:
    """Serialization of one dictionary member value (item or inner list) with its params."""
    text = http_sf.ser({"k": member})
    return text[2:] if text.startswith("k=") else "?1" + text[1:]


def sign(request: httpx.Request, key: PrivateKey, key_id: str, now: dt.datetime) -> None:
    """Add ``Date``, ``Content-Digest`` (unless a bodiless GET/HEAD) and the signature."""
    request.headers["Date"] = http_date(now)  # not covered; keeps every attempt's Date fresh
    components: list[Component] = [("@method", {}), ("@target-uri", {})]
    values = [request.method.upper(), str(request.url)]
    body = request.content
    if body or request.method.upper() not in ("GET", "HEAD"):
        digest = request.headers["Content-Digest"] = content_digest_header(body)
        components.append(("content-digest", {}))
        values.append(digest)
    alg = "ed25519" if isinstance(key, Ed25519PrivateKey) else "rsa-v1_5-sha256"
    params: dict[str, Any] = {"created": int(now.timestamp()), "keyid": key_id, "alg": alg}
    member: Any = (components, params)
    lines = [f"{http_sf.ser(c)}: {v}" for c, v in zip(components, values, strict=True)]
    lines.append(f'"@signature-params": {serialize_member(member)}')
    signature = sign_bytes(key, "\n".join(lines).encode("utf-8"))
    request.headers["Signature-Input"] = http_sf.ser({LABEL: member})
    request.headers["Signature"] = http_sf.ser({LABEL: (signature, {})})


def _components(label: str, member: Any) -> list[Component]:
    """The covered components of a Signature-Input member; 400 when it is not an inner list."""
    if not (isinstance(member, tuple) and len(member) == 2 and isinstance(member[0], list)):
        raise SignatureError(f"Signature-Input member {label!r} is not an inner list", 400)
    out: list[Component] = []
    seen: set[str] = set()
    for item in member[0]:
        name, params = item
        if not isinstance(name, str) or name != name.lower():
            raise SignatureError(f"Signature-Input {label!r}: bad component {name!r}", 400)
        ident = http_sf.ser(item)
        if ident in seen:
            raise SignatureError(f"Signature-Input {label!r}: {ident} is listed twice", 400)
        seen.add(ident)
        out.append((name, dict(params)))
    return out


def _rule_violation(method: str, components: list[Component], params: Mapping[str, Any]) -> str:
    """Why this signature does not meet our requirements, or ``""`` when it does."""
    names = {name for name, _ in components}
    created = params.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        return "RFC 9421 signature has no created parameter"
    if not isinstance(params.get("keyid"), str):
        return "RFC 9421 signature has no keyid parameter"
    if "@method" not in names:
        return "RFC 9421 signature must cover @method"
    if "@target-uri" not in names and not (
        "@authority" in names and names & {"@path", "@request-target"}
    ):
        return "RFC 9421 signature must cover @target-uri (or @authority and @path)"
    if method not in ("GET", "HEAD") and "content-digest" not in names:
        return f"RFC 9421 signature of a {method} must cover content-digest"
    return ""


def _derived_value(name: str, params: Mapping[str, Any], method: str, target: Target) -> str:
    if params:
        raise SignatureError(f"unsupported parameters on derived component {name}", 401)
    values = {
        "@method": lambda: method,
        "@target-uri": lambda: target.uri,
        "@authority": lambda: target.normalized_authority,
        "@scheme": lambda: target.scheme,
        "@request-target": lambda: target.request_target,
        "@path": lambda: target.path,
        "@query": lambda: "?" + (target.query or ""),
    }
    if name not in values:
        raise SignatureError(f"unsupported derived component {name}", 401)
    return values[name]()


def _field_value(name: str, params: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    unsupported = set(params) - {"sf", "key"}
    if unsupported:
        raise SignatureError(
            f"unsupported component parameter {sorted(unsupported)[0]!r} on {name}", 401
        )
    if name not in headers:
        raise SignatureError(f"covered header {name!r} is missing from the request", 401)
    value = headers[name]
    if "key" in params:
        members = parse_sf(value, name)
        if not isinstance(members, dict) or params["key"] not in members:
            raise SignatureError(f"{name} has no member {params['key']!r}", 401)
        return serialize_member(members[params["key"]])
    if params.get("sf"):
        if name in _SF_DICTIONARY_FIELDS:
            structure = parse_sf(value, name)
        else:
            try:
                structure = http_sf.parse(value.encode("latin-1"), name=name)
            except KeyError:
                raise SignatureError(f"unknown structured field type of {name}", 401) from None
            except (ValueError, UnicodeEncodeError) as exc:
                raise SignatureError(f"malformed {name} header: {exc}", 400) from None
        return http_sf.ser(structure)
    return value


def signature_base(
    method: str,
    target: Target,
    headers: Mapping[str, str],
    components: list[Component],
    signature_params: str,
) -> bytes:
    """The RFC 9421 signature base (section 2.5) for the given covered components."""
    lines = []
    for name, params in components:
        if name.startswith("@"):
            value = _derived_value(name, params, method, target)
        else:
            value = _field_value(name, params, headers)
        lines.append(f"{http_sf.ser((name, params))}: {value}")
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("utf-8")


def _choose(method: str, inputs: Any) -> tuple[str, Any, list[Component]]:
    """The first label whose signature meets our rules (401 with the first reason if none)."""
    if not inputs:
        raise SignatureError("Signature-Input is empty", 400)
    reasons: list[str] = []
    for label, member in inputs.items():
        components = _components(label, member)
        reason = _rule_violation(method, components, member[1])
        if not reason:
            return label, member, components
        reasons.append(reason)
    raise SignatureError(reasons[0], 401)


def _check_values(
    received: Received, params: Mapping[str, Any], components: list[Component]
) -> None:
    """Signed authority, window, expiry and the body digest."""
    received.check_authority(received.target.authority, "the signed @authority")
    created = timestamp(str(params["created"]), "created")
    received.window.check(created, received.now, "signature created")
    expires = params.get("expires")
    if isinstance(expires, int) and timestamp(str(expires), "expires") < received.now:
        raise SignatureError("signature has expired (expires is in the past)", 401)
    if any(name == "content-digest" for name, _ in components):
        check_content_digest(received.headers.get("content-digest"), received.body)


async def verify(received: Received, lookup: KeyLookup) -> Verified:
    """Verify the RFC 9421 signature of ``received`` (it has a ``Signature-Input``)."""
    headers = received.headers
    inputs = parse_sf(headers["signature-input"], "Signature-Input")
    if "signature" not in headers:
        raise SignatureError("Signature-Input without a Signature header", 400)
    signatures = parse_sf(headers["signature"], "Signature")
    label, member, components = _choose(received.method, inputs)
    params: dict[str, Any] = member[1]
    signature_item = signatures.get(label)
    if not (isinstance(signature_item, tuple) and isinstance(signature_item[0], bytes)):
        raise SignatureError(f"Signature has no byte sequence for label {label!r}", 400)
    signature: bytes = signature_item[0]
    key_id: str = params["keyid"]
    alg = params.get("alg")
    if alg is not None and alg not in ALGORITHMS:
        raise SignatureError(
            f"unsupported signature algorithm {alg!r} (use {', '.join(ALGORITHMS)})", 401
        )
    _check_values(received, params, components)
    base = signature_base(
        received.method, received.target, headers, components, serialize_member(member)
    )
    tried = [alg] if alg is not None else list(ALGORITHMS)

    def check(key: PublicKey) -> str | None:
        for name in tried:
            if _VERIFIERS[name](key, signature, base):
                return str(name)
        return None

    info, used = await verify_with_key(lookup, key_id, check)
    return Verified(key_id=key_id, owner=info.owner, scheme="rfc9421", algorithm=used)
