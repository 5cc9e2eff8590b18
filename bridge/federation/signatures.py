"""HTTP Signatures, both ways: signing our requests and verifying the ones we receive.

Two schemes are spoken:

* **draft-cavage-12** (``Signature: keyId=...,algorithm=...,headers=...,signature=...``), what
  Mastodon and nearly every fediverse server send and accept.
* **RFC 9421** HTTP Message Signatures (``Signature-Input`` + ``Signature``), with the body
  bound by an RFC 9530 ``Content-Digest``.  Mastodon verifies it (4.5+) but never sends it.

Facts this module relies on (each has a test in tests/federation/test_signatures.py):

Signing
  * Cavage POST signs ``(request-target) host date digest`` with ``Digest: SHA-256=<base64>``
    and ``algorithm="rsa-sha256"``; GET signs ``(request-target) host date``.  Mastodon rejects a
    POST whose ``digest`` is not signed and a GET whose ``host`` is not signed.
  * RFC 9421 signs ``("@method" "@target-uri" "content-digest")`` (GET: without the digest) with
    ``created``, ``keyid`` and ``alg="rsa-v1_5-sha256"`` under the label ``sig1``.
  * Every request the auth flow yields gets a fresh ``Date``/``created`` and a fresh signature,
    so a retried or re-sent request is never rejected as stale.
  * Double-knocking (``rfc9421-first``): send RFC 9421; on 400 or 401 re-send the same request
    signed with cavage.  The outcome is remembered per origin (scheme, host, port) in a
    ``SchemeMemory`` so later requests go straight to the scheme that worked.  A cavage retry
    that is refused as well is not remembered (the refusal was not about the scheme).

Verifying (Mastodon's rules, ``SignedRequest::HttpSignature``, where they apply to us)
  * Cavage: ``keyId`` and ``signature`` are required; ``algorithm`` defaults to ``hs2019``;
    only ``rsa-sha256`` and ``hs2019`` are accepted (RSASSA-PKCS1-v1_5 with SHA-256; ``hs2019``
    with an Ed25519 key is Ed25519); anything else, HMAC included, is refused.
  * ``headers`` defaults to ``date``; the signing string is rebuilt from the request for
    whatever it lists.  ``date`` or ``(created)`` must be signed; ``(request-target)`` or
    ``digest`` must be signed; a GET must sign ``host``; a POST must sign ``digest`` and the
    ``Digest`` header (a comma list, algorithm names compared case-insensitively) must hold
    the SHA-256 (or SHA-512) of the raw body.  ``(created)``/``(expires)`` only with hs2019.
  * ``(request-target)`` is ``<lowercase method> <path>?<query>``; if that does not verify, the
    same signature is tried without the query string (Mastodon does the same for servers that
    drop it).
  * Window: the moment of signing (``Date`` or ``(created)``/``created``) must lie within
    ``[now - max_age, now + max_future]``, by default one hour back and five minutes ahead.
    Mastodon accepts about 65 minutes back and one hour ahead, so what it sends passes here.
  * RFC 9421 is recognised by the presence of ``Signature-Input``.  One signature is used:
    the first label whose components satisfy the rules: ``created`` and ``keyid`` present,
    ``@method`` and ``@target-uri`` (or ``@authority`` with ``@path``/``@request-target``)
    covered and, on a POST, ``content-digest`` covered and matching the body.
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

import base64
import binascii
import datetime as dt
import email.utils
import hashlib
import hmac
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import http_sf
import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from bridge.errors import FetchError, SignatureError

__all__ = [
    "HTTPSignatureAuth",
    "KeyLookup",
    "PublicKeyInfo",
    "SchemeMemory",
    "Verified",
    "content_digest_header",
    "digest_header",
    "http_date",
    "origin_of",
    "sign_request",
    "verify_request",
]

Scheme = Literal["cavage", "rfc9421"]
SchemeSetting = Literal["cavage", "rfc9421", "rfc9421-first"]
PrivateKey = RSAPrivateKey | Ed25519PrivateKey
PublicKey = RSAPublicKey | Ed25519PublicKey

LABEL = "sig1"
_BODYLESS = frozenset({"GET", "HEAD"})
_DIGESTS: dict[str, Callable[[bytes], Any]] = {
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}

# ---- pure helpers ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def digest_header(body: bytes) -> str:
    """The draft-cavage ``Digest`` value of ``body``: ``SHA-256=<base64>``."""
    return "SHA-256=" + _b64(hashlib.sha256(body).digest())


def content_digest_header(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` value of ``body``: ``sha-256=:<base64>:``."""
    return "sha-256=:" + _b64(hashlib.sha256(body).digest()) + ":"


