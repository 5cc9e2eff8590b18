"""Finding a remote account's actor from its handle, with WebFinger (RFC 7033).

``resolve_handle(fetcher, "@user@host")`` asks
``https://host/.well-known/webfinger?resource=acct:user@host`` and returns the ``href`` of
the ``rel="self"`` link, which is the actor id (Mastodon's documented lookup:
https://docs.joinmastodon.org/spec/webfinger/).  The fetch goes through ``SafeFetcher``,
so private addresses are refused unless the site allows them; for such a host
(``127.*``, ``localhost``) plain ``http`` is used, as loopback test peers serve no TLS.
"""

from __future__ import annotations

import json

from bridge.errors import FetchError
from bridge.federation.fetch import SafeFetcher

JRD_ACCEPT = "application/jrd+json, application/json"


def webfinger_url(handle: str, *, allow_private: bool = False) -> str:
    """The WebFinger query for ``@user@host`` (or ``user@host``)."""
    user, _, host = handle.lstrip("@").partition("@")
    if not user or not host:
        raise FetchError(f"{handle}: expected @user@host or an actor URL")
    loopback = allow_private and host.startswith(("127.", "localhost"))
    scheme = "http" if loopback else "https"
    return f"{scheme}://{host}/.well-known/webfinger?resource=acct:{user}@{host}"


async def resolve_handle(fetcher: SafeFetcher, handle: str, *, allow_private: bool = False) -> str:
    """The actor id of ``@user@host``; ``FetchError`` names the URL when there is none."""
    url = webfinger_url(handle, allow_private=allow_private)
    page = await fetcher.get(url, accept=JRD_ACCEPT)
    if page.status != 200:
        raise FetchError(f"{url}: HTTP {page.status}")
    try:
        links = json.loads(page.body).get("links", [])
    except (ValueError, AttributeError):
        raise FetchError(f"{url}: not a JSON WebFinger document") from None
    for link in links if isinstance(links, list) else []:
        if (
            isinstance(link, dict)
            and link.get("rel") == "self"
            and isinstance(link.get("href"), str)
        ):
            return str(link["href"])
    raise FetchError(f"{url}: no ActivityPub actor link")
