"""Site settings: the only code that reads ``site.toml``.

``load()`` reads the file once, applies explicit overrides (command-line options), checks
every key against its declaration in ``bridge.settings`` and returns a frozen
``SiteConfig``.  A missing or wrong key is a one-line ``ConfigError`` naming the file, the
key and what is expected.

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
``/ap/posts/<slug>/...``    ``create.json``; ``replies``/``likes``/``shares``/``context.json``
                            (files when they have items, else answered by the daemon)
``/.well-known/webfinger``  WebFinger JRD for the single actor
``<federation_url>/inbox``  shared inbox; ``/ap/inbox`` the actor's own inbox
``<federation_url>/webmention``  the Webmention endpoint
==========================  ==============================================

Everything ActivityPub lives under ``/ap/`` so one rule on a static host (``/ap/*`` is
``application/activity+json``) serves it with the content type Mastodon requires.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge import settings
from bridge.errors import ConfigError
from bridge.settings import AUTHOR_KEYS, SETTINGS

CONFIG_NAME = "site.toml"
STATE_DIR = ".indiebridge"


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
    backfill_days: int = 7  # entries first seen after the first poll, older: not announced


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
    comments_per_page: int
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
    inline_hashtags: bool = True
    featured_tags: int = 0
    delivery_processes: int = 0  # 0: min(cores, 4), see bridge.federation.delivery.pool

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
        """The handle people follow; a local preview shows the real blog's, not its own
        loopback address (which federates nowhere)."""
        host = urlsplit(self.preview_of).netloc if self.preview_of else self.host
        return f"@{self.username}@{host}"

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
    def featured_tags_url(self) -> str:
        """The most used tags (``toot:featuredTags``), when ``featured_tags`` is set."""
        return f"{self.base_url}/ap/featured-tags.json"

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


def _author(path: Path, raw: Any) -> AuthorConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}: table [author] is required (name, url, avatar, bio)")
    unknown = set(raw) - set(AUTHOR_KEYS)
    if unknown:
        first = sorted(unknown)[0]
        if settings.did_you_mean(first, AUTHOR_KEYS):
            raise ConfigError(
                f"{path.name}: unknown key 'author.{first}'"
                + settings.did_you_mean(first, AUTHOR_KEYS, "author.")
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
            values[key] = settings.check(path, f"author.{key}", kind, raw.get(key, ""))
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
        url = settings.check(path, f"bridge.feeds[{i}].url", "url", feed["url"])
        interval = settings.check(
            path, f"bridge.feeds[{i}].interval", "int", feed.get("interval", 900)
        )
        backfill = settings.check(
            path, f"bridge.feeds[{i}].backfill_days", "int", feed.get("backfill_days", 7)
        )
        out.append(BridgeFeed(url=url, interval=interval, backfill_days=backfill))
    return tuple(out)


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
        raise ConfigError(settings.toml_error(path.name, exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    raw.update(overrides or {})

    known = {s.key for s in SETTINGS} | {"author", "bridge"}
    for key in raw:
        if key not in known:
            raise ConfigError(
                f"{path.name}: unknown key '{key}'{settings.did_you_mean(key, known)}"
            )
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.key in raw:
            values[setting.key] = settings.check(path, setting.key, setting.kind, raw[setting.key])
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
        comments_per_page=values["comments_per_page"],
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
        attribution_domains=settings.domains(
            path, "attribution_domains", values["attribution_domains"]
        ),
        og_image=values["og_image"],
        og_image_alt=values["og_image_alt"],
        og_image_width=values["og_image_width"],
        og_image_height=values["og_image_height"],
        quote_policy=values["quote_policy"],
        inline_hashtags=values["inline_hashtags"],
        featured_tags=values["featured_tags"],
        delivery_processes=values["delivery_processes"],
    )
