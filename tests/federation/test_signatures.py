"""HTTP Signatures: signing with the httpx Auth and verifying received requests."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
from collections.abc import Mapping

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.datastructures import Headers

from bridge.errors import FetchError, SignatureError
from bridge.federation.signatures import (
    HTTPSignatureAuth,
    PublicKeyInfo,
    SchemeMemory,
    Verified,
    content_digest_header,
    digest_header,
    http_date,
    origin_of,
    sign_request,
    verify_request,
)
from bridge.federation.signatures.common import Target
from bridge.federation.signatures.rfc9421 import signature_base

ACTOR = "https://blog.example/ap/actor.json"
KEY_ID = ACTOR + "#main-key"
ED_KEY_ID = ACTOR + "#ed25519-key"
INBOX = "https://remote.example/inbox"
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
BODY = b'{"type":"Follow","actor":"https://blog.example/ap/actor.json"}'


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ed_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


class Clock:
    """A fake clock that moves ``step`` seconds each time it is read."""

    def __init__(self, start: dt.datetime = NOW, step: float = 0) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> dt.datetime:
        current = self.now
        self.now += dt.timedelta(seconds=self.step)
        return current


class Lookup:
    """A KeyLookup serving ``keys`` in turn: the first for refresh=False, then on refresh."""

    def __init__(self, *keys: rsa.RSAPublicKey | object, owner: str = ACTOR) -> None:
        self.keys = list(keys)
        self.owner = owner
        self.calls: list[tuple[str, bool]] = []

    async def __call__(self, key_id: str, refresh: bool) -> PublicKeyInfo:
        self.calls.append((key_id, refresh))
        key = self.keys[min(len(self.calls) - 1, len(self.keys) - 1)]
        if isinstance(key, Exception):
            raise key
        return PublicKeyInfo(key_id=key_id, owner=self.owner, public_key=key)  # type: ignore[arg-type]


def snapshot(request: httpx.Request) -> httpx.Request:
    """A copy of a request as it was sent (the auth flow re-signs the same object)."""
    return httpx.Request(
        request.method,
        request.url,
        headers=list(request.headers.multi_items()),
        content=request.content,
    )


def send(
    auth: HTTPSignatureAuth,
    method: str = "POST",
    url: str = INBOX,
    body: bytes | None = BODY,
    status: Mapping[str, int] | None = None,
) -> tuple[httpx.Response, list[httpx.Request]]:
    """Send one request through a MockTransport; ``status`` maps 'cavage'/'rfc9421' to codes."""
    seen: list[httpx.Request] = []
    codes = status or {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(snapshot(request))
        scheme = "rfc9421" if "signature-input" in request.headers else "cavage"
        return httpx.Response(codes.get(scheme, 202))

    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        headers = {"Content-Type": "application/activity+json"} if body is not None else {}
        response = client.request(method, url, content=body, headers=headers)
    return response, seen


def verify(
    request: httpx.Request,
    lookup: Lookup,
    now: dt.datetime = NOW,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    url: str | None = None,
    method: str | None = None,
) -> Verified:
    return asyncio.run(
        verify_request(
            method or request.method,
            url or str(request.url),
            request.headers if headers is None else headers,
            request.content if body is None else body,
            lookup,
            now=now,
        )
    )


# ---- pure helpers ----------------------------------------------------------------------------


def test_helpers() -> None:
    body = b'{"hello": "world"}'
    assert digest_header(body) == "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
    assert content_digest_header(body) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    when = dt.datetime(1994, 11, 6, 8, 49, 37, tzinfo=dt.UTC)
    assert http_date(when) == "Sun, 06 Nov 1994 08:49:37 GMT"
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert http_date(when.astimezone(plus_two)) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert origin_of("https://Remote.example/inbox") == "https://remote.example:443"
    assert origin_of("http://remote.example:8080/x") == "http://remote.example:8080"


# ---- signing, then verifying what was sent ---------------------------------------------------


def test_cavage_post_round_trip(rsa_key: rsa.RSAPrivateKey) -> None:
    _, [sent] = send(HTTPSignatureAuth(rsa_key, KEY_ID, clock=Clock()))
    assert sent.headers["date"] == "Sun, 01 Mar 2026 12:00:00 GMT"
    assert sent.headers["digest"] == digest_header(BODY)
    assert sent.headers["content-type"] == "application/activity+json"
    signature = sent.headers["signature"]
    assert signature.startswith(f'keyId="{KEY_ID}",algorithm="rsa-sha256",')
    assert 'headers="(request-target) host date digest"' in signature
    assert "signature-input" not in sent.headers
    lookup = Lookup(rsa_key.public_key())
    assert verify(sent, lookup) == Verified(KEY_ID, ACTOR, "cavage", "rsa-sha256")
    assert lookup.calls == [(KEY_ID, False)]


def test_cavage_get_round_trip(rsa_key: rsa.RSAPrivateKey) -> None:
    url = "https://remote.example/users/alice/outbox?page=true"
    _, [sent] = send(HTTPSignatureAuth(rsa_key, KEY_ID, clock=Clock()), "GET", url, None)
    assert 'headers="(request-target) host date"' in sent.headers["signature"]
    assert "digest" not in sent.headers
    assert verify(sent, Lookup(rsa_key.public_key())).scheme == "cavage"


def test_rfc9421_post_round_trip(rsa_key: rsa.RSAPrivateKey) -> None:
    auth = HTTPSignatureAuth(rsa_key, KEY_ID, scheme="rfc9421", clock=Clock())
    _, [sent] = send(auth)
    assert sent.headers["content-digest"] == content_digest_header(BODY)
    assert sent.headers["signature-input"] == (
        f'sig1=("@method" "@target-uri" "content-digest");created={int(NOW.timestamp())}'
        f';keyid="{KEY_ID}";alg="rsa-v1_5-sha256"'
    )
    assert sent.headers["signature"].startswith("sig1=:")
    assert sent.headers["date"] == http_date(NOW)
    assert "digest" not in sent.headers
    assert verify(sent, Lookup(rsa_key.public_key())) == Verified(
        KEY_ID, ACTOR, "rfc9421", "rsa-v1_5-sha256"
    )


def test_rfc9421_get_round_trip(rsa_key: rsa.RSAPrivateKey) -> None:
    auth = HTTPSignatureAuth(rsa_key, KEY_ID, scheme="rfc9421", clock=Clock())
    _, [sent] = send(auth, "GET", "https://remote.example/users/alice?x=1&y=%20", None)
    assert '("@method" "@target-uri");' in sent.headers["signature-input"]
    assert verify(sent, Lookup(rsa_key.public_key())).scheme == "rfc9421"


def test_ed25519_signing_both_schemes(ed_key: Ed25519PrivateKey) -> None:
    _, [cavage] = send(HTTPSignatureAuth(ed_key, ED_KEY_ID, clock=Clock()))
    assert 'algorithm="hs2019"' in cavage.headers["signature"]
    assert verify(cavage, Lookup(ed_key.public_key())).algorithm == "ed25519"
    _, [sf] = send(HTTPSignatureAuth(ed_key, ED_KEY_ID, scheme="rfc9421", clock=Clock()))
    assert 'alg="ed25519"' in sf.headers["signature-input"]
    assert verify(sf, Lookup(ed_key.public_key())).algorithm == "ed25519"


def test_verify_accepts_starlette_headers(rsa_key: rsa.RSAPrivateKey) -> None:
    _, [sent] = send(HTTPSignatureAuth(rsa_key, KEY_ID, clock=Clock()))
    raw = [(k.encode(), v.encode()) for k, v in sent.headers.multi_items()]
    assert verify(sent, Lookup(rsa_key.public_key()), headers=Headers(raw=raw)).owner == ACTOR
    # A plain dict with other capitalisation works too.
    upper = {k.upper(): v for k, v in sent.headers.items()}
    assert verify(sent, Lookup(rsa_key.public_key()), headers=upper).owner == ACTOR


def test_async_client_signs(rsa_key: rsa.RSAPrivateKey) -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(snapshot(request))
        return httpx.Response(202)

    async def main() -> None:
        auth = HTTPSignatureAuth(rsa_key, KEY_ID, clock=Clock())
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as c:
            await c.post(INBOX, content=BODY)

    asyncio.run(main())
    assert verify(seen[0], Lookup(rsa_key.public_key())).scheme == "cavage"


def test_sign_request_replaces_old_signature(rsa_key: rsa.RSAPrivateKey) -> None:
    request = httpx.Request("POST", INBOX, content=BODY)
    sign_request(request, rsa_key, KEY_ID, "rfc9421", NOW)
    sign_request(request, rsa_key, KEY_ID, "cavage", NOW + dt.timedelta(seconds=5))
    assert "signature-input" not in request.headers
    assert "content-digest" not in request.headers
    assert len(request.headers.get_list("signature")) == 1
    assert verify(request, Lookup(rsa_key.public_key()), now=NOW).scheme == "cavage"


def test_unknown_scheme_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError):
        HTTPSignatureAuth(rsa_key, KEY_ID, scheme="hmac")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HTTPSignatureAuth(rsa_key, 'bad"key')


# ---- fresh Date per request, double-knocking -------------------------------------------------


def test_every_request_is_signed_afresh(rsa_key: rsa.RSAPrivateKey) -> None:
    clock = Clock(step=30)
    auth = HTTPSignatureAuth(rsa_key, KEY_ID, clock=clock)
    _, [first] = send(auth)
    _, [second] = send(auth)
    assert first.headers["date"] != second.headers["date"]
    assert first.headers["signature"] != second.headers["signature"]


def test_double_knock_falls_back_to_cavage(rsa_key: rsa.RSAPrivateKey) -> None:
    memory = SchemeMemory()
    clock = Clock(step=2)
    auth = HTTPSignatureAuth(rsa_key, KEY_ID, "rfc9421-first", memory=memory, clock=clock)
    refuse_9421 = {"rfc9421": 401, "cavage": 202}
    response, [knock, retry] = send(auth, status=refuse_9421)
    assert response.status_code == 202
    assert "signature-input" in knock.headers
    assert "signature-input" not in retry.headers
    assert "content-digest" not in retry.headers
    assert retry.headers["signature"].startswith(f'keyId="{KEY_ID}"')
    # The retry was signed afresh, two seconds after the first knock.
    assert retry.headers["date"] == http_date(NOW + dt.timedelta(seconds=2))
    assert f"created={int(NOW.timestamp())};" in knock.headers["signature-input"]
    assert verify(retry, Lookup(rsa_key.public_key()), now=clock.now).scheme == "cavage"
    assert memory.get("https://remote.example:443") == "cavage"
    # The origin is remembered: the next request goes straight to cavage.
    response, [only] = send(auth, status=refuse_9421)
    assert response.status_code == 202
    assert "signature-input" not in only.headers
    # Another origin still knocks with RFC 9421 first.
    _, requests = send(auth, url="https://other.example/inbox", status=refuse_9421)
    assert len(requests) == 2


def test_double_knock_400_also_falls_back(rsa_key: rsa.RSAPrivateKey) -> None:
    auth = HTTPSignatureAuth(rsa_key, KEY_ID, "rfc9421-first", clock=Clock())
    _, requests = send(auth, status={"rfc9421": 400})
    assert len(requests) == 2
    assert auth.memory.get(origin_of(INBOX)) == "cavage"


def test_double_knock_remembers_rfc9421(rsa_key: rsa.RSAPrivateKey) -> None:
    memory = SchemeMemory()
    auth = HTTPSignatureAuth(rsa_key, KEY_ID, "rfc9421-first", memory=memory, clock=Clock())
    _, [only] = send(auth)
    assert "signature-input" in only.headers
    assert memory.get(origin_of(INBOX)) == "rfc9421"
    _, [again] = send(auth)
    assert "signature-input" in again.headers


def test_double_knock_refused_twice_remembers_nothing(rsa_key: rsa.RSAPrivateKey) -> None:
    memory = SchemeMemory()
    auth = HTTPSignatureAuth(rsa_key, KEY_ID, "rfc9421-first", memory=memory, clock=Clock())
    response, requests = send(auth, status={"rfc9421": 401, "cavage": 401})
    assert response.status_code == 401
    assert len(requests) == 2
    assert memory.get(origin_of(INBOX)) is None


def test_scheme_memory_is_bounded() -> None:
    memory = SchemeMemory(max_entries=2)
    memory.set("https://a:443", "cavage")
    memory.set("https://b:443", "rfc9421")
    memory.set("https://c:443", "cavage")
    assert memory.get("https://a:443") is None
    assert memory.get("https://c:443") == "cavage"


# ---- known-good vectors ----------------------------------------------------------------------

# draft-cavage-http-signatures-12, Appendix C: the "Test" key and request.
CAVAGE_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCFENGw33yGihy92pDjZQhl0C3
6rPJj+CvfSC8+q28hxA161QFNUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6
Z4UMR7EOcpfdUE9Hf3m/hs+FUR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJw
oYi+1hqp1fIekaxsyQIDAQAB
-----END PUBLIC KEY-----
"""
CAVAGE_HEADERS = {
    "Host": "example.com",
    "Date": "Sun, 05 Jan 2014 21:31:40 GMT",
    "Content-Type": "application/json",
    "Digest": "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
    "Content-Length": "18",
}
CAVAGE_URL = "https://example.com/foo?param=value&pet=dog"
CAVAGE_BODY = b'{"hello": "world"}'
CAVAGE_NOW = dt.datetime(2014, 1, 5, 21, 32, 0, tzinfo=dt.UTC)
CAVAGE_C2 = (
    'keyId="Test",algorithm="rsa-sha256",headers="(request-target) host date",'
    'signature="qdx+H7PHHDZgy4y/Ahn9Tny9V3GP6YgBPyUXMmoxWtLbHpUnXS2mg2+SbrQDMCJypxBLSPQR2aAjn'
    "7ndmw2iicw3HMbe8VfEdKFYRqzic+efkb3nndiv/x1xSHDJWeSWkx3ButlYSuBskLu6kd9Fswtemr3lgdDEmn04"
    'swr2Os0="'
)
CAVAGE_C3 = (
    'keyId="Test",algorithm="rsa-sha256",'
    'headers="(request-target) host date content-type digest content-length",'
    'signature="vSdrb+dS3EceC9bcwHSo4MlyKS59iFIrhgYkz8+oVLEEzmYZZvRs8rgOp+63LEM3v+MFHB32NfpB2b'
    "EKBIvB1q52LaEUHFv120V01IL+TAD48XaERZFukWgHoBTLMhYS2Gb51gWxpeIq8knRmPnYePbF5MOkR0Zkly4zKH"
    '7s1dE="'
)


