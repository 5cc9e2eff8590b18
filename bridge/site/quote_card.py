"""Posts that quote another post (front matter ``quote_of: URL``): the card on the page and
the quote fields of the ActivityStreams object.  No network: the build reads what
``bridge.federation.quoting`` stored at publish time (``quote_cache`` and ``quotes_out``
in the state database); a quoted post never fetched shows as a plain link card.

What the object carries follows FEP-044f (codeberg.org/fediverse/fep, fep/044f) as
Mastodon 4.5 sends it (mastodon/mastodon ``ActivityPub::NoteSerializer``, our reading):

* always, a fallback for servers without quote support: the text ends with
  ``<p class="quote-inline">RE: <a href="URL">URL</a></p>``, the paragraph Mastodon adds
  to its own quote posts and hides when it shows the quote;
* while our ``QuoteRequest`` is unanswered (or before publish fetched the quoted post):
  ``quote`` = the quoted object's id and no ``quoteAuthorization``.  FEP-044f lets a quote
  post name its quote before the approval; Mastodon then shows "pending approval" with
  the link, and shows the quote itself once an Update brings the stamp;
* once accepted: ``quote``, the legacy ``quoteUrl`` (``as:quoteUrl``, Misskey and others)
  and ``_misskey_quote`` (older servers, which never ask), and ``quoteAuthorization`` =
  the stamp's id, which consumers dereference and check;
* once rejected, or revoked by a ``Delete`` of the stamp: no quote property at all, only
  the link in the text (the quoted author refused; a legacy quote would show it anyway).
"""

from __future__ import annotations

import hashlib
import html
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from bridge.config import SiteConfig
from bridge.site.posts import Post, QuotedPost

FEP_044F = "https://w3id.org/fep/044f#"
# Terms the quote fields need beyond the objects' usual context (quote_policy.TERMS).
TERMS: dict[str, Any] = {
    "quote": {"@id": FEP_044F + "quote", "@type": "@id"},
    "quoteAuthorization": {"@id": FEP_044F + "quoteAuthorization", "@type": "@id"},
    "quoteUrl": "as:quoteUrl",
    "_misskey_quote": "https://misskey-hub.net/ns#_misskey_quote",
}
CARD_KEYS = ("html_url", "author_name", "author_handle", "author_url", "avatar", "content")
MAX_CARD_CONTENT = 8_000  # characters of the quoted post's HTML on the page


def read_rows(
    con: sqlite3.Connection, config: SiteConfig
) -> tuple[dict[str, QuotedPost], dict[str, dict[str, str]]]:
    """The cached cards by quoted URL, and our requests by slug (``quoted``, ``state``,
    ``stamp``), from the build's one read of the database (``site.ledger``); both empty
    before the tables existed."""
    try:
        cards = con.execute("SELECT url, object_id, card FROM quote_cache").fetchall()
        asked = con.execute("SELECT slug, quoted, state, stamp FROM quotes_out").fetchall()
    except sqlite3.Error:  # a database from before the tables existed
        return {}, {}
    out: dict[str, QuotedPost] = {}
    for url, object_id, card in cards:
        found = card_from_json(str(url), str(object_id), str(card))
        # Sanitised when stored and again here: the page never trusts the database.
        out[str(url)] = replace(found, content=sanitised_content(found.content, config.base_url))
    requests = {
        str(r[0]): {"quoted": str(r[1]), "state": str(r[2]), "stamp": str(r[3])} for r in asked
    }
    return out, requests


def card_from_json(url: str, object_id: str, card: str) -> QuotedPost:
    """A stored card (JSON written by ``card_json``) -> ``QuotedPost`` in state pending."""
    try:
        data = json.loads(card)
    except ValueError:
        data = {}
    fields = {k: str(data.get(k, "")) for k in (*CARD_KEYS, "published")}
    return QuotedPost(url=url, state="pending", object_id=object_id, **fields)


def card_json(card: Mapping[str, str]) -> str:
    """What ``quote_cache.card`` holds: the card fields, text only."""
    return json.dumps({k: str(card.get(k, "")) for k in (*CARD_KEYS, "published")})


def apply(
    posts: Sequence[Post],
    cards: Mapping[str, QuotedPost],
    requests: Mapping[str, Mapping[str, str]],
) -> list[Post]:
    """Posts with ``quote`` set for each ``quote_of``: the cached card and our request's
    state, or a bare ``QuotedPost`` (state "unknown") when publish has not fetched it."""
    out = []
    for post in posts:
        if not post.quote_of:
            out.append(post)
            continue
        card = cards.get(post.quote_of) or QuotedPost(url=post.quote_of)
        asked = requests.get(post.slug)
        if asked is not None and card.object_id and asked["quoted"] == card.object_id:
            card = replace(card, state=asked["state"], stamp=asked["stamp"])
        # The quote is part of the page and the object: their keys follow the post's digest.
        digest = hashlib.sha256((post.digest + json.dumps(asdict(card))).encode()).hexdigest()
        out.append(replace(post, quote=card, digest=digest))
    return out


def link_of(quote: QuotedPost) -> str:
    """Where a reader goes: the quoted post's page, else its id, else the URL written."""
    return quote.html_url or quote.url


def fallback_html(quote: QuotedPost) -> str:
    """The ``RE:`` paragraph servers without quotes show (Mastodon's own fallback)."""
    link = html.escape(link_of(quote))
    return f'<p class="quote-inline">RE: <a href="{link}">{link}</a></p>'


def with_quote(obj: dict[str, Any], post: Post) -> dict[str, Any]:
    """``obj`` (a post's Article or Note) with the fields of its quote, if it quotes."""
    quote = post.quote
    if quote is None:
        return obj
    obj = dict(obj)
    extra = fallback_html(quote)
    obj["content"] = str(obj.get("content", "")) + extra
    if isinstance(obj.get("contentMap"), dict):
        obj["contentMap"] = {k: str(v) + extra for k, v in obj["contentMap"].items()}
    quoted = quote.object_id
    if not quoted or quote.state in ("rejected", "revoked"):
        return obj  # unknown or refused: the link only
    obj["@context"] = [*_as_list(obj.get("@context")), TERMS]
    obj["quote"] = quoted
    if quote.state == "accepted" and quote.stamp:
        obj["quoteUrl"] = quoted
        obj["_misskey_quote"] = quoted
        obj["quoteAuthorization"] = quote.stamp
    return obj


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return list(value)
    return [value] if value else []


def sanitised_content(value: str, base_url: str) -> str:
    """The quoted post's HTML as the card shows it (``site.sanitize``), bounded."""
    from bridge.site.sanitize import sanitize_html  # nh3: only for a card being made

    return sanitize_html(value, base_url, limit=MAX_CARD_CONTENT)
