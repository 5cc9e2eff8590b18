"""The HTTP side of `indiebridge doctor`: fetch what a fediverse server would, then check it.

``diagnose`` takes the ``httpx.AsyncClient`` to use (tests pass one over an
``httpx.MockTransport``); it verifies TLS the way a server would (the client's default
trust store) and follows redirects by hand, so each check sees every hop.  Requests are
bounded: 10 s and 1 MiB each, at most 3 redirects (Mastodon's limits, ``app/lib/request.rb``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from bridge.doctor import discovery, documents, endpoints
from bridge.doctor.findings import Finding, failure, ok
from bridge.doctor.responses import (
    AP_JSON,
    AS_PROFILE,
    Expect,
    base_of,
    html_link,
    is_activitypub,
    json_object,
)

ACCEPT_AP = f'{AP_JSON}, application/ld+json; profile="{AS_PROFILE}"'
ACCEPT_JRD = "application/jrd+json, application/json"
MAX_HOPS = 3
SAMPLE_ITEMS = 3  # outbox items fetched by id
MAX_BODY = 1_048_576  # Mastodon refuses bodies over 1 MiB (app/lib/request.rb)
TIMEOUT = httpx.Timeout(10.0)
USER_AGENT = "indiebridge-doctor"


class Unreachable(Exception):
    """A request got no HTTP answer at all (connection, TLS or timeout)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


def make_client() -> httpx.AsyncClient:
    """A client as a fediverse server uses: TLS verified, no proxies from the environment."""
    return httpx.AsyncClient(timeout=TIMEOUT, trust_env=False, headers={"User-Agent": USER_AGENT})


async def _send(
    client: httpx.AsyncClient, request: httpx.Request, auth: httpx.Auth | None = None
) -> httpx.Response:
    """Send, reading at most ``MAX_BODY`` bytes of the answer (a larger one is an error)."""
    try:
        if auth is None:
            response = await client.send(request, stream=True)
        else:
            response = await client.send(request, stream=True, auth=auth)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise Unreachable(str(request.url), f"answer larger than {MAX_BODY} bytes")
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        raise Unreachable(str(request.url), _reason(exc)) from None
    # The body is decoded already: the copy keeps every header but the encoding's.
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code, headers=headers, content=bytes(body), request=request
    )


def _reason(exc: httpx.HTTPError) -> str:
    text = re.sub(r"\s*\(_ssl\.c:\d+\)", "", str(exc) or type(exc).__name__)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS certificate not valid ({text.split('certificate verify failed:')[-1].strip()})"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return "no TLS on this port (the server answered plain HTTP)"
    return text.splitlines()[0][:200]


async def hops(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    follow: tuple[int, ...] = (301, 302, 303, 307, 308),
) -> list[httpx.Response]:
    """The responses to one request and the redirects in ``follow`` (at most 3)."""
    seen: list[httpx.Response] = []
    for _ in range(MAX_HOPS + 1):
        request = client.build_request(method, url, headers=headers, content=body or None)
        response = await _send(client, request)
        seen.append(response)
        if response.status_code not in follow or "location" not in response.headers:
            break
        url = urljoin(url, response.headers["location"])
    return seen


async def get(client: httpx.AsyncClient, url: str, accept: str) -> httpx.Response:
    return (await hops(client, "GET", url, headers={"Accept": accept}))[-1]


def _doc(response: httpx.Response | None) -> dict[str, Any]:
    return (json_object(response) if response is not None else None) or {}