def cavage_test_key() -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(CAVAGE_PUBLIC_PEM)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def verify_raw(
    headers: Mapping[str, str],
    lookup: Lookup,
    *,
    method: str = "POST",
    url: str = CAVAGE_URL,
    body: bytes = CAVAGE_BODY,
    now: dt.datetime = CAVAGE_NOW,
) -> Verified:
    return asyncio.run(verify_request(method, url, headers, body, lookup, now=now))


def test_cavage_spec_vector_all_headers() -> None:
    lookup = Lookup(cavage_test_key(), owner="https://example.com/actor")
    result = verify_raw({**CAVAGE_HEADERS, "Signature": CAVAGE_C3}, lookup)
    assert result == Verified("Test", "https://example.com/actor", "cavage", "rsa-sha256")
    # The same signature in an Authorization header.
    auth = {**CAVAGE_HEADERS, "Authorization": "Signature " + CAVAGE_C3}
    assert verify_raw(auth, lookup).key_id == "Test"


def test_cavage_spec_vector_without_digest_is_refused() -> None:
    """C.2 is a valid signature, but a POST must sign digest (Mastodon's rule)."""
    lookup = Lookup(cavage_test_key())
    with pytest.raises(SignatureError, match="must cover digest") as info:
        verify_raw({**CAVAGE_HEADERS, "Signature": CAVAGE_C2}, lookup)
    assert info.value.status == 401
    assert lookup.calls == []  # refused before any key fetch


