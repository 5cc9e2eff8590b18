"""Site settings: the only code that reads ``site.toml``.

Settings are declared as data (``SETTINGS``) with their type, default and help text, so the
README can document each one and a test checks that it does.  ``load()`` reads the file once,
applies explicit overrides (command-line options), validates every key and returns a frozen
``SiteConfig``.  A missing or wrong key is a one-line ``ConfigError`` naming the file, the key
and what is expected.

The URL layout of a site lives here too, as properties, so the builder, the daemon and the
tests agree on every address:

==========================  ==============================================
``/``                       home page (paginated: ``/page/2/``)
``/posts/<slug>/``          a post's HTML page
``/tags/<tag>/``            tag pages; ``/archive/`` the archive
``/<page-slug>/``           standalone pages (about)
``/feed.xml``, ``/feed.json``  Atom and JSON Feed
``/ap/actor.json``          the ActivityPub actor (its id)
``/ap/outbox.json``         outbox; pages ``/ap/outbox/page-N.json``
``/ap/followers.json``      followers; ``/ap/following.json``
``/ap/featured.json``       pinned posts (``featured``)
``/ap/posts/<slug>.json``   a post's Article/Note (its id)
``/ap/posts/<slug>/...``    ``create.json``, ``replies.json``, ``likes.json``, ``shares.json``
``/.well-known/webfinger``  WebFinger JRD for the single actor
``<federation_url>/inbox``  shared inbox; ``/ap/inbox`` the actor's own inbox
``<federation_url>/webmention``  the Webmention endpoint
==========================  ==============================================

Everything ActivityPub lives under ``/ap/`` so one rule on a static host (``/ap/*`` is
``application/activity+json``) serves it with the content type Mastodon requires.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.errors import ConfigError

CONFIG_NAME = "site.toml"
STATE_DIR = ".indiebridge"


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
)

AUTHOR_KEYS = {"name": "str", "url": "url", "avatar": "str", "bio": "str", "fields": "fields"}


@dataclass(frozen=True)
class ProfileField:
    name: str
    value: str


@dataclass(frozen=True)
class AuthorConfig:
    name: str
    url: str
    avatar: str
    bio: str
    fields: tuple[ProfileField, ...] = ()


@dataclass(frozen=True)
class BridgeFeed:
    url: str
    interval: int = 900


@dataclass(frozen=True)
class SiteConfig:
    """Validated settings of one site plus its folders and URL layout."""

    site_dir: Path
    title: str
    description: str
    language: str
    base_url: str
    username: str
    federation_url: str
    posts_per_page: int
    fediverse_format: str
    also_known_as: tuple[str, ...]
    manually_approves_followers: bool
    signature_scheme: str
    allow_private_addresses: bool
    federate_since: dt.datetime | None
    comments_policy: str
    auto_publish: bool
    output_dir_name: str
    discoverable: bool
    author: AuthorConfig
    bridge_feeds: tuple[BridgeFeed, ...] = field(default=())
    # Set only for a local preview (bridge.site.preview): the real base_url it stands for.
    preview_of: str = ""
    attribution_domains: tuple[str, ...] = ()
    og_image: str = ""
    og_image_alt: str = ""
    og_image_width: int = 1200
    og_image_height: int = 630
    quote_policy: str = "public"

    # ---- folders -------------------------------------------------------------
    @property
    def content_dir(self) -> Path:
        return self.site_dir / "content"

    @property
    def output_dir(self) -> Path:
        return self.site_dir / self.output_dir_name

    @property
    def state_dir(self) -> Path:
        return self.site_dir / STATE_DIR

    @property
    def db_path(self) -> Path:
        return self.state_dir / "state.sqlite3"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"

    @property
    def theme_dirs(self) -> list[Path]:
        """Template folders, most specific first: the site's own, then the default theme."""
        return [self.site_dir / "templates", DEFAULT_THEME / "templates"]

    @property
    def static_dirs(self) -> list[Path]:
        """Static folders, lowest priority first (later ones override earlier files)."""
        return [DEFAULT_THEME / "static", self.site_dir / "static"]

    # ---- URL layout ----------------------------------------------------------
    @property
    def host(self) -> str:
        """The acct: host, with the port when the base URL has one."""
        return urlsplit(self.base_url).netloc

    @property
    def handle(self) -> str:
        return f"@{self.username}@{self.host}"

    @property
    def actor_id(self) -> str:
        return f"{self.base_url}/ap/actor.json"

    @property
    def key_id(self) -> str:
        return f"{self.actor_id}#main-key"

    @property
    def ed25519_key_id(self) -> str:
        return f"{self.actor_id}#ed25519-key"

    @property
    def outbox_url(self) -> str:
        return f"{self.base_url}/ap/outbox.json"

    @property
    def followers_url(self) -> str:
        return f"{self.base_url}/ap/followers.json"

    @property
    def following_url(self) -> str:
        return f"{self.base_url}/ap/following.json"

    @property
    def featured_url(self) -> str:
        """Pinned posts (``toot:featured``), newest first."""
        return f"{self.base_url}/ap/featured.json"

    @property
    def inbox_url(self) -> str:
        return f"{self.federation_url}/ap/inbox"

    @property
    def shared_inbox_url(self) -> str:
        return f"{self.federation_url}/inbox"

    @property
    def webmention_url(self) -> str:
        return f"{self.federation_url}/webmention"

    def post_url(self, slug: str) -> str:
        return f"{self.base_url}/posts/{slug}/"

    def post_ap_id(self, slug: str) -> str:
        return f"{self.base_url}/ap/posts/{slug}.json"

    def tag_url(self, tag: str) -> str:
        return f"{self.base_url}/tags/{tag}/"

    def local_path(self, url: str) -> str | None:
        """Path below base_url for one of our URLs (``/posts/x/``), or None if not ours."""
        if url == self.base_url or url.startswith(self.base_url + "/"):
            return url[len(self.base_url) :] or "/"
        return None