def http_date(when: dt.datetime) -> str:
    """RFC 7231 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT`` (naive means UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return email.utils.format_datetime(when.astimezone(dt.UTC), usegmt=True)


def origin_of(url: httpx.URL | str) -> str:
    """``scheme://host:port`` of a URL, the key under which a ``SchemeMemory`` remembers."""
    url = httpx.URL(url)
    port = url.port or {"http": 80, "https": 443}.get(url.scheme, 0)
    return f"{url.scheme}://{url.host}:{port}"


def _sign_bytes(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _quoted(value: str, what: str) -> str:
    if '"' in value or "\\" in value or "\n" in value:
        raise ValueError(f"{what} may not contain quotes, backslashes or newlines: {value!r}")
    return value


def _strip_signature_headers(request: httpx.Request) -> None:
    for name in ("Signature", "Signature-Input", "Digest", "Content-Digest"):
        if name in request.headers:
            del request.headers[name]
    auth = request.headers.get("Authorization", "")
    if auth[:10].lower() == "signature ":
        del request.headers["Authorization"]


def _has_body(request: httpx.Request, body: bytes) -> bool:
    """Whether the body is signed: always except for an empty GET/HEAD (verifiers insist)."""
    return bool(body) or request.method.upper() not in _BODYLESS


def _sign_cavage(request: httpx.Request, key: PrivateKey, key_id: str, now: dt.datetime) -> None:
    date = http_date(now)
    request.headers["Date"] = date
    host = request.headers.get("Host") or request.url.netloc.decode("ascii")
    values = {
        "(request-target)": f"{request.method.lower()} {request.url.raw_path.decode('ascii')}",
        "host": host,
        "date": date,
    }
    body = request.content
    if _has_body(request, body):
        values["digest"] = request.headers["Digest"] = digest_header(body)
    signing_string = "\n".join(f"{name}: {value}" for name, value in values.items())
    signature = _sign_bytes(key, signing_string.encode("utf-8"))
    algorithm = "hs2019" if isinstance(key, Ed25519PrivateKey) else "rsa-sha256"
    request.headers["Signature"] = (
        f'keyId="{_quoted(key_id, "keyId")}",algorithm="{algorithm}",'
        f'headers="{" ".join(values)}",signature="{_b64(signature)}"'
    )


def _ser_member(member: Any) -> str:
    """Serialization of one dictionary member value (item or inner list) with its params."""
    text = http_sf.ser({"k": member})
    return text[2:] if text.startswith("k=") else "?1" + text[1:]


def _sign_rfc9421(request: httpx.Request, key: PrivateKey, key_id: str, now: dt.datetime) -> None:
    request.headers["Date"] = http_date(now)  # not covered; keeps every attempt's Date fresh
    components: list[tuple[str, dict[str, Any]]] = [("@method", {}), ("@target-uri", {})]
    values = [request.method.upper(), str(request.url)]
    body = request.content
    if _has_body(request, body):
        digest = request.headers["Content-Digest"] = content_digest_header(body)
        components.append(("content-digest", {}))
        values.append(digest)
    alg = "ed25519" if isinstance(key, Ed25519PrivateKey) else "rsa-v1_5-sha256"
    params: dict[str, Any] = {"created": int(now.timestamp()), "keyid": key_id, "alg": alg}
    member: Any = (components, params)
    sig_params = _ser_member(member)
    lines = [f"{http_sf.ser(c)}: {v}" for c, v in zip(components, values, strict=True)]
    lines.append(f'"@signature-params": {sig_params}')
    signature = _sign_bytes(key, "\n".join(lines).encode("utf-8"))
    request.headers["Signature-Input"] = http_sf.ser({LABEL: member})
    request.headers["Signature"] = http_sf.ser({LABEL: (signature, {})})


def sign_request(
    request: httpx.Request, private_key: PrivateKey, key_id: str, scheme: Scheme, now: dt.datetime
) -> None:
    """Sign ``request`` in place (its body must have been read).

    Earlier signature headers (``Signature``, ``Signature-Input``, ``Digest``,
    ``Content-Digest``, ``Authorization: Signature``) are replaced, so a request can be signed
    again.  ``Content-Type`` and other headers are left as they are.
    """
    _strip_signature_headers(request)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    if scheme == "cavage":
        _sign_cavage(request, private_key, key_id, now)
    elif scheme == "rfc9421":
        _sign_rfc9421(request, private_key, key_id, now)
    else:
        raise ValueError(f"unknown signature scheme {scheme!r}")


# ---- signing as an httpx.Auth ----------------------------------------------------------------


class SchemeMemory:
    """Which signature scheme each origin accepted; shared between threads and clients.

    At most ``max_entries`` origins are kept (the least recently set are forgotten).
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Scheme] = OrderedDict()
        self._max = max_entries

    def get(self, origin: str) -> Scheme | None:
        with self._lock:
            return self._entries.get(origin)

    def set(self, origin: str, scheme: Scheme) -> None:
        with self._lock:
            self._entries[origin] = scheme
            self._entries.move_to_end(origin)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class HTTPSignatureAuth(httpx.Auth):
    """Sign every request an ``httpx.Client``/``AsyncClient`` sends.

    ``scheme`` is ``"cavage"``, ``"rfc9421"`` or ``"rfc9421-first"`` (double-knocking, see the
    module docstring).  ``clock`` returns the current time (tests pass a fake one).
    """

    requires_request_body = True

    def __init__(
        self,
        private_key: PrivateKey,
        key_id: str,
        scheme: SchemeSetting = "cavage",
        memory: SchemeMemory | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if scheme not in ("cavage", "rfc9421", "rfc9421-first"):
            raise ValueError(f"unknown signature scheme {scheme!r}")
        _quoted(key_id, "key id")
        self.private_key = private_key
        self.key_id = key_id
        self.scheme: SchemeSetting = scheme
        self.memory = memory if memory is not None else SchemeMemory()
        self.clock = clock or _utcnow

    def _sign(self, request: httpx.Request, scheme: Scheme) -> httpx.Request:
        sign_request(request, self.private_key, self.key_id, scheme, self.clock())
        return request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.scheme != "rfc9421-first":
            yield self._sign(request, self.scheme)
            return
        origin = origin_of(request.url)
        if self.memory.get(origin) == "cavage":
            yield self._sign(request, "cavage")
            return
        response = yield self._sign(request, "rfc9421")
        if response.status_code not in (400, 401):
            self.memory.set(origin, "rfc9421")
            return
        response = yield self._sign(request, "cavage")
        if response.status_code not in (400, 401):
            self.memory.set(origin, "cavage")


# ---- verifying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicKeyInfo:
    """A key as published by its owner: ``owner`` is the actor that lists it."""

    key_id: str
    owner: str
    public_key: PublicKey


class KeyLookup(Protocol):
    """Fetch (or take from a cache, unless ``refresh``) the public key ``key_id``.

    Raises ``SignatureError`` or ``FetchError`` when the key cannot be had.
    """

    async def __call__(self, key_id: str, refresh: bool) -> PublicKeyInfo: ...


@dataclass(frozen=True)
class Verified:
    """Who signed a request.  The caller still checks ``owner`` against the activity's actor.

    ``algorithm`` is what was verified: ``rsa-sha256`` or ``ed25519`` (cavage);
    ``rsa-v1_5-sha256``, ``rsa-pss-sha512`` or ``ed25519`` (RFC 9421).
    """

    key_id: str
    owner: str
    scheme: Scheme
    algorithm: str


def _header_pairs(headers: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    multi = getattr(headers, "multi_items", None)  # httpx.Headers keeps repeats here
    if callable(multi):
        pairs: Iterable[tuple[str, str]] = multi()
        return pairs
    return headers.items()  # starlette.datastructures.Headers lists every field line


def _normalize_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case names; repeated fields joined with ``", "`` in order (RFC 9110 5.3)."""
    lines: dict[str, list[str]] = {}
    for name, value in _header_pairs(headers):
        lines.setdefault(name.lower(), []).append(value.strip())
    return {name: ", ".join(values) for name, values in lines.items()}


async def _lookup(lookup: KeyLookup, key_id: str, refresh: bool) -> PublicKeyInfo:
    try:
        return await lookup(key_id, refresh=refresh)
    except SignatureError:
        raise
    except FetchError as exc:
        raise SignatureError(f"cannot fetch key {key_id}: {exc}", 401) from None


async def _verify_with_key(
    lookup: KeyLookup, key_id: str, check: Callable[[PublicKey], str | None]
) -> tuple[PublicKeyInfo, str]:
    """Verify with the looked-up key, and once more with a refreshed one (key rotation)."""
    info = await _lookup(lookup, key_id, refresh=False)
    algorithm = check(info.public_key)
    if algorithm is None:
        info = await _lookup(lookup, key_id, refresh=True)
        algorithm = check(info.public_key)
    if algorithm is None:
        raise SignatureError(f"signature does not verify with key {key_id}", 401)
    return info, algorithm


def _check_window(
    signed_at: dt.datetime, now: dt.datetime, max_age: int, max_future: int, what: str
) -> None:
    skew = (now - signed_at).total_seconds()
    if skew > max_age:
        raise SignatureError(
            f"{what} is {int(skew)} s in the past (at most {max_age} s allowed): "
            "clock skew or a replayed request",
            401,
        )
    if -skew > max_future:
        raise SignatureError(
            f"{what} is {int(-skew)} s in the future (at most {max_future} s allowed): clock skew",
            401,
        )


def _rsa_pkcs1_sha256(key: PublicKey, signature: bytes, data: bytes) -> bool:
    if not isinstance(key, RSAPublicKey):
        return False
    try:
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _rsa_pss_sha512(key: PublicKey, signature: bytes, data: bytes) -> bool:
    if not isinstance(key, RSAPublicKey):
        return False
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
    try:
        key.verify(signature, data, pss, hashes.SHA512())
    except InvalidSignature:
        return False
    return True


def _ed25519(key: PublicKey, signature: bytes, data: bytes) -> bool:
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class _Target:
    """The parts of the request URL the signatures refer to."""

    scheme: str
    authority: str
    path: str
    query: str | None  # None: no '?' at all

    @classmethod
    def parse(cls, url: str, headers: Mapping[str, str]) -> _Target:
        parts = urlsplit(url)
        scheme = (parts.scheme or "https").lower()
        authority = parts.netloc or headers.get("host", "")
        if "?" in url:
            query: str | None = parts.query
        else:
            query = None
        return cls(scheme, authority, parts.path or "/", query)

    @property
    def request_target(self) -> str:
        return self.path if self.query is None else f"{self.path}?{self.query}"

    @property
    def normalized_authority(self) -> str:
        authority = self.authority.lower()
        default = {"https": ":443", "http": ":80"}.get(self.scheme)
        if default and authority.endswith(default):
            authority = authority[: -len(default)]
        return authority

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.authority}{self.request_target}"


