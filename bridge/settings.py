"""What ``site.toml`` may hold: each setting declared as data, and how a value is checked.

``SETTINGS`` gives each key its type, default (``None`` = required) and help text, so the
README documents every one (``tests/test_docs.py`` checks) and ``bridge.config.load``
validates every one the same way.  The checks here turn a wrong value into one line
naming the file, the key and what is expected; they know nothing of ``SiteConfig``.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    """One key of site.toml: its type, default (None = required) and help text."""

    key: str
    kind: str
    default: Any
    help: str


# Declared as data: the README documents each of these (tests/test_docs.py checks).
SETTINGS: tuple[Setting, ...] = (
    Setting("title", "str", None, "Site title, shown in pages, feeds and as the actor's name."),
    Setting("description", "str", "", "One-line description (feeds, NodeInfo, meta tags)."),
    Setting("language", "str", "en", "Default language tag of posts (BCP 47, e.g. `en`)."),
    Setting("base_url", "url", None, "Public URL of the blog, e.g. `https://blog.example`."),
    Setting("username", "str", None, "Actor username: the blog is `@username@host`."),
    Setting(
        "federation_url",
        "url",
        "",
        "Where the daemon's inbox and webmention endpoint live; defaults to `base_url`.",
    ),
    Setting("posts_per_page", "int", 10, "Posts on each page of the home page."),
    Setting(
        "comments_per_page",
        "int:0-10000",
        50,
        "Top-level replies on each page of a post's conversation (a reply keeps its nested "
        "replies with it); the post's own page shows the newest page, older ones are at "
        "`posts/<slug>/comments/<n>/`. 0 shows every reply on the post's page.",
    ),
    Setting(
        "fediverse_format",
        "choice:article|note",
        "article",
        "How titled posts federate: `article` (title + summary + link on Mastodon) or "
        "`note` (full text). Untitled posts are always notes.",
    ),
    Setting("also_known_as", "list[str]", [], "Previous fediverse accounts (for Move)."),
    Setting(
        "manually_approves_followers",
        "bool",
        False,
        "Hold Follows as pending until approved with `indiebridge followers approve`.",
    ),
    Setting(
        "signature_scheme",
        "choice:cavage|rfc9421-first",
        "cavage",
        "How outgoing requests are signed: draft-cavage only, or RFC 9421 first with a "
        "draft-cavage fallback remembered per server.",
    ),
    Setting(
        "allow_private_addresses",
        "bool",
        False,
        "Allow fetches to loopback/private addresses (local testing only).",
    ),
    Setting(
        "federate_since",
        "datetime",
        None,
        "Only posts published after this moment are pushed to followers on publish; "
        "defaults to the moment of the first publish.",
    ),
    Setting(
        "comments_policy",
        "choice:open|followers|manual",
        "open",
        "Which comments appear at once: all, followers' only, or none until approved.",
    ),
    Setting("auto_publish", "bool", False, "In watch mode, publish after each rebuild."),
    Setting("output_dir", "str", "public", "Output folder, relative to the site folder."),
    Setting("discoverable", "bool", True, "Allow directories and search to list the actor."),
    Setting(
        "attribution_domains",
        "list[str]",
        [],
        "More domains (besides `base_url`'s host) whose pages may credit the actor with "
        '`fediverse:creator` (the actor\'s `attributionDomains`), e.g. `["news.example"]`.',
    ),
    Setting(
        "og_image",
        "str",
        "",
        "Default link-preview image (`og:image`) for pages without an image of their own: "
        "a path under the site or an http(s) URL.",
    ),
    Setting("og_image_alt", "str", "", "Alt text of `og_image`."),
    Setting("og_image_width", "int", 1200, "Width of `og_image` in pixels."),
    Setting("og_image_height", "int", 630, "Height of `og_image` in pixels."),
    Setting(
        "quote_policy",
        "choice:public|followers|nobody",
        "public",
        "Who may quote posts (FEP-044f quote posts, Mastodon 4.5+): anyone, followers, "
        "or nobody; answered automatically by the daemon.",
    ),
    Setting(
        "inline_hashtags",
        "bool",
        True,
        "`#word` in a post's text (outside code and links) links to the tag page and "
        "becomes one of the post's tags.",
    ),
    Setting(
        "featured_tags",
        "int:0-10",
        0,
        "How many of the most used tags the actor features (Mastodon's featured hashtags, "
        "`featuredTags`); 0 features none, at most 10 (Mastodon reads 10).",
    ),
    Setting(
        "delivery_processes",
        "int:0-16",
        0,
        "Processes `indiebridge serve` starts to deliver activities from its one queue; "
        "0 starts `min(cores, 4)`.",
    ),
)

AUTHOR_KEYS = {"name": "str", "url": "url", "avatar": "str", "bio": "str", "fields": "fields"}


def check(path: Path, key: str, kind: str, value: Any) -> Any:
    where = f"{path.name}: key '{key}'"
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {type(value).__name__}")
        return value
    if kind == "url":
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a URL string, got {type(value).__name__}")
        if value == "":
            return value
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.query
            or parts.fragment
            or "?" in value
            or "#" in value
            or any(ch.isspace() for ch in value)
        ):
            raise ConfigError(
                f"{where} must be an http(s) URL like https://blog.example "
                "(no query, fragment or spaces)"
            )
        return value
    if kind.startswith("int:"):  # a bounded count, "int:<low>-<high>"
        low, high = (int(n) for n in kind[4:].split("-"))
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ConfigError(f"{where} must be a whole number from {low} to {high}")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where} must be a positive integer")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if kind == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings")
        return tuple(value)
    if kind == "datetime":
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        raise ConfigError(f"{where} must be a TOML date-time like 2026-01-01T00:00:00Z")
    if kind.startswith("choice:"):
        choices = kind.split(":", 1)[1].split("|")
        if value not in choices:
            raise ConfigError(f"{where} must be one of {', '.join(choices)}; got {value!r}")
        return value
    raise AssertionError(kind)  # pragma: no cover - SETTINGS is fixed


_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def toml_error(name: str, exc: tomllib.TOMLDecodeError) -> str:
    """``site.toml:3:7: invalid TOML: Expected '=' after a key ...`` (tomllib puts the
    place at the end of its message; Python 3.14 also has ``lineno``/``colno``)."""
    text = str(exc)
    m = _TOML_WHERE.search(text)
    if m is None:
        return f"{name}: invalid TOML: {text}"
    return f"{name}:{m.group(1)}:{m.group(2)}: invalid TOML: {text[: m.start()]}"


def did_you_mean(key: str, known: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean 'posts_per_page'?)`` for a near miss, else ""."""
    import difflib  # only for a mistyped key

    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