def _default_theme() -> Path:
    """The default theme: package data in an installed wheel, the top-level
    ``site_template/`` in a checkout (and an editable install)."""
    package = Path(__file__).resolve().parent
    installed = package / "site_template"
    return installed if installed.is_dir() else package.parent / "site_template"


DEFAULT_THEME = _default_theme()


# ---- loading -------------------------------------------------------------------


def _check(path: Path, key: str, kind: str, value: Any) -> Any:
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


def _author(path: Path, raw: Any) -> AuthorConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}: table [author] is required (name, url, avatar, bio)")
    unknown = set(raw) - set(AUTHOR_KEYS)
    if unknown:
        first = sorted(unknown)[0]
        if did_you_mean(first, AUTHOR_KEYS):
            raise ConfigError(
                f"{path.name}: unknown key 'author.{first}'"
                + did_you_mean(first, AUTHOR_KEYS, "author.")
            )
        raise ConfigError(
            f"{path.name}: unknown key 'author.{first}' (expected one of {', '.join(AUTHOR_KEYS)})"
        )
    if "name" not in raw:
        raise ConfigError(f"{path.name}: key 'author.name' is required")
    values: dict[str, Any] = {}
    for key, kind in AUTHOR_KEYS.items():
        if kind == "fields":
            fields = raw.get("fields", [])
            if not isinstance(fields, list) or not all(
                isinstance(f, dict)
                and isinstance(f.get("name"), str)
                and isinstance(f.get("value"), str)
                for f in fields
            ):
                raise ConfigError(
                    f"{path.name}: key 'author.fields' must be a list of "
                    '{{ name = "...", value = "..." }} tables'
                )
            values["fields"] = tuple(ProfileField(f["name"], f["value"]) for f in fields)
        else:
            values[key] = _check(path, f"author.{key}", kind, raw.get(key, ""))
    return AuthorConfig(**values)


