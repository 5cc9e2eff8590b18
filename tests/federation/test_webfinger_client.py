"""Resolving ``@user@host`` to an actor id with WebFinger, over real loopback HTTP."""

from __future__ import annotations

import json

import pytest

from bridge.errors import FetchError
from bridge.federation.fetch import SafeFetcher
from bridge.federation.webfinger_client import resolve_handle, webfinger_url
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture

JRD = "application/jrd+json"


def test_the_query_is_mastodons_acct_lookup() -> None:
    # https://docs.joinmastodon.org/spec/webfinger/: GET /.well-known/webfinger?resource=acct:
    assert webfinger_url("@alice@social.example") == (
        "https://social.example/.well-known/webfinger?resource=acct:alice@social.example"
    )
    assert webfinger_url("alice@127.0.0.1:8080", allow_private=True).startswith("http://")
    assert webfinger_url("alice@127.0.0.1:8080").startswith("https://")


@pytest.mark.parametrize("handle", ["alice", "@alice", "@@host", "alice@"])
def test_a_handle_without_user_and_host_is_one_line(handle: str) -> None:
    with pytest.raises(FetchError) as caught:
        webfinger_url(handle)
    assert str(caught.value) == f"{handle}: expected @user@host or an actor URL"


@pytest.mark.anyio
async def test_the_self_link_is_the_actor(web: WebServer) -> None:
    host = web.url("/").split("//", 1)[1].rstrip("/")
    doc = {
        "subject": f"acct:alice@{host}",
        "links": [
            {"rel": "http://webfinger.net/rel/profile-page", "href": web.url("/@alice")},
            {"rel": "self", "type": "application/activity+json", "href": web.url("/users/a")},
        ],
    }
    web.route("/.well-known/webfinger", body=json.dumps(doc), content_type=JRD)
    fetcher = SafeFetcher(allow_private=True)
    try:
        actor = await resolve_handle(fetcher, f"@alice@{host}", allow_private=True)
    finally:
        await fetcher.aclose()
    assert actor == web.url("/users/a")
    assert web.requests_to("/.well-known/webfinger")[0].query == f"resource=acct:alice@{host}"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, "no", "HTTP 404"),
        (200, json.dumps({"links": [{"rel": "alternate", "href": "x"}]}), "no ActivityPub"),
        (200, "not json", "not a JSON WebFinger document"),
    ],
)
async def test_no_actor_is_one_line_naming_the_url(
    web: WebServer, status: int, body: str, expected: str
) -> None:
    host = web.url("/").split("//", 1)[1].rstrip("/")
    web.route("/.well-known/webfinger", status=status, body=body, content_type=JRD)
    fetcher = SafeFetcher(allow_private=True)
    try:
        with pytest.raises(FetchError) as caught:
            await resolve_handle(fetcher, f"bob@{host}", allow_private=True)
    finally:
        await fetcher.aclose()
    message = str(caught.value)
    assert message.startswith(f"http://{host}/.well-known/webfinger?resource=acct:bob@{host}: ")
    assert expected in message
    assert "\n" not in message
