"""What both signature schemes share: the received request, digests, the window, key checks.

``Received`` is everything a verifier reads from one request (method, target URL, headers,
raw body, the current time and the accepted ``Window``), so each scheme is
``verify(received, lookup)``.  The body digests are here because either scheme may bind the
body with either header: draft-cavage with ``Digest`` (or, as some servers send, the RFC 9530
``Content-Digest``), RFC 9421 with ``Content-Digest``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import http_sf
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from bridge.errors import FetchError, SignatureError

Scheme = Literal["cavage", "rfc9421"]
PrivateKey = RSAPrivateKey | Ed25519PrivateKey
PublicKey = RSAPublicKey | Ed25519PublicKey

BODYLESS = frozenset({"GET", "HEAD"})
DIGESTS: dict[str, Callable[[bytes], Any]] = {
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{what} is not valid base64", 400) from None


def digest_header(body: bytes) -> str:
    """The draft-cavage ``Digest`` value of ``body``: ``SHA-256=<base64>``."""
    return "SHA-256=" + b64(hashlib.sha256(body).digest())


def content_digest_header(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` value of ``body``: ``sha-256=:<base64>:``."""
    return "sha-256=:" + b64(hashlib.sha256(body).digest()) + ":"


def http_date(when: dt.datetime) -> str:
    """RFC 7231 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT`` (naive means UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return email.utils.format_datetime(when.astimezone(dt.UTC), usegmt=True)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def sign_bytes(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


# ---- the received request ----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The parts of the request URL the signatures refer to."""

    scheme: str
    authority: str
    path: str
    query: str | None  # None: no '?' at all

    @classmethod
    def parse(cls, url: str, headers: Mapping[str, str]) -> Target:
        parts = urlsplit(url)
        scheme = (parts.scheme or "https").lower()
        authority = parts.netloc or headers.get("host", "")
        query = parts.query if "?" in url else None
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


@dataclass(frozen=True)
class Window:
    """How far the moment of signing may lie from now: ``max_age`` back, ``max_future`` ahead."""

    max_age: int = 3600
    max_future: int = 300

    def check(self, signed_at: dt.datetime, now: dt.datetime, what: str) -> None:
        skew = (now - signed_at).total_seconds()
        if skew > self.max_age:
            raise SignatureError(
                f"{what} is {int(skew)} s in the past (at most {self.max_age} s allowed): "
                "clock skew or a replayed request",
                401,
            )
        if -skew > self.max_future:
            raise SignatureError(
                f"{what} is {int(-skew)} s in the future "
                f"(at most {self.max_future} s allowed): clock skew",
                401,
            )


@dataclass(frozen=True)
class Received:
    """One received request as the verifiers see it.

    ``headers`` are normalised (lower-case names, repeated fields joined); ``method`` is
    upper-case; ``authority`` is the host (and port) the request must have been signed for,
    normalised like ``@authority``, or ``""`` to accept whatever the request names.
    """

    method: str
    target: Target
    headers: Mapping[str, str]
    body: bytes
    now: dt.datetime
    window: Window
    authority: str = ""

    @classmethod
    def build(
        cls,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        now: dt.datetime,
        window: Window,
        authority: str = "",
    ) -> Received:
        normalized = normalize_headers(headers)
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        target = Target.parse(url, normalized)
        ours = normalize_authority(authority, target.scheme) if authority else ""
        return cls(method.upper(), target, normalized, body, now, window, ours)

    @property
    def has_body(self) -> bool:
        return self.method not in BODYLESS

    def check_authority(self, signed: str, what: str) -> None:
        """Refuse a request signed for another server (``signed`` is the covered host)."""
        if not self.authority:
            return
        scheme = self.target.scheme
        if normalize_authority(signed, scheme) != self.authority:
            raise SignatureError(
                f"{what} {signed!r} is not this server ({self.authority!r}): "
                "the request was signed for another server",
                401,
            )


def normalize_authority(authority: str, scheme: str = "https") -> str:
    """Lower-case host[:port] without the scheme's default port or a trailing dot."""
    text = authority.strip().lower()
    if "://" in text:
        parts = urlsplit(text)
        scheme, text = parts.scheme, parts.netloc
    default = {"https": ":443", "http": ":80"}.get(scheme)
    if default and text.endswith(default):
        text = text[: -len(default)]
    host, colon, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    host = host.rstrip(".")
    return f"{host}{colon}{port}"