async def diagnose(
    expect: Expect,
    client: httpx.AsyncClient,
    *,
    auth: httpx.Auth | None = None,
    now: Callable[[], float] = time.time,
) -> list[Finding]:
    """Every check, in the order a server meets them; one finding each.

    When the site cannot be reached over TLS at all, that one failure is returned: every
    other check would only repeat it.
    """
    home = expect.base_url + "/"
    if urlsplit(home).scheme != "https":
        return [
            failure(
                "tls",
                f"{home} is not HTTPS; fediverse servers fetch and deliver over HTTPS only",
                f'serve the site over TLS and set base_url = "https://{expect.host}"',
            )
        ]
    try:
        page = await get(client, home, "text/html")
    except Unreachable as exc:
        return [failure("tls", f"{exc.url}: {exc.reason}", _tls_fix(exc.reason))]
    found = [ok("tls", f"{home} answers over verified TLS ({page.status_code})")]
    try:
        await _run(expect, client, auth, now, found)
    except Unreachable as exc:
        found.append(failure("network", f"{exc.url}: {exc.reason}", "check the web server"))
    return found


async def diagnose_url(base_url: str, client: httpx.AsyncClient) -> list[Finding]:
    """Every check of a site known only by its address (no ``site.toml`` at hand).

    What to expect is read from the site itself, as a server that is given the page's URL
    does: the home page's ``<link rel="alternate" type="application/activity+json">`` names
    the actor, whose ``preferredUsername``, key and inbox give the rest.  The Host check
    needs the site's key, so it is skipped (a warning).
    """
    if urlsplit(base_url).scheme != "https":
        return await diagnose(Expect(base_url, base_url, "", "", ""), client)
    try:
        home = await get(client, base_url + "/", "text/html")
        actor_url = html_link(home, "alternate", AP_JSON)
        actor = _doc(await get(client, actor_url, ACCEPT_AP)) if actor_url else {}
    except Unreachable as exc:
        return [failure("tls", f"{exc.url}: {exc.reason}", _tls_fix(exc.reason))]
    key = actor.get("publicKey") if isinstance(actor.get("publicKey"), dict) else {}
    fields = (actor.get("preferredUsername"), actor.get("inbox"), (key or {}).get("id"))
    if not actor_url or not all(isinstance(field, str) for field in fields):
        return [
            failure(
                "discovery",
                f"{base_url}/ names no actor with preferredUsername, inbox and publicKey"
                f" (alternate link: {actor_url})",
                "run `indiebridge doctor` in the site's folder (--site) to check it by site.toml",
            )
        ]
    username, inbox, key_id = (str(field) for field in fields)
    expect = Expect(base_url, base_of(inbox), username, str(actor_url), key_id)
    return await diagnose(expect, client)


def _tls_fix(reason: str) -> str:
    if reason.startswith("no TLS"):
        return "nginx: `listen 443 ssl;` with ssl_certificate lines; Caddy serves TLS by itself"
    if reason.startswith("TLS certificate"):
        return "install a certificate valid for the host name (Let's Encrypt: certbot or Caddy)"
    return "start the web server and open port 443"


