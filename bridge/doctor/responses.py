"""What every doctor check reads: the expected site, media types, JSON, page links.

The checks in ``discovery``, ``documents`` and ``endpoints`` are pure functions over
``httpx.Response`` values already fetched (redirects included); ``probe`` fetches them.
Each returns one ``Finding``: the worst of its problems, or ok.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from bridge.config import SiteConfig
from bridge.doctor.findings import Finding, ok

AP_JSON = "application/activity+json"
AS_PROFILE = "https://www.w3.org/ns/activitystreams"


@dataclass(frozen=True)
class Expect:
    """What a correct deployment of this site answers: from its ``site.toml``, or read
    from the site itself when only its address is known (``probe.diagnose_url``)."""

    base_url: str
    federation_url: str
    username: str
    actor_id: str
    key_id: str
    gone: tuple[str, ...] = ()
    """URLs of a deleted post that must answer 410 (``bridge.site.gone.sample``)."""

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    @property
    def acct(self) -> str:
        return f"acct:{self.username}@{self.host}"

    @classmethod
    def from_config(cls, config: SiteConfig, gone: tuple[str, ...] = ()) -> Expect:
        return cls(
            config.base_url,
            config.federation_url,
            config.username,
            config.actor_id,
            config.key_id,
            gone,
        )


def media_type(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).split(";")[0].strip().lower()


def is_activitypub(response: httpx.Response) -> bool:
    ctype = response.headers.get("content-type", "").lower()
    if media_type(response) == AP_JSON:
        return True
    return media_type(response) == "application/ld+json" and AS_PROFILE in ctype


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        value = json.loads(response.content)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def url_of(response: httpx.Response) -> str:
    return str(response.request.url)


def type_label(response: httpx.Response) -> str:
    return response.headers.get("content-type") or "no Content-Type"


def verdict(check: str, problems: list[Finding], message: str) -> Finding:
    """One line for a check: its failures, else its warnings, else ``ok``."""
    for level in ("failure", "warning"):
        worst = [p for p in problems if p.level == level]
        if worst:
            fixes = "; ".join(dict.fromkeys(p.fix for p in worst if p.fix))
            return Finding(check, worst[0].level, "; ".join(p.message for p in worst), fixes)
    return ok(check, message)


def base_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("link", "a"):
            self.links.append({k: v or "" for k, v in attrs})


def html_link(response: httpx.Response, rel: str, type_: str = "") -> str | None:
    """The first ``rel`` link of an HTML page, from its Link header or its markup."""
    for value in response.headers.get_list("link"):
        match = re.match(r'\s*<([^>]+)>\s*;.*\brel="?([^";]+)', value)
        if match and rel in match.group(2).split() and not type_:
            return urljoin(url_of(response), str(match.group(1)))
    parser = _Links()
    parser.feed(response.text[:1_000_000])
    for link in parser.links:
        if rel in link.get("rel", "").split() and (not type_ or link.get("type") == type_):
            return urljoin(url_of(response), link.get("href", ""))
    return None
