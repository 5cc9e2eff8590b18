"""Sending Webmentions, and the link checks both sides of Webmention need.

* ``discover_endpoint`` follows the W3C Webmention recommendation (section 3.1.2): GET the
  target following redirects; the first ``Link`` header with rel ``webmention`` wins;
  otherwise, for HTML only, the first ``<link>`` or ``<a>`` in document order whose rel
  token list contains ``webmention`` and that has an ``href``.  Relative endpoints are
  resolved against the final (post-redirect) URL; ``href=""`` is the page itself; the
  endpoint's query string is kept as is.  HTML is parsed (``html.parser``), never matched
  with patterns, so comments and escaped markup cannot plant a decoy endpoint.
* ``send_webmention`` discovers and POSTs ``source`` and ``target`` form-encoded.
* ``find_links`` lists the outgoing links of a post (whom to notify).
* ``links_to`` is the receiver's check that a source really links to a target.

Every network access goes through ``SafeFetcher``, so an endpoint or a redirect that
points at a private address is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

from bridge.errors import FetchError
from bridge.federation.fetch import SafeFetcher

__all__ = [
    "SendResult",
    "discover_endpoint",
    "endpoint_from_html",
    "endpoint_from_link_headers",
    "find_links",
    "links_to",
    "parse_link_header",
    "send_webmention",
]

DISCOVERY_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_HTML_SPACE = " \t\n\f\r"


def _join(base: str, ref: str) -> str | None:
    """``ref`` resolved against ``base``; None if either is not a valid URL."""
    try:
        return urljoin(base, ref)
    except ValueError:  # e.g. "http://[broken"
        return None


def _defrag(url: str) -> str:
    return url.split("#", 1)[0]


def _is_http(url: str) -> bool:
    scheme, colon, _ = url.partition(":")
    return bool(colon) and scheme.lower() in ("http", "https")


# ---- Link headers (RFC 8288) --------------------------------------------------------------


def _split_outside(value: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is neither inside ``<...>`` nor inside a quoted string."""
    parts: list[str] = []
    current: list[str] = []
    in_uri = in_quote = escaped = False
    for ch in value:
        if in_quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quote = False
        elif in_uri:
            if ch == ">":
                in_uri = False
        elif ch == "<":
            in_uri = True
        elif ch == '"':
            in_quote = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        out: list[str] = []
        escaped = False
        for ch in value[1:-1]:
            if escaped or ch != "\\":
                out.append(ch)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def parse_link_header(value: str) -> list[tuple[str, dict[str, str]]]:
    """Parse one ``Link`` header value into ``(uri-reference, params)`` pairs.

    Param names are lowercased; a param given twice keeps its first value (RFC 8288 3.3).
    Malformed link-values are skipped.
    """
    links: list[tuple[str, dict[str, str]]] = []
    for link_value in _split_outside(value, ","):
        link_value = link_value.strip()
        if not link_value.startswith("<") or ">" not in link_value:
            continue
        end = link_value.index(">")
        uri = link_value[1:end].strip()
        params: dict[str, str] = {}
        for param in _split_outside(link_value[end + 1 :], ";")[1:]:
            name, eq, raw = param.partition("=")
            name = name.strip().lower()
            if name and name not in params:
                params[name] = _unquote(raw) if eq else ""
        links.append((uri, params))
    return links


def _rel_tokens(rel: str) -> list[str]:
    return [token.lower() for token in rel.split()]


def endpoint_from_link_headers(values: list[str], base_url: str) -> str | None:
    """The first ``rel=webmention`` target of the given ``Link`` header values, absolute."""
    for value in values:
        for uri, params in parse_link_header(value):
            if "webmention" in _rel_tokens(params.get("rel", "")):
                return _join(base_url, uri)
    return None


# ---- HTML -----------------------------------------------------------------------------------


class _Found(Exception):
    pass


class _EndpointParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("link", "a"):
            return
        values: dict[str, str] = {}
        for name, value in attrs:
            values.setdefault(name, value or "")
        if "href" in values and "webmention" in _rel_tokens(values.get("rel", "")):
            self.href = values["href"]
            raise _Found


def endpoint_from_html(html: str, base_url: str) -> str | None:
    """The first ``<link>``/``<a>`` with rel ``webmention`` and an ``href``, absolute."""
    parser = _EndpointParser()
    try:
        parser.feed(html)
        parser.close()
    except _Found:
        pass
    if parser.href is None:
        return None
    return _join(base_url, parser.href.strip(_HTML_SPACE))