# ---- draft-cavage ----------------------------------------------------------------------------

_CAVAGE_PARAM = re.compile(
    r"[ \t]*([A-Za-z][A-Za-z0-9_-]*)[ \t]*=[ \t]*"  # name =
    r'(?:"((?:[^"\\]|\\.)*)"|([0-9]+(?:\.[0-9]+)?))[ \t]*'  # "quoted" or a number
)


def _parse_cavage(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    pos = 0
    while True:
        match = _CAVAGE_PARAM.match(value, pos)
        if not match:
            raise SignatureError(f"malformed Signature header at {value[pos : pos + 30]!r}", 400)
        name = match.group(1).lower()
        if name in params:
            raise SignatureError(f"malformed Signature header: {name} given twice", 400)
        quoted = match.group(2)
        params[name] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group(3)
        pos = match.end()
        if pos == len(value):
            return params
        if value[pos] != ",":
            raise SignatureError(f"malformed Signature header at {value[pos : pos + 30]!r}", 400)
        pos += 1


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what} is not valid base64", 400) from None


def _check_digest(value: str | None, body: bytes) -> None:
    """Cavage ``Digest``: every SHA-256/SHA-512 value given must match the body."""
    if value is None:
        raise SignatureError("Digest is signed but the header is missing", 401)
    given: dict[str, str] = {}
    for part in value.split(","):
        name, sep, encoded = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed Digest header {value!r}", 400)
        given[name.strip().lower()] = encoded.strip()
    checked = False
    for name, hash_fn in _DIGESTS.items():
        if name not in given:
            continue
        actual = hash_fn(body).digest()
        try:
            claimed = base64.b64decode(given[name], validate=True)
        except (binascii.Error, ValueError):
            claimed = b""
        if not hmac.compare_digest(claimed, actual):
            raise SignatureError(
                f"Digest mismatch: the body's {name.upper()} is {_b64(actual)}, "
                f"the header says {given[name]}",
                401,
            )
        checked = True
    if not checked:
        raise SignatureError(f"Digest header has no SHA-256 or SHA-512 value: {value!r}", 401)


