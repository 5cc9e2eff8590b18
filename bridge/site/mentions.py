"""Mentions of fediverse accounts (``@user@host``) in a post's text: finding and linking.

Pure functions over the rendered HTML of a post (no network): ``find_handles`` lists the
handles written in its text, outside ``<code>``, ``<pre>`` and existing links, and never
an e-mail address (``alice@example.com`` has no leading ``@``).  ``link_mentions``
turns the handles the cache knows into h-card mention links.  ``read_cache`` reads that
cache (the ``mention_cache`` table of the state database, filled at publish time by
``bridge.federation.mention_resolver``), so building never waits on the network.

The link shape ``<a class="u-category h-card mention" href="PROFILE">@user</a>`` is a
person tag in microformats2 (h-entry ``u-category`` holding an ``h-card``,
https://microformats.org/wiki/h-entry#Properties).  Mastodon's sanitiser keeps every
class of it (mastodon/mastodon app/lib/sanitize_config.rb, ``CLASS_WHITELIST_TRANSFORMER``
keeps ``h-*``, ``u-*`` and ``mention``) and the ``title``; its web client, in our reading,
recognises a mention link by the ``mention`` class and an ``href`` equal to a mentioned
account's ``url``, which is why the link goes to the actor's profile page, not its id.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from bridge.config import SiteConfig
from bridge.db import read_only
from bridge.site.posts import Post

# user: Mastodon's username characters (letters, digits, _, and . or - inside);
# host: at least two dot-separated labels. The lookbehind keeps e-mail addresses
# (``me@host``) and URLs (``/@user@host``) out.
HANDLE_RE = re.compile(
    r"(?<![\w@/.:+-])@([A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
    r"|localhost|127(?:\.\d{1,3}){3})"
    r"(?::\d{1,5})?(?![\w@-])"
)
_TAG_RE = re.compile(r"(<[^>]*>)")
_TAG_NAME_RE = re.compile(r"<\s*(/?)\s*([A-Za-z][A-Za-z0-9]*)")
_SKIP = {"a", "code", "pre", "script", "style"}


@dataclass(frozen=True)
class Account:
    """A resolved handle: what the cache knows about ``@user@host``."""

    handle: str  # "@user@host", lower case
    actor_id: str
    profile_url: str
    inbox: str


def normalise(handle: str) -> str:
    """``@User@Host`` -> ``@user@host`` (WebFinger accts compare case-insensitively)."""
    return "@" + handle.lstrip("@").lower()


def _text_parts(body: str) -> Iterator[tuple[str, bool]]:
    """The pieces of ``body`` with, for each, whether it is text that may hold mentions."""
    open_tags: list[str] = []
    for part in _TAG_RE.split(body):
        if not part:
            continue
        match = _TAG_NAME_RE.match(part) if part.startswith("<") else None
        if match is not None:
            closing, name = match.group(1) == "/", match.group(2).lower()
            if name in _SKIP and not part.rstrip(">").endswith("/"):
                if closing and name in open_tags:
                    open_tags.remove(name)
                elif not closing:
                    open_tags.append(name)
            yield part, False
        elif part.startswith("<"):
            yield part, False  # a comment or doctype
        else:
            yield part, not open_tags


def _handle(match: re.Match[str]) -> str:
    port = match.group(0).rsplit("@", 1)[1]  # host with its port, if any
    return normalise(f"@{match.group(1)}@{port}")


def _may_hold_handle(body: str) -> bool:
    """False only when ``body`` holds no ``@``, written or as a character reference
    (``&#64;``, ``&#x40;``, ``&commat;``): most posts, which then skip the tag walk,
    most of a one-post rebuild of a thousand posts when it ran on every post."""
    # Single characters first: ``in`` finds one with memchr, several times faster.
    return "@" in body or ("&" in body and ("&#" in body or "&commat" in body))


def find_handles(body: str) -> list[str]:
    """The distinct ``@user@host`` handles in the text of ``body`` (HTML), in order of
    first appearance, lower-cased; code, preformatted text and links are skipped."""
    if not _may_hold_handle(body):
        return []
    found: dict[str, None] = {}
    for part, is_text in _text_parts(body):
        if is_text:
            for match in HANDLE_RE.finditer(html.unescape(part)):
                found.setdefault(_handle(match), None)
    return list(found)


def mention_link(account: Account, written: str) -> str:
    """The h-card mention link for ``account``, showing ``@user`` as Mastodon does."""
    user = written.lstrip("@").split("@", 1)[0]
    return (
        f'<a class="u-category h-card mention" href="{html.escape(account.profile_url)}" '
        f'title="{html.escape(account.handle)}">@{html.escape(user)}</a>'
    )


def link_mentions(body: str, accounts: Mapping[str, Account]) -> str:
    """``body`` with every handle that ``accounts`` knows turned into a mention link;
    unknown handles stay as they were written."""
    out: list[str] = []
    for part, is_text in _text_parts(body):
        if not is_text:
            out.append(part)
            continue

        def sub(match: re.Match[str]) -> str:
            account = accounts.get(_handle(match))
            return match.group(0) if account is None else mention_link(account, match.group(0))

        out.append(HANDLE_RE.sub(sub, part))
    return "".join(out)


def read_cache(config: SiteConfig) -> dict[str, Account]:
    """Every handle the state database has resolved (expired entries too: a stale link
    beats none while offline); empty without a database."""
    return read_only(config.db_path, read_accounts, {})


def read_accounts(con: sqlite3.Connection) -> dict[str, Account]:
    """``read_cache`` from an open connection (the build's one read, ``site.ledger``)."""
    try:
        rows = con.execute("SELECT handle, actor_id, profile_url, inbox FROM mention_cache")
        return {str(r[0]): Account(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows}
    except sqlite3.Error:  # a database from before the table existed
        return {}


def apply(
    posts: Sequence[Post], accounts: Mapping[str, Account], *, own: str = ""
) -> tuple[list[Post], list[str]]:
    """Posts with their known mentions linked and listed (``Post.mentions``), and one
    warning per handle the cache does not know, naming the post's file.  ``own`` (the
    blog's handle, written to invite follows) is no mention."""
    out: list[Post] = []
    warnings: list[str] = []
    for post in posts:
        handles = [h for h in find_handles(post.html) if h != normalise(own)]
        known = [accounts[h] for h in handles if h in accounts]
        warnings += [
            f"{post.source}: mention {h} is not resolved yet (publish looks it up); plain text"
            for h in handles
            if h not in accounts
        ]
        if not known:
            out.append(post)
            continue
        pairs = tuple((a.actor_id, a.handle) for a in known)
        digest = hashlib.sha256((post.digest + json.dumps(pairs)).encode()).hexdigest()
        out.append(
            replace(
                post,
                html=link_mentions(post.html, accounts),
                mentions=pairs,
                digest=digest,
            )
        )
    return out, warnings