async def discover_endpoint(fetcher: SafeFetcher, target: str) -> str | None:
    """The Webmention endpoint of ``target`` as an absolute http(s) URL, or None.

    Raises:
        FetchError: the target could not be fetched (including blocked addresses).
    """
    page = await fetcher.get(target, accept=DISCOVERY_ACCEPT)
    if not page.ok:
        return None
    endpoint = endpoint_from_link_headers(page.headers.get_list("link"), page.url)
    if endpoint is None and page.content_type in HTML_TYPES:
        endpoint = endpoint_from_html(page.text, page.url)
    if endpoint is None or not _is_http(endpoint):
        return None
    return endpoint


# ---- sending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """What happened to one webmention: ``ok`` for any 2xx answer of the endpoint."""

    target: str
    endpoint: str | None
    status: int | None
    location: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


async def send_webmention(fetcher: SafeFetcher, source: str, target: str) -> SendResult:
    """Discover ``target``'s endpoint and notify it that ``source`` links to it.

    Never raises for network trouble: failures are in ``SendResult.error`` (and ``status``
    when the endpoint answered), so callers can decide whether to retry (e.g. on 5xx).
    """
    try:
        endpoint = await discover_endpoint(fetcher, target)
    except FetchError as exc:
        return SendResult(target, None, exc.status, None, f"discovery failed: {exc}")
    if endpoint is None:
        return SendResult(target, None, None, None, "no webmention endpoint")
    try:
        answer = await fetcher.post_form(endpoint, {"source": source, "target": target})
    except FetchError as exc:
        return SendResult(target, endpoint, exc.status, None, str(exc))
    location = answer.headers.get("location")
    return SendResult(
        target=target,
        endpoint=endpoint,
        status=answer.status,
        location=_join(answer.url, str(location)) if location else None,
        error=None if answer.ok else f"endpoint {endpoint} answered HTTP {answer.status}",
    )


# ---- links in documents -------------------------------------------------------------------------


class _LinkParser(HTMLParser):
    """Collects URL attributes, honouring the first ``<base href>``."""

    def __init__(self, base_url: str, tags: frozenset[str] | None, names: frozenset[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self._base_seen = False
        self._tags = tags
        self._names = names
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and not self._base_seen:
            for name, value in attrs:
                if name == "href" and value is not None:
                    self._base_seen = True
                    self.base_url = _join(self.base_url, value.strip(_HTML_SPACE)) or self.base_url
                    break
        if self._tags is not None and tag not in self._tags:
            return
        seen: set[str] = set()
        for name, value in attrs:
            if name in self._names and name not in seen and value is not None:
                seen.add(name)
                url = _join(self.base_url, value.strip(_HTML_SPACE))
                if url is not None:
                    self.urls.append(url)


def _collect(
    html: str, base_url: str, tags: frozenset[str] | None, names: frozenset[str]
) -> list[str]:
    parser = _LinkParser(base_url, tags, names)
    parser.feed(html)
    parser.close()
    return parser.urls


def find_links(html: str, base_url: str) -> list[str]:
    """Absolute http(s) targets of ``<a href>`` in a post, deduplicated, in document order.

    Links are kept as written (resolved, fragment included) so the receiver finds exactly
    this URL in the source; links back to the page itself (``#top``) are left out.
    """
    page = _defrag(base_url)
    out: list[str] = []
    for url in _collect(html, base_url, frozenset({"a"}), frozenset({"href"})):
        if not _is_http(url) or _defrag(url) == page:
            continue
        if url not in out:
            out.append(url)
    return out


def _json_has_value(node: Any, wanted: str) -> bool:
    if isinstance(node, str):
        return _defrag(node) == wanted
    if isinstance(node, dict):
        return any(_json_has_value(v, wanted) for v in node.values())
    if isinstance(node, list):
        return any(_json_has_value(v, wanted) for v in node)
    return False


def links_to(html_or_text: str, content_type: str, target: str, base_url: str = "") -> bool:
    """Whether a fetched source document links to ``target`` (its fragment ignored).

    HTML (``text/html``, ``application/xhtml+xml``): an ``href`` or ``src`` attribute that,
    resolved against ``base_url`` (the source's final URL, or its ``<base href>``),
    equals the target exactly.  JSON (``application/json``, ``*+json``): some string value
    equals the target.  Other text (``text/*`` or no type): the target appears as a
    substring.  Anything else (images, ...): False.
    """
    wanted = _defrag(target)
    media = content_type.split(";")[0].strip().lower()
    if media in HTML_TYPES:
        urls = _collect(html_or_text, base_url, None, frozenset({"href", "src"}))
        return any(_defrag(url) == wanted for url in urls)
    if media == "application/json" or media.endswith("+json"):
        try:
            return _json_has_value(json.loads(html_or_text), wanted)
        except ValueError:
            return False
    if media.startswith("text/") or not media:
        return wanted in html_or_text
    return False