def _parse_http_date(value: str | None) -> dt.datetime:
    if not value:
        raise SignatureError("Date is signed but the header is missing", 401)
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise SignatureError(f"Date header is not an HTTP date: {value!r}", 400) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _timestamp(value: str | None, what: str) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(float(value or ""), dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise SignatureError(f"{what} is not a Unix timestamp: {value!r}", 400) from None


def _cavage_signing_string(
    signed: list[str],
    method: str,
    request_target: str,
    headers: Mapping[str, str],
    params: Mapping[str, str],
    target: _Target,
) -> str:
    lines = []
    for name in signed:
        if name == "(request-target)":
            value = f"{method.lower()} {request_target}"
        elif name in ("(created)", "(expires)"):
            value = params[name[1:-1]]
        elif name == "host":
            value = headers.get("host") or target.authority
        elif name in headers:
            value = headers[name]
        else:
            raise SignatureError(f"signed header {name!r} is missing from the request", 401)
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


async def _verify_cavage(
    method: str,
    target: _Target,
    headers: Mapping[str, str],
    body: bytes,
    raw: str,
    lookup: KeyLookup,
    now: dt.datetime,
    max_age: int,
    max_future: int,
) -> Verified:
    params = _parse_cavage(raw)
    key_id = params.get("keyid")
    if not key_id or not params.get("signature"):
        raise SignatureError("Signature header needs keyId and signature", 400)
    signature = _b64decode(params["signature"], "signature")
    algorithm = params.get("algorithm", "hs2019").lower()
    if algorithm not in ("rsa-sha256", "hs2019"):
        raise SignatureError(
            f"unsupported signature algorithm {algorithm!r} (use rsa-sha256 or hs2019)", 401
        )
    signed = params.get("headers", "date").lower().split()
    if not signed:
        raise SignatureError("Signature header lists no headers", 400)

    method = method.upper()
    if "date" not in signed and "(created)" not in signed:
        raise SignatureError("signature must cover date or (created)", 401)
    if "(request-target)" not in signed and "digest" not in signed:
        raise SignatureError("signature must cover (request-target) or digest", 401)
    if method in _BODYLESS and "host" not in signed:
        raise SignatureError(f"a {method} signature must cover host", 401)
    if method not in _BODYLESS and "digest" not in signed:
        raise SignatureError(f"a {method} signature must cover digest", 401)
    pseudo = [name for name in ("(created)", "(expires)") if name in signed]
    if pseudo and algorithm != "hs2019":
        raise SignatureError(f"{pseudo[0]} may only be signed with algorithm hs2019", 401)
    for name in pseudo:
        if name[1:-1] not in params:
            raise SignatureError(f"{name} is signed but the {name[1:-1]} parameter is missing", 400)

    if "(created)" in signed:
        signed_at = _timestamp(params["created"], "created")
        _check_window(signed_at, now, max_age, max_future, "signature (created)")
    if "date" in signed:
        signed_at = _parse_http_date(headers.get("date"))
        _check_window(signed_at, now, max_age, max_future, "Date header")
    if "(expires)" in signed and _timestamp(params["expires"], "expires") < now:
        raise SignatureError("signature has expired ((expires) is in the past)", 401)
    if "digest" in signed:
        _check_digest(headers.get("digest"), body)

    targets = [target.request_target]
    if target.query is not None:
        targets.append(target.path)  # Mastodon's compat fallback: without the query string
    candidates = [
        _cavage_signing_string(signed, method, t, headers, params, target).encode("utf-8")
        for t in targets
    ]

    def check(key: PublicKey) -> str | None:
        for data in candidates:
            if isinstance(key, Ed25519PublicKey):
                if algorithm == "hs2019" and _ed25519(key, signature, data):
                    return "ed25519"
            elif _rsa_pkcs1_sha256(key, signature, data):
                return "rsa-sha256"
        return None

    info, used = await _verify_with_key(lookup, key_id, check)
    return Verified(key_id=key_id, owner=info.owner, scheme="cavage", algorithm=used)


# ---- RFC 9421 --------------------------------------------------------------------------------

_SF_DICTIONARY_FIELDS = frozenset(
    {"content-digest", "repr-digest", "signature", "signature-input", "accept-signature"}
)
_RFC9421_ALGORITHMS = ("rsa-v1_5-sha256", "rsa-pss-sha512", "ed25519")
_DERIVED = frozenset(
    {"@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"}
)

Component = tuple[str, dict[str, Any]]


def _parse_sf(value: str, what: str, tltype: str = "dictionary") -> Any:
    try:
        return http_sf.parse(value.encode("latin-1"), tltype=tltype)
    except (ValueError, UnicodeEncodeError) as exc:
        raise SignatureError(f"malformed {what} header: {exc}", 400) from None


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
    if method not in _BODYLESS and "content-digest" not in names:
        return f"RFC 9421 signature of a {method} must cover content-digest"
    return ""


def _check_content_digest(value: str | None, body: bytes) -> None:
    if value is None:
        raise SignatureError("content-digest is signed but the header is missing", 401)
    members = _parse_sf(value, "Content-Digest")
    checked = False
    for name, hash_fn in _DIGESTS.items():
        if name not in members:
            continue
        claimed = members[name][0]
        actual = hash_fn(body).digest()
        if not isinstance(claimed, bytes) or not hmac.compare_digest(claimed, actual):
            raise SignatureError(
                f"Content-Digest mismatch: the body's {name} is :{_b64(actual)}:, "
                f"the header says {value}",
                401,
            )
        checked = True
    if not checked:
        raise SignatureError(f"Content-Digest has no sha-256 or sha-512 value: {value!r}", 401)


def _derived_value(name: str, params: Mapping[str, Any], method: str, target: _Target) -> str:
    if params:
        raise SignatureError(f"unsupported parameters on derived component {name}", 401)
    if name == "@method":
        return method
    if name == "@target-uri":
        return target.uri
    if name == "@authority":
        return target.normalized_authority
    if name == "@scheme":
        return target.scheme
    if name == "@request-target":
        return target.request_target
    if name == "@path":
        return target.path
    if name == "@query":
        return "?" + (target.query or "")
    raise SignatureError(f"unsupported derived component {name}", 401)


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
        members = _parse_sf(value, name)
        if not isinstance(members, dict) or params["key"] not in members:
            raise SignatureError(f"{name} has no member {params['key']!r}", 401)
        return _ser_member(members[params["key"]])
    if params.get("sf"):
        if name in _SF_DICTIONARY_FIELDS:
            structure = _parse_sf(value, name)
        else:
            try:
                structure = http_sf.parse(value.encode("latin-1"), name=name)
            except KeyError:
                raise SignatureError(f"unknown structured field type of {name}", 401) from None
            except (ValueError, UnicodeEncodeError) as exc:
                raise SignatureError(f"malformed {name} header: {exc}", 400) from None
        return http_sf.ser(structure)
    return value


def _rfc9421_base(
    method: str,
    target: _Target,
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


async def _verify_rfc9421(
    method: str,
    target: _Target,
    headers: Mapping[str, str],
    body: bytes,
    lookup: KeyLookup,
    now: dt.datetime,
    max_age: int,
    max_future: int,
) -> Verified:
    inputs = _parse_sf(headers["signature-input"], "Signature-Input")
    if "signature" not in headers:
        raise SignatureError("Signature-Input without a Signature header", 400)
    signatures = _parse_sf(headers["signature"], "Signature")
    if not inputs:
        raise SignatureError("Signature-Input is empty", 400)
    method = method.upper()
    chosen: tuple[str, Any, list[Component]] | None = None
    reasons: list[str] = []
    for label, member in inputs.items():
        components = _components(label, member)
        reason = _rule_violation(method, components, member[1])
        if reason:
            reasons.append(reason)
            continue
        chosen = (label, member, components)
        break
    if chosen is None:
        raise SignatureError(reasons[0], 401)
    label, member, components = chosen
    params: dict[str, Any] = member[1]
    signature_item = signatures.get(label)
    if not (isinstance(signature_item, tuple) and isinstance(signature_item[0], bytes)):
        raise SignatureError(f"Signature has no byte sequence for label {label!r}", 400)
    signature: bytes = signature_item[0]
    key_id: str = params["keyid"]
    alg = params.get("alg")
    if alg is not None and alg not in _RFC9421_ALGORITHMS:
        raise SignatureError(
            f"unsupported signature algorithm {alg!r} (use {', '.join(_RFC9421_ALGORITHMS)})",
            401,
        )

    _check_window(
        _timestamp(str(params["created"]), "created"), now, max_age, max_future, "signature created"
    )
    expires = params.get("expires")
    if isinstance(expires, int) and _timestamp(str(expires), "expires") < now:
        raise SignatureError("signature has expired (expires is in the past)", 401)
    if any(name == "content-digest" for name, _ in components):
        _check_content_digest(headers.get("content-digest"), body)

    base = _rfc9421_base(method, target, headers, components, _ser_member(member))

    # Without alg, the key type decides (RSA: PKCS#1 v1.5 first, then PSS).
    tried = [alg] if alg is not None else list(_RFC9421_ALGORITHMS)
    verifiers = {
        "rsa-v1_5-sha256": _rsa_pkcs1_sha256,
        "rsa-pss-sha512": _rsa_pss_sha512,
        "ed25519": _ed25519,
    }

    def check(key: PublicKey) -> str | None:
        for name in tried:
            if verifiers[name](key, signature, base):
                return name
        return None

    info, used = await _verify_with_key(lookup, key_id, check)
    return Verified(key_id=key_id, owner=info.owner, scheme="rfc9421", algorithm=used)


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
) -> Verified:
    """Verify the HTTP signature of a received request.

    ``url`` is the request URL as the sender addressed it (scheme, host, raw path and query;
    a bare path is completed with ``https`` and the ``Host`` header).  ``headers`` may be a
    Starlette ``Headers``, an ``httpx.Headers`` or any mapping.  ``body`` is the raw body.

    Returns who signed; raises ``SignatureError`` (401, or 400 for malformed headers).
    """
    if now is None:
        now = _utcnow()
    elif now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    normalized = _normalize_headers(headers)
    target = _Target.parse(url, normalized)
    if "signature-input" in normalized:
        return await _verify_rfc9421(
            method, target, normalized, body, lookup, now, max_age, max_future
        )
    raw = normalized.get("signature")
    if raw is None:
        authorization = normalized.get("authorization", "")
        if authorization[:10].lower() == "signature ":
            raw = authorization[10:]
    if raw is None:
        raise SignatureError("request is not signed", 401)
    return await _verify_cavage(
        method, target, normalized, body, raw, lookup, now, max_age, max_future
    )