def _header_pairs(headers: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    multi = getattr(headers, "multi_items", None)  # httpx.Headers keeps repeats here
    if callable(multi):
        pairs: Iterable[tuple[str, str]] = multi()
        return pairs
    return headers.items()  # starlette.datastructures.Headers lists every field line


def normalize_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case names; repeated fields joined with ``", "`` in order (RFC 9110 5.3)."""
    lines: dict[str, list[str]] = {}
    for name, value in _header_pairs(headers):
        lines.setdefault(name.lower(), []).append(value.strip())
    return {name: ", ".join(values) for name, values in lines.items()}


def parse_http_date(value: str | None) -> dt.datetime:
    if not value:
        raise SignatureError("Date is signed but the header is missing", 401)
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise SignatureError(f"Date header is not an HTTP date: {value!r}", 400) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def timestamp(value: str | None, what: str) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(float(value or ""), dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise SignatureError(f"{what} is not a Unix timestamp: {value!r}", 400) from None


# ---- body digests ------------------------------------------------------------------------


def parse_sf(value: str, what: str, tltype: str = "dictionary") -> Any:
    try:
        return http_sf.parse(value.encode("latin-1"), tltype=tltype)
    except (ValueError, UnicodeEncodeError) as exc:
        raise SignatureError(f"malformed {what} header: {exc}", 400) from None


def check_digest(value: str | None, body: bytes) -> None:
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
    for name, hash_fn in DIGESTS.items():
        if name not in given:
            continue
        actual = hash_fn(body).digest()
        try:
            claimed = base64.b64decode(given[name], validate=True)
        except (binascii.Error, ValueError):
            claimed = b""
        if not hmac.compare_digest(claimed, actual):
            raise SignatureError(
                f"Digest mismatch: the body's {name.upper()} is {b64(actual)}, "
                f"the header says {given[name]}",
                401,
            )
        checked = True
    if not checked:
        raise SignatureError(f"Digest header has no SHA-256 or SHA-512 value: {value!r}", 401)


def check_content_digest(value: str | None, body: bytes) -> None:
    """RFC 9530 ``Content-Digest``: every sha-256/sha-512 member given must match the body."""
    if value is None:
        raise SignatureError("content-digest is signed but the header is missing", 401)
    members = parse_sf(value, "Content-Digest")
    checked = False
    for name, hash_fn in DIGESTS.items():
        if name not in members:
            continue
        claimed = members[name][0]
        actual = hash_fn(body).digest()
        if not isinstance(claimed, bytes) or not hmac.compare_digest(claimed, actual):
            raise SignatureError(
                f"Content-Digest mismatch: the body's {name} is :{b64(actual)}:, "
                f"the header says {value}",
                401,
            )
        checked = True
    if not checked:
        raise SignatureError(f"Content-Digest has no sha-256 or sha-512 value: {value!r}", 401)


# ---- keys --------------------------------------------------------------------------------


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

    ``owner`` is the verified actor id: the actor document that lists the key, fetched from
    its own origin.  ``algorithm`` is what was verified: ``rsa-sha256`` or ``ed25519``
    (cavage); ``rsa-v1_5-sha256``, ``rsa-pss-sha512`` or ``ed25519`` (RFC 9421).
    """

    key_id: str
    owner: str
    scheme: Scheme
    algorithm: str


async def _lookup(lookup: KeyLookup, key_id: str, refresh: bool) -> PublicKeyInfo:
    try:
        return await lookup(key_id, refresh=refresh)
    except SignatureError:
        raise
    except FetchError as exc:
        raise SignatureError(f"cannot fetch key {key_id}: {exc}", 401) from None


async def verify_with_key(
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


def rsa_pkcs1_sha256(key: PublicKey, signature: bytes, data: bytes) -> bool:
    if not isinstance(key, RSAPublicKey):
        return False
    try:
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def rsa_pss_sha512(key: PublicKey, signature: bytes, data: bytes) -> bool:
    if not isinstance(key, RSAPublicKey):
        return False
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
    try:
        key.verify(signature, data, pss, hashes.SHA512())
    except InvalidSignature:
        return False
    return True


def ed25519(key: PublicKey, signature: bytes, data: bytes) -> bool:
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