def _bridge_feeds(path: Path, raw: Any) -> tuple[BridgeFeed, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or set(raw) - {"feeds"}:
        raise ConfigError(f"{path.name}: table [bridge] may only hold [[bridge.feeds]] entries")
    feeds = raw.get("feeds", [])
    if not isinstance(feeds, list):
        raise ConfigError(f"{path.name}: key 'bridge.feeds' must be an array of tables")
    out = []
    for i, feed in enumerate(feeds):
        if not isinstance(feed, dict) or "url" not in feed:
            raise ConfigError(f"{path.name}: key 'bridge.feeds[{i}].url' is required")
        url = _check(path, f"bridge.feeds[{i}].url", "url", feed["url"])
        interval = _check(path, f"bridge.feeds[{i}].interval", "int", feed.get("interval", 900))
        out.append(BridgeFeed(url=url, interval=interval))
    return tuple(out)


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


def load(site_dir: Path | str, overrides: Mapping[str, Any] | None = None) -> SiteConfig:
    """Read ``site_dir/site.toml``, apply ``overrides`` and validate every key.

    Raises:
        ConfigError: one line naming the file, the key and what is expected.
    """
    site = Path(site_dir).resolve()
    path = site / CONFIG_NAME
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found (run 'indiebridge init' to create a site, or pass --site)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(toml_error(path.name, exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    raw.update(overrides or {})

    known = {s.key for s in SETTINGS} | {"author", "bridge"}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{path.name}: unknown key '{key}'{did_you_mean(key, known)}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.key in raw:
            values[setting.key] = _check(path, setting.key, setting.kind, raw[setting.key])
        elif setting.default is None and setting.kind != "datetime":
            raise ConfigError(f"{path.name}: key '{setting.key}' is required ({setting.help})")
        else:
            values[setting.key] = setting.default
    if not values["username"] or not values["username"].replace("_", "").isalnum():
        raise ConfigError(
            f"{path.name}: key 'username' must be letters, digits and underscores, "
            f"got {values['username']!r}"
        )
    if not values["base_url"]:
        raise ConfigError(f"{path.name}: key 'base_url' is required")
    # Base URLs are joined with "/..." paths: keep them without a trailing slash.
    values["base_url"] = values["base_url"].rstrip("/")
    values["federation_url"] = (values["federation_url"] or values["base_url"]).rstrip("/")
    values["also_known_as"] = tuple(values["also_known_as"])
    return SiteConfig(
        site_dir=site,
        title=values["title"],
        description=values["description"],
        language=values["language"],
        base_url=values["base_url"],
        username=values["username"],
        federation_url=values["federation_url"],
        posts_per_page=values["posts_per_page"],
        fediverse_format=values["fediverse_format"],
        also_known_as=values["also_known_as"],
        manually_approves_followers=values["manually_approves_followers"],
        signature_scheme=values["signature_scheme"],
        allow_private_addresses=values["allow_private_addresses"],
        federate_since=values["federate_since"],
        comments_policy=values["comments_policy"],
        auto_publish=values["auto_publish"],
        output_dir_name=values["output_dir"],
        discoverable=values["discoverable"],
        author=_author(path, raw.get("author")),
        bridge_feeds=_bridge_feeds(path, raw.get("bridge")),
        attribution_domains=_domains(path, "attribution_domains", values["attribution_domains"]),
        og_image=values["og_image"],
        og_image_alt=values["og_image_alt"],
        og_image_width=values["og_image_width"],
        og_image_height=values["og_image_height"],
        quote_policy=values["quote_policy"],
    )


_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$")


def _domains(path: Path, key: str, value: tuple[str, ...]) -> tuple[str, ...]:
    """Bare lowercase host names (no scheme, port or path), as Mastodon compares them."""
    for domain in value:
        if not _DOMAIN_RE.match(domain):
            raise ConfigError(
                f"{path.name}: key '{key}' must list bare domains like news.example, got {domain!r}"
            )
    return tuple(dict.fromkeys(value))
