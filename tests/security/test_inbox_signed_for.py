"""Requests signed for another server: the signed authority must be our own host.

Rule (SECURITY.md, "The inbox"): a POST must sign ``host`` (cavage) or cover ``@authority``/
``@target-uri`` (RFC 9421), and that authority must be ``federation_url``'s host: a request
signed for ``other.example/inbox`` and replayed here with ``Host: other.example`` is refused
under both schemes.  Case, a trailing dot and the default port do not matter; another port
does.  Also: a cavage signature that binds the body with an RFC 9530 ``Content-Digest``
instead of ``Digest`` is accepted when the body matches.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bridge.federation.signatures import (
    content_digest_header,
    digest_header,
    http_date,
    sign_request,
)
from tests.security.conftest import ALICE, InboxHarness

pytestmark = [pytest.mark.anyio, pytest.mark.category("signed-for")]


def follow(h: InboxHarness, n: int = 1) -> dict[str, Any]:
    return {"id": f"{ALICE}#follows/{n}", "type": "Follow", "actor": ALICE, "object": h.actor_id}


def our_host(h: InboxHarness) -> str:
    return httpx.URL(h.config.federation_url).netloc.decode()


async def replay(h: InboxHarness, host: str, scheme: str, path: str = "/inbox") -> httpx.Response:
    """Sign a Follow for ``https://<host><path>`` and send those exact bytes to our inbox."""
    request = httpx.Request(
        "POST",
        f"https://{host}{path}",
        content=json.dumps(follow(h)).encode(),
        headers={"Content-Type": "application/activity+json", "Host": host},
    )
    sign_request(request, h.keys[ALICE], ALICE + "#main-key", scheme, dt.datetime.now(dt.UTC))  # type: ignore[arg-type]
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    return await h.client.post(path, content=request.content, headers=headers)


def cavage_headers(
    h: InboxHarness, body: bytes, signed: list[str], extra: dict[str, str]
) -> dict[str, str]:
    """A hand-made cavage signature over exactly ``signed``."""
    headers = {
        "content-type": "application/activity+json",
        "host": our_host(h),
        "date": http_date(dt.datetime.now(dt.UTC)),
        **extra,
    }
    lines = [
        f"{name}: {'post /inbox' if name == '(request-target)' else headers[name]}"
        for name in signed
    ]
    signature = h.keys[ALICE].sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    headers["signature"] = (
        f'keyId="{ALICE}#main-key",algorithm="rsa-sha256",headers="{" ".join(signed)}",'
        f'signature="{base64.b64encode(signature).decode()}"'
    )
    return headers


async def assert_refused(h: InboxHarness, response: httpx.Response, before: Any) -> None:
    assert response.status_code == 401, response.text
    assert await h.process() == 0
    assert h.store() == before
    assert h.sent == []


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
@pytest.mark.parametrize(
    "host",
    ["other.example", "blog.example.other.example", "blog.example:8443", "evil-blog.example"],
)
async def test_a_request_signed_for_another_server_is_refused(
    inbox: InboxHarness, scheme: str, host: str
) -> None:
    before = inbox.store()
    r = await replay(inbox, host, scheme)
    await assert_refused(inbox, r, before)
    assert "another server" in r.json()["error"]


@pytest.mark.parametrize(
    ("scheme", "spelling"),
    [
        ("cavage", "upper"),
        ("cavage", "trailing-dot"),
        ("cavage", "default-port"),
        # httpx signs @target-uri normalised (lower case, no default port) while the Host
        # header keeps the spelling; only the trailing dot survives into both.
        ("rfc9421", "trailing-dot"),
    ],
)
async def test_our_host_in_any_equivalent_spelling_is_accepted(
    inbox: InboxHarness, scheme: str, spelling: str
) -> None:
    host = our_host(inbox)
    host = {"upper": host.upper(), "trailing-dot": host + ".", "default-port": host + ":443"}[
        spelling
    ]
    r = await replay(inbox, host, scheme)
    assert r.status_code == 202, r.text
    assert [row["type"] for row in inbox.inbox_rows()] == ["Follow"]


async def test_a_post_that_does_not_sign_host_is_refused(inbox: InboxHarness) -> None:
    """Mastodon asks ``host`` only of a GET; without it on a POST a replay elsewhere passes."""
    before = inbox.store()
    body = json.dumps(follow(inbox)).encode()
    headers = cavage_headers(
        inbox, body, ["(request-target)", "date", "digest"], {"digest": digest_header(body)}
    )
    r = await inbox.client.post("/inbox", content=body, headers=headers)
    await assert_refused(inbox, r, before)
    assert "must cover host" in r.json()["error"]


async def test_cavage_with_a_content_digest_is_accepted(inbox: InboxHarness) -> None:
    body = json.dumps(follow(inbox)).encode()
    signed = ["(request-target)", "host", "date", "content-digest"]
    headers = cavage_headers(inbox, body, signed, {"content-digest": content_digest_header(body)})
    r = await inbox.client.post("/inbox", content=body, headers=headers)
    assert r.status_code == 202, r.text
    assert await inbox.process() == 1
    assert [row["status"] for row in inbox.inbox_rows()] == ["done"]


@pytest.mark.parametrize("header", ["stale", "missing", "sha-512-wrong"])
async def test_cavage_with_a_content_digest_of_another_body_is_refused(
    inbox: InboxHarness, header: str
) -> None:
    before = inbox.store()
    body = json.dumps(follow(inbox)).encode()
    other = json.dumps(follow(inbox, n=2)).encode()
    values = {
        "stale": content_digest_header(other),
        "missing": None,
        "sha-512-wrong": content_digest_header(body)
        + ", sha-512=:"
        + base64.b64encode(b"\0" * 64).decode()
        + ":",
    }
    extra = {} if values[header] is None else {"content-digest": str(values[header])}
    signed = ["(request-target)", "host", "date", "content-digest"]
    if header == "missing":
        headers = cavage_headers(inbox, body, ["(request-target)", "host", "date"], extra)
        headers["signature"] = headers["signature"].replace(
            'headers="(request-target) host date"',
            'headers="(request-target) host date content-digest"',
        )
    else:
        headers = cavage_headers(inbox, body, signed, extra)
    r = await inbox.client.post("/inbox", content=body, headers=headers)
    await assert_refused(inbox, r, before)