def test_cavage_spec_vector_default_headers_is_refused() -> None:
    """C.1 omits headers=, so only date is signed: too weak, refused before any key fetch."""
    c1 = (
        'keyId="Test",algorithm="rsa-sha256",signature="SjWJWbWN7i0wzBvtPl8rbASWz5xQW6mcJmn+'
        "ibttBqtifLN7Sazz6m79cNfwwb8DMJ5cou1s7uEGKKCs+FLEEaDV5lp7q25WqS+lavg7T8hc0GppauB6hbgEK"
        'TwblDHYGEtbGmtdHgVCk9SuS13F0hZ8FD0k/5OxEPXe5WozsbM="'
    )
    lookup = Lookup(cavage_test_key())
    with pytest.raises(SignatureError, match=r"must cover \(request-target\) or digest"):
        verify_raw({**CAVAGE_HEADERS, "Authorization": "Signature " + c1}, lookup)
    assert lookup.calls == []


def mastodon_signature(
    key: rsa.RSAPrivateKey,
    method: str,
    path: str,
    headers: Mapping[str, str],
    signed: list[str],
    algorithm: str | None = "rsa-sha256",
    key_id: str = "https://m.example/users/alice#main-key",
) -> str:
    """A Signature header built independently, the way Mastodon's Request#sign does."""
    lowered = {k.lower(): v for k, v in headers.items()}
    lines = [
        f"(request-target): {method.lower()} {path}"
        if name == "(request-target)"
        else f"{name}: {lowered[name]}"
        for name in signed
    ]
    raw = key.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    alg = f'algorithm="{algorithm}",' if algorithm else ""
    return (
        f'keyId="{key_id}",{alg}headers="{" ".join(signed)}",'
        f'signature="{base64.b64encode(raw).decode()}"'
    )