USERNAME_RE = re.compile(r"[A-Za-z0-9_]{1,30}")
"""Mastodon's rule for local usernames: letters, digits and underscores, at most 30
(``Account::USERNAME_RE`` and ``UnreservedUsernameValidator`` in mastodon/mastodon's
app/models/account.rb); other servers must be able to address ``@username@host``."""


def username_problem(username: str) -> str | None:
    """What is wrong with ``username`` as a fediverse username, or None."""
    if USERNAME_RE.fullmatch(username):
        return None
    suggestion = re.sub(r"[^a-z0-9_]+", "_", username.lower()).strip("_")[:30] or "blog"
    return f"expected letters, digits and underscores only, at most 30 (like {suggestion})"


def base_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a blog's base_url, or None: an absolute http(s) URL
    of a host's root (every address of the site is joined to it)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        host = url.strip().split("/")[0] or "blog.example"
        return f"expected an absolute URL starting with https:// (like https://{host})"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        root = f"{parts.scheme}://{parts.netloc}"
        return f"the blog must be at the root of its host, without a path or query (like {root})"
    return None


_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$")


def domains(path: Path, key: str, value: tuple[str, ...]) -> tuple[str, ...]:
    """Bare lowercase host names (no scheme, port or path), as Mastodon compares them."""
    for domain in value:
        if not _DOMAIN_RE.match(domain):
            raise ConfigError(
                f"{path.name}: key '{key}' must list bare domains like news.example, got {domain!r}"
            )
    return tuple(dict.fromkeys(value))