async def _run(
    expect: Expect,
    client: httpx.AsyncClient,
    auth: httpx.Auth | None,
    now: Callable[[], float],
    found: list[Finding],
) -> None:
    wf_url = f"https://{expect.host}/.well-known/webfinger?resource={expect.acct}"
    wf = await hops(
        client, "GET", wf_url, headers={"Accept": ACCEPT_JRD}, follow=(301, 302, 307, 308)
    )
    found.append(discovery.webfinger(expect, wf))
    found.append(
        discovery.host_meta(
            await get(client, home_of(expect, "/.well-known/host-meta"), "application/xrd+xml")
        )
    )

    actor_response = await get(client, expect.actor_id, ACCEPT_AP)
    found.append(documents.actor(expect, actor_response))
    actor_doc = _doc(actor_response)
    inbox_url = str(actor_doc.get("inbox") or f"{expect.federation_url}/ap/inbox")
    shared = actor_doc.get("endpoints", {}) if isinstance(actor_doc.get("endpoints"), dict) else {}
    shared_url = str(shared.get("sharedInbox") or f"{expect.federation_url}/inbox")

    probe = json.dumps({"type": "Undo", "actor": "https://doctor.invalid/actor"}).encode()
    post_headers = {"Content-Type": AP_JSON}
    inbox_hops = await hops(
        client, "POST", inbox_url, headers=post_headers, body=probe, follow=(307, 308)
    )
    found.append(endpoints.inbox("inbox", inbox_url, inbox_hops))
    shared_hops = await hops(
        client, "POST", shared_url, headers=post_headers, body=probe, follow=(307, 308)
    )
    found.append(endpoints.inbox("shared inbox", shared_url, shared_hops))
    found.append(endpoints.clock(inbox_hops[-1], now()))
    found.append(
        endpoints.host_header(expect, await _signed_probe(client, shared_url, auth, probe))
    )
    await _posts(expect, client, actor_doc, found, [actor_response])
    if expect.gone:
        found.append(endpoints.gone([await get(client, url, "text/html") for url in expect.gone]))

    links = await get(client, home_of(expect, "/.well-known/nodeinfo"), "application/json")
    ni_url = next(
        (
            str(link.get("href"))
            for link in _doc(links).get("links") or []
            if isinstance(link, dict) and str(link.get("rel", "")).startswith("http://nodeinfo")
        ),
        None,
    )
    ni = await get(client, ni_url, "application/json") if ni_url else None
    found.append(discovery.nodeinfo(links, ni))


def home_of(expect: Expect, path: str) -> str:
    return f"https://{expect.host}{path}"


async def _signed_probe(
    client: httpx.AsyncClient, url: str, auth: httpx.Auth | None, body: bytes
) -> httpx.Response | None:
    """POST ``body`` signed with the site's own key.  The daemon verifies the signature and
    then refuses the activity (its actor is not the key's owner), so nothing is stored."""
    if auth is None:
        return None
    request = client.build_request("POST", url, headers={"Content-Type": AP_JSON}, content=body)
    response = await _send(client, request, auth)
    return response


async def _posts(
    expect: Expect,
    client: httpx.AsyncClient,
    actor_doc: dict[str, Any],
    found: list[Finding],
    cached: list[httpx.Response],
) -> None:
    """The outbox, one sample post (its page, alternate link, proof) and caching."""
    outbox = await get(
        client, str(actor_doc.get("outbox") or expect.base_url + "/ap/outbox.json"), ACCEPT_AP
    )
    first = _doc(outbox).get("first")
    page = await get(client, first, ACCEPT_AP) if isinstance(first, str) else None
    items = [i for i in _doc(page).get("orderedItems") or [] if isinstance(i, dict)]
    ids = [str(i["id"]) for i in items[:SAMPLE_ITEMS] if isinstance(i.get("id"), str)]
    fetched = [await get(client, item_id, ACCEPT_AP) for item_id in ids]
    found.append(documents.outbox(outbox, page, fetched))
    sample = next(
        (
            item.get("object")
            for item in items
            if isinstance(item, dict) and isinstance(item.get("object"), dict)
        ),
        None,
    )
    if not isinstance(sample, dict) or not isinstance(sample.get("url"), str):
        found.append(
            failure("post", "the outbox has no post to check", "publish a post, rebuild, upload")
        )
        return
    html_url = str(sample["url"])
    found.append(documents.post_page("negotiation", await get(client, html_url, ACCEPT_AP)))
    html = await get(client, html_url, "text/html")
    alternate = html_link(html, "alternate", AP_JSON)
    document = await get(client, alternate, ACCEPT_AP) if alternate else None
    found.append(documents.post_document(html, document))
    if document is not None and is_activitypub(document):
        found.append(documents.proof(_doc(document), actor_doc))
        cached.append(document)
    endpoint = html_link(html, "webmention")
    reply = None
    if endpoint:
        reply = (await hops(client, "POST", endpoint, follow=(307, 308)))[-1]
    found.append(endpoints.webmention(endpoint, reply))
    found.append(documents.cache([*cached, html]))