def mastodon_post(
    key: rsa.RSAPrivateKey, signed: list[str] | None = None, algorithm: str | None = "rsa-sha256"
) -> dict[str, str]:
    headers = {
        "Host": "blog.example",
        "Date": http_date(NOW),
        "Digest": "SHA-256=" + base64.b64encode(hashlib.sha256(BODY).digest()).decode(),
        "Content-Type": "application/activity+json",
        "User-Agent": "http.rb/5.2.0 (Mastodon/4.5.0; +https://m.example/)",
    }
    names = signed or ["(request-target)", "host", "date", "digest", "content-type"]
    headers["Signature"] = mastodon_signature(key, "POST", "/inbox", headers, names, algorithm)
    return headers


def test_mastodon_shaped_post(rsa_key: rsa.RSAPrivateKey) -> None:
    lookup = Lookup(rsa_key.public_key(), owner="https://m.example/users/alice")
    headers = mastodon_post(rsa_key)
    result = asyncio.run(
        verify_request("POST", "https://blog.example/inbox", headers, BODY, lookup, now=NOW)
    )
    assert result.owner == "https://m.example/users/alice"
    assert result.key_id == "https://m.example/users/alice#main-key"


def test_mastodon_shaped_post_hs2019_default(rsa_key: rsa.RSAPrivateKey) -> None:
    """No algorithm parameter means hs2019, verified as RSA-SHA256 (GoToSocial sends this)."""
    headers = mastodon_post(rsa_key, algorithm=None)
    assert "algorithm" not in headers["Signature"]
    lookup = Lookup(rsa_key.public_key())
    result = asyncio.run(verify_request("POST", "/inbox", headers, BODY, lookup, now=NOW))
    assert result.algorithm == "rsa-sha256"


def test_lowercase_digest_token_and_sha512(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = {
        "Host": "blog.example",
        "Date": http_date(NOW),
        "Digest": "sha-256="
        + base64.b64encode(hashlib.sha256(BODY).digest()).decode()
        + ",SHA-512="
        + base64.b64encode(hashlib.sha512(BODY).digest()).decode(),
    }
    signed = ["(request-target)", "host", "date", "digest"]
    headers["Signature"] = mastodon_signature(rsa_key, "POST", "/inbox", headers, signed)
    lookup = Lookup(rsa_key.public_key())
    assert asyncio.run(verify_request("POST", "/inbox", headers, BODY, lookup, now=NOW))


def test_mastodon_shaped_get_and_query_fallback(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = {"Host": "blog.example", "Date": http_date(NOW), "Accept": "application/json"}
    signed = ["(request-target)", "host", "date", "accept"]
    # Signed without the query string, received with it: the compat fallback accepts it.
    headers["Signature"] = mastodon_signature(rsa_key, "GET", "/ap/outbox.json", headers, signed)
    lookup = Lookup(rsa_key.public_key())
    url = "https://blog.example/ap/outbox.json?page=2"
    assert asyncio.run(verify_request("GET", url, headers, b"", lookup, now=NOW))
    # Signed with the query: verifies on the first try.
    headers["Signature"] = mastodon_signature(
        rsa_key, "GET", "/ap/outbox.json?page=2", headers, signed
    )
    assert asyncio.run(verify_request("GET", url, headers, b"", lookup, now=NOW))
    assert len(lookup.calls) == 2  # no refresh needed for either


def test_repeated_headers_are_comma_joined(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = {"Host": "blog.example", "Date": http_date(NOW), "Accept": "a/b, c/d"}
    signed = ["(request-target)", "host", "date", "accept"]
    sig = mastodon_signature(rsa_key, "GET", "/x", headers, signed)
    raw = httpx.Headers(
        [
            ("Host", "blog.example"),
            ("Date", http_date(NOW)),
            ("Accept", "a/b"),
            ("accept", " c/d"),
            ("Signature", sig),
        ]
    )
    lookup = Lookup(rsa_key.public_key())
    assert asyncio.run(verify_request("GET", "/x", raw, b"", lookup, now=NOW))


def test_created_pseudo_header_with_hs2019(rsa_key: rsa.RSAPrivateKey) -> None:
    created = int(NOW.timestamp())
    expires = created + 300
    lines = [
        "(request-target): post /inbox",
        f"(created): {created}",
        f"(expires): {expires}",
        "host: blog.example",
        f"digest: {digest_header(BODY)}",
    ]
    raw = rsa_key.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    params = (
        f'keyId="{KEY_ID}",algorithm="hs2019",created={created},expires={expires},'
        'headers="(request-target) (created) (expires) host digest",'
        f'signature="{base64.b64encode(raw).decode()}"'
    )
    headers = {"Host": "blog.example", "Digest": digest_header(BODY), "Signature": params}
    lookup = Lookup(rsa_key.public_key())
    assert asyncio.run(verify_request("POST", "/inbox", headers, BODY, lookup, now=NOW))
    later = NOW + dt.timedelta(seconds=301)
    with pytest.raises(SignatureError, match="expired"):
        asyncio.run(verify_request("POST", "/inbox", headers, BODY, lookup, now=later))
    # (created) with rsa-sha256 is refused.
    headers["Signature"] = params.replace("hs2019", "rsa-sha256")
    with pytest.raises(SignatureError, match="only be signed with algorithm hs2019"):
        asyncio.run(verify_request("POST", "/inbox", headers, BODY, lookup, now=NOW))


# ---- cavage rejections -----------------------------------------------------------------------


def expect(
    status: int,
    match: str,
    headers: Mapping[str, str],
    lookup: Lookup,
    *,
    method: str = "POST",
    url: str = "https://blog.example/inbox",
    body: bytes = BODY,
    now: dt.datetime = NOW,
) -> SignatureError:
    """Verification must fail with ``status`` and a message matching ``match``."""
    with pytest.raises(SignatureError, match=match or None) as info:
        asyncio.run(verify_request(method, url, headers, body, lookup, now=now))
    assert info.value.status == status
    return info.value


def test_wrong_key(rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey) -> None:
    lookup = Lookup(other_rsa_key.public_key())
    expect(401, "does not verify", mastodon_post(rsa_key), lookup)
    key_id = "https://m.example/users/alice#main-key"
    assert lookup.calls == [(key_id, False), (key_id, True)]  # one refresh, then refused


def test_tampered_body(rsa_key: rsa.RSAPrivateKey) -> None:
    lookup = Lookup(rsa_key.public_key())
    tampered = BODY.replace(b"Follow", b"Block")
    computed = base64.b64encode(hashlib.sha256(tampered).digest()).decode()
    err = expect(401, "Digest mismatch", mastodon_post(rsa_key), lookup, body=tampered)
    assert computed in str(err)
    assert lookup.calls == []


def test_digest_not_signed_on_post(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = mastodon_post(rsa_key, signed=["(request-target)", "host", "date"])
    expect(401, "must cover digest", headers, Lookup(rsa_key.public_key()))


def test_host_not_signed_on_get(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = {"Host": "blog.example", "Date": http_date(NOW)}
    headers["Signature"] = mastodon_signature(
        rsa_key, "GET", "/x", headers, ["(request-target)", "date"]
    )
    expect(401, "must cover host", headers, Lookup(rsa_key.public_key()), method="GET", body=b"")


def test_date_must_be_signed(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = mastodon_post(rsa_key, signed=["(request-target)", "host", "digest"])
    expect(401, "must cover date", headers, Lookup(rsa_key.public_key()))


def test_stale_date(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = mastodon_post(rsa_key)
    lookup = Lookup(rsa_key.public_key())
    ok = NOW + dt.timedelta(seconds=3600)
    assert asyncio.run(verify_request("POST", "/inbox", headers, BODY, lookup, now=ok))
    err = expect(401, "3601 s in the past", headers, lookup, now=ok + dt.timedelta(seconds=1))
    assert "clock skew" in str(err)


def test_future_date(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = mastodon_post(rsa_key)
    lookup = Lookup(rsa_key.public_key())
    ok = NOW - dt.timedelta(seconds=300)
    assert asyncio.run(verify_request("POST", "/inbox", headers, BODY, lookup, now=ok))
    expect(401, "301 s in the future", headers, lookup, now=ok - dt.timedelta(seconds=1))


def test_window_is_configurable(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = mastodon_post(rsa_key)
    lookup = Lookup(rsa_key.public_key())
    late = NOW + dt.timedelta(hours=2)
    assert asyncio.run(
        verify_request("POST", "/inbox", headers, BODY, lookup, now=late, max_age=3 * 3600)
    )


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "rsa-sha512", "ecdsa-sha256", "ed25519"])
def test_unknown_algorithm(rsa_key: rsa.RSAPrivateKey, algorithm: str) -> None:
    expect(
        401,
        "unsupported signature algorithm",
        mastodon_post(rsa_key, algorithm=algorithm),
        Lookup(rsa_key.public_key()),
    )


@pytest.mark.parametrize(
    "value",
    [
        'keyId="x",signature',
        'keyId="x" signature="YQ=="',
        'keyId="x",keyId="y",signature="YQ=="',
        'keyId="x",signature="not base64!"',
        'signature="YQ=="',
        'keyId="x",headers="",signature="YQ=="',
        'keyId="x",signature="YQ==",',
    ],
)
def test_malformed_signature_header(rsa_key: rsa.RSAPrivateKey, value: str) -> None:
    headers = {**mastodon_post(rsa_key), "Signature": value}
    expect(400, "", headers, Lookup(rsa_key.public_key()))


def test_malformed_date_header(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = {**mastodon_post(rsa_key), "Date": "yesterday"}
    expect(400, "not an HTTP date", headers, Lookup(rsa_key.public_key()))


def test_missing_signature(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = {"Host": "blog.example", "Date": http_date(NOW)}
    expect(401, "request is not signed", headers, Lookup(rsa_key.public_key()))
    headers["Authorization"] = "Bearer abc"
    expect(401, "request is not signed", headers, Lookup(rsa_key.public_key()))


def test_signed_header_missing(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = mastodon_post(rsa_key)
    del headers["Content-Type"]
    expect(401, "'content-type' is missing", headers, Lookup(rsa_key.public_key()))


def test_key_lookup_failure(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = mastodon_post(rsa_key)
    err = expect(401, "cannot fetch key", headers, Lookup(FetchError("410 Gone", status=410)))
    assert "410 Gone" in str(err)
    expect(403, "blocked", headers, Lookup(SignatureError("domain blocked", status=403)))


def test_key_rotation(rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey) -> None:
    """Cached old key fails, the refreshed key verifies; refresh is asked for exactly once."""
    lookup = Lookup(other_rsa_key.public_key(), rsa_key.public_key())
    headers = mastodon_post(rsa_key)
    result = asyncio.run(verify_request("POST", "/inbox", headers, BODY, lookup, now=NOW))
    assert result.scheme == "cavage"
    key_id = "https://m.example/users/alice#main-key"
    assert lookup.calls == [(key_id, False), (key_id, True)]


def test_key_rotation_rfc9421(rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey) -> None:
    _, [sent] = send(HTTPSignatureAuth(rsa_key, KEY_ID, "rfc9421", clock=Clock()))
    lookup = Lookup(other_rsa_key.public_key(), rsa_key.public_key())
    assert verify(sent, lookup).scheme == "rfc9421"
    assert lookup.calls == [(KEY_ID, False), (KEY_ID, True)]


def test_rsa_algorithm_with_ed25519_key(
    rsa_key: rsa.RSAPrivateKey, ed_key: Ed25519PrivateKey
) -> None:
    expect(401, "does not verify", mastodon_post(rsa_key), Lookup(ed_key.public_key()))


# ---- RFC 9421 --------------------------------------------------------------------------------


def rfc9421_headers(
    key: rsa.RSAPrivateKey,
    components: list[str],
    params: str,
    *,
    method: str = "POST",
    url: str = INBOX,
    body: bytes = BODY,
    extra: Mapping[str, str] | None = None,
    label: str = "sig1",
) -> dict[str, str]:
    """Hand-built RFC 9421 headers (signature base written out as the RFC shows it)."""
    headers = {"Content-Digest": content_digest_header(body), **(extra or {})}
    lowered = {k.lower(): v for k, v in headers.items()}
    derived = {
        "@method": method,
        "@target-uri": url,
        "@authority": "remote.example",
        "@path": "/inbox",
    }
    inner = "(" + " ".join(f'"{c}"' for c in components) + ")" + params
    lines = [f'"{c}": {derived[c] if c in derived else lowered[c]}' for c in components]
    lines.append(f'"@signature-params": {inner}')
    raw = key.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    headers["Signature-Input"] = f"{label}={inner}"
    headers["Signature"] = f"{label}=:{base64.b64encode(raw).decode()}:"
    return headers


CREATED = f";created={int(NOW.timestamp())}"
KEYID = f';keyid="{KEY_ID}"'


def expect9421(
    status: int,
    match: str,
    headers: Mapping[str, str],
    lookup: Lookup,
    body: bytes = BODY,
    method: str = "POST",
) -> SignatureError:
    return expect(status, match, headers, lookup, url=INBOX, body=body, method=method)


def test_rfc9421_hand_built_authority_and_path(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = rfc9421_headers(
        rsa_key, ["@method", "@authority", "@path", "content-digest"], CREATED + KEYID
    )
    lookup = Lookup(rsa_key.public_key())
    result = asyncio.run(verify_request("POST", INBOX, headers, BODY, lookup, now=NOW))
    assert result.algorithm == "rsa-v1_5-sha256"  # inferred from the RSA key


def test_rfc9421_content_digest_mismatch(rsa_key: rsa.RSAPrivateKey) -> None:
    _, [sent] = send(HTTPSignatureAuth(rsa_key, KEY_ID, "rfc9421", clock=Clock()))
    tampered = BODY + b" "
    computed = base64.b64encode(hashlib.sha256(tampered).digest()).decode()
    err = expect9421(
        401, "Content-Digest mismatch", sent.headers, Lookup(rsa_key.public_key()), body=tampered
    )
    assert computed in str(err)


def test_rfc9421_missing_created(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = rfc9421_headers(rsa_key, ["@method", "@target-uri", "content-digest"], KEYID)
    expect9421(401, "no created", headers, Lookup(rsa_key.public_key()))


def test_rfc9421_post_must_cover_content_digest(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = rfc9421_headers(rsa_key, ["@method", "@target-uri"], CREATED + KEYID)
    expect9421(401, "must cover content-digest", headers, Lookup(rsa_key.public_key()))


def test_rfc9421_must_cover_method_and_target(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = rfc9421_headers(rsa_key, ["@target-uri", "content-digest"], CREATED + KEYID)
    expect9421(401, "must cover @method", headers, Lookup(rsa_key.public_key()))
    headers = rfc9421_headers(rsa_key, ["@method", "@authority", "content-digest"], CREATED + KEYID)
    expect9421(401, "must cover @target-uri", headers, Lookup(rsa_key.public_key()))


def test_rfc9421_stale_created(rsa_key: rsa.RSAPrivateKey) -> None:
    _, [sent] = send(HTTPSignatureAuth(rsa_key, KEY_ID, "rfc9421", clock=Clock()))
    later = NOW + dt.timedelta(hours=2)
    expect(401, "in the past", sent.headers, Lookup(rsa_key.public_key()), url=INBOX, now=later)


def test_rfc9421_unknown_alg(rsa_key: rsa.RSAPrivateKey) -> None:
    headers = rfc9421_headers(
        rsa_key,
        ["@method", "@target-uri", "content-digest"],
        CREATED + KEYID + ';alg="hmac-sha256"',
    )
    expect9421(401, "unsupported signature algorithm", headers, Lookup(rsa_key.public_key()))


@pytest.mark.parametrize(
    ("signature_input", "signature"),
    [
        ('sig1=("@method" "@target-uri"', "sig1=:YQ==:"),
        ('sig1="not a list"', "sig1=:YQ==:"),
        ('sig1=("@method" "@target-uri" "content-digest");created=1;keyid="k"', 'sig1="str"'),
        ('sig1=("@method" "@method" "@target-uri");created=1;keyid="k"', "sig1=:YQ==:"),
        ('sig1=("@method" "@target-uri");created=1;keyid="k"', "sig1=:YQ=="),
    ],
)
def test_rfc9421_malformed(
    rsa_key: rsa.RSAPrivateKey, signature_input: str, signature: str
) -> None:
    headers = {
        "Signature-Input": signature_input,
        "Signature": signature,
        "Content-Digest": content_digest_header(BODY),
    }
    expect9421(400, "", headers, Lookup(rsa_key.public_key()), method="GET")


def test_rfc9421_first_suitable_label_is_used(rsa_key: rsa.RSAPrivateKey) -> None:
    good = rfc9421_headers(
        rsa_key, ["@method", "@target-uri", "content-digest"], CREATED + KEYID, label="good"
    )
    headers = {
        **good,
        "Signature-Input": 'weak=("@method");created=1;keyid="k", ' + good["Signature-Input"],
        "Signature": "weak=:YQ==:, " + good["Signature"],
    }
    lookup = Lookup(rsa_key.public_key())
    assert asyncio.run(verify_request("POST", INBOX, headers, BODY, lookup, now=NOW))


def test_rfc9421_sf_component(rsa_key: rsa.RSAPrivateKey) -> None:
    """A header covered with ;sf is signed in its re-serialized (canonical) form."""
    sha256 = base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    sha512 = base64.b64encode(hashlib.sha512(BODY).digest()).decode()
    received = f"sha-256=:{sha256}:,   sha-512=:{sha512}:"
    canonical = f"sha-256=:{sha256}:, sha-512=:{sha512}:"
    inner = f'("@method" "@target-uri" "content-digest";sf){CREATED}{KEYID}'
    base = (
        f'"@method": POST\n"@target-uri": {INBOX}\n"content-digest";sf: {canonical}\n'
        f'"@signature-params": {inner}'
    )
    raw = rsa_key.sign(base.encode(), padding.PKCS1v15(), hashes.SHA256())
    headers = {
        "Content-Digest": received,
        "Signature-Input": f"sig1={inner}",
        "Signature": f"sig1=:{base64.b64encode(raw).decode()}:",
    }
    lookup = Lookup(rsa_key.public_key())
    assert asyncio.run(verify_request("POST", INBOX, headers, BODY, lookup, now=NOW))


# RFC 9421 Appendix B.1.4 test-key-ed25519 (private part as its JWK "d") and B.2.6.
RFC9421_ED25519_D = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU="
RFC9421_B26_SIGNATURE = (
    "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
)


def test_rfc9421_signature_base_matches_rfc_example() -> None:
    """Our signature base for RFC 9421 B.2.6 yields the RFC's Ed25519 signature exactly."""
    key = Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(RFC9421_ED25519_D))
    headers = {
        "host": "example.com",
        "date": "Tue, 20 Apr 2021 02:07:55 GMT",
        "content-type": "application/json",
        "content-length": "18",
    }
    components: list[tuple[str, dict[str, object]]] = [
        (name, {})
        for name in ("date", "@method", "@path", "@authority", "content-type", "content-length")
    ]
    params = (
        '("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"'
    )
    target = Target.parse("https://example.com/foo?param=Value&Pet=dog", headers)
    base = signature_base("POST", target, headers, components, params)
    assert base64.b64encode(key.sign(base)).decode() == RFC9421_B26_SIGNATURE
    # And the derived components of RFC 9421 section 2.2 for that request:
    assert target.uri == "https://example.com/foo?param=Value&Pet=dog"
    assert target.request_target == "/foo?param=Value&Pet=dog"
    query: list[tuple[str, dict[str, object]]] = [
        ("@query", {}),
        ("@scheme", {}),
        ("@request-target", {}),
    ]
    text = signature_base("POST", target, headers, query, "()").decode()
    assert text.splitlines()[:3] == [
        '"@query": ?param=Value&Pet=dog',
        '"@scheme": https',
        '"@request-target": /foo?param=Value&Pet=dog',
    ]


def test_a_quoted_cavage_parameter_may_hold_escapes() -> None:
    """draft-cavage-12 values are quoted strings (RFC 7230 ``quoted-pair``): ``\\"`` is a
    quote and ``\\\\`` a backslash; a value without one is taken as it is."""
    from bridge.federation.signatures import cavage

    parsed = cavage.parse(
        'keyId="https://a.example/k\\"1\\\\",algorithm="rsa-sha256",created=1700000000,'
        'headers="(request-target) date",signature="c2ln"'
    )
    assert parsed == {
        "keyid": 'https://a.example/k"1\\',
        "algorithm": "rsa-sha256",
        "created": "1700000000",
        "headers": "(request-target) date",
        "signature": "c2ln",
    }
