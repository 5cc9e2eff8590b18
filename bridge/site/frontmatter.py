"""Front matter: the YAML block at the top of a post or page, read and validated by key.

Each key a post or page may carry has one *processor* in a table (the shape of pelican's
``METADATA_PROCESSORS``): it takes the raw YAML value and the place it came from, and
returns the value the ``Post``/``Page`` holds, or raises a ``ContentError`` naming the
file and the key's line.  A new front matter key is one row and one small function here.

A key that is absent is given its default (``POST_DEFAULTS``; None when there is none),
so a processor sees None for "not given" and never has to look at the mapping itself.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.config import SiteConfig
from bridge.errors import ContentError
from bridge.site.hashtags import hashtag_name
from bridge.site.posts import SLUG_RE, Image


@functools.cache
def _loader() -> type[Any]:
    """The YAML loader, made on first use: a build whose posts are all cached never
    imports PyYAML (a tenth of a no-op build's start-up)."""
    import yaml

    try:  # the C loader is ~10x faster; fall back to pure Python where libyaml is missing
        base: type[Any] = yaml.CSafeLoader
    except AttributeError:  # pragma: no cover - depends on how PyYAML was built
        base = yaml.SafeLoader

    class Loader(base):  # type: ignore[misc]
        """Safe loading that refuses a key given twice (YAML would keep the last silently)."""

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key '{key}' is given twice", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]

    Loader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
        lambda loader, node: loader.construct_mapping(node),
    )
    return Loader


class ParsedYaml(Protocol):
    """Front matter mappings parsed before, by their text (``MarkdownRenderer.yaml``)."""

    def get(self, raw: str) -> dict[str, Any] | None: ...

    def put(self, raw: str, data: dict[str, Any]) -> None: ...


@functools.cache
def yaml_version() -> str:
    """What decides a front matter block's mapping besides its text: this module (its
    loader) and PyYAML's own file, read without importing PyYAML."""
    import contextlib
    import hashlib
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("yaml")
    files = [__file__] + ([spec.origin] if spec is not None and spec.origin else [])
    h = hashlib.sha256()
    for path in files:  # PyYAML's ``__init__``: its version
        with contextlib.suppress(OSError):
            h.update(Path(path).read_bytes())
    return h.hexdigest()


def split_front_matter(
    text: str, rel: str, parsed: ParsedYaml | None = None
) -> tuple[dict[str, Any], str, int]:
    """Return (front matter, body, line number where the body starts).  A block found in
    ``parsed`` is not parsed again: a body edit needs no YAML parser (importing PyYAML
    was 13 ms of a one-post rebuild as a command)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.startswith("---"):
        raise ContentError(rel, 1, "missing YAML front matter (the file must start with '---')")
    lines = text.split("\n")
    if lines[0].strip() != "---":
        raise ContentError(rel, 1, "the first line must be exactly '---'")
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        raise ContentError(rel, 1, "front matter is not closed by a '---' line")
    raw = "\n".join(lines[1:end])
    data = parsed.get(raw) if parsed is not None else None
    if data is None:
        data = _mapping(raw, rel)
        if parsed is not None:
            parsed.put(raw, data)
    return data, "\n".join(lines[end + 1 :]), end + 2


def _mapping(raw: str, rel: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.load(raw, Loader=_loader()) if raw.strip() else {}  # noqa: S506 - SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 2) if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ContentError(rel, line, f"invalid YAML front matter: {problem}") from None
    if not isinstance(data, dict):
        raise ContentError(rel, 2, "front matter must be a mapping of 'key: value' lines")
    return data


def key_line(text: str, key: str) -> int:
    """The line of ``key:`` in the front matter of ``text``; 1 when it is not there."""
    for i, line in enumerate(text.split("\n")[1:], start=2):
        if line.startswith(f"{key}:") or line.startswith(f'"{key}":'):
            return i
        if line.strip() in ("---", "..."):
            break
    return 1


@dataclass(frozen=True)
class Field:
    """One front matter key of one file: what a processor needs to say where it failed."""

    rel: str  # the file, relative to the site folder
    key: str
    text: str  # the whole file, to find the key's line only when there is an error
    config: SiteConfig

    @property
    def line(self) -> int:
        return key_line(self.text, self.key)

    def error(self, message: str) -> ContentError:
        return ContentError(self.rel, self.line, message)


Processor = Callable[[Any, Field], Any]


def _text(value: Any, field: Field) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise field.error(f"'{field.key}' must be text")


def _optional_text(value: Any, field: Field) -> str | None:
    return _text(value, field) if value else None


def _datetime(value: Any, field: Field) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise field.error(f"'{field.key}' must be a date like 2026-03-01 or 2026-03-01T09:30:00+01:00")


def _optional_datetime(value: Any, field: Field) -> dt.datetime | None:
    return None if value is None else _datetime(value, field)


def _title(value: Any, field: Field) -> str | None:
    return None if value is None else (_text(value, field).strip() or None)


def _slug(value: Any, field: Field) -> str:
    slug = _text(value, field)
    if not SLUG_RE.match(slug):
        raise field.error(f"'slug' must be lowercase letters, digits and dashes, got {slug!r}")
    return slug


def _tags(value: Any, field: Field) -> tuple[str, ...]:
    raw = value or []
    if isinstance(raw, str):
        raw = [t.strip() for t in raw.split(",") if t.strip()]
    if not isinstance(raw, list):
        raise field.error("'tags' must be a list like [python, fediverse]")
    tags = tuple(_text(t, field).strip().lstrip("#") for t in raw)
    for tag in tags:  # each tag federates as a hashtag (bridge.site.hashtags)
        if hashtag_name(tag) is None:
            raise field.error(
                f"tag {tag!r} cannot be a fediverse hashtag: it needs a letter "
                "(hashtags hold letters, digits, '_' and '·')"
            )
    return tags


def _images(value: Any, field: Field) -> tuple[Image, ...]:
    raw = value or []
    if not isinstance(raw, list):
        raise field.error("'images' must be a list of {url, alt} entries")
    images = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise field.error("each image needs 'url' (and 'alt' text)")
        alt = item.get("alt")
        if not isinstance(alt, str) or not alt.strip():
            raise field.error(f"image {item['url']!r} needs 'alt' text describing it")
        url = item["url"]
        if not url.startswith(("http://", "https://")):
            url = field.config.base_url + "/" + url.lstrip("/")
        images.append(Image(url=url, alt=alt.strip(), media_type=media_type(url)))
    return tuple(images)


def media_type(url: str) -> str:
    """The image type a URL's extension names (JPEG when it names none we know)."""
    ext = url.rsplit(".", 1)[-1].lower()
    return {
        "png": "image/png",
        "gif": "image/gif",
        "webp": "image/webp",
        "avif": "image/avif",
        "svg": "image/svg+xml",
    }.get(ext, "image/jpeg")


def _fediverse_format(value: Any, field: Field) -> str:
    if value not in ("article", "note"):
        raise field.error("'fediverse_format' must be article or note")
    return str(value)


def _draft(value: Any, field: Field) -> bool:
    if not isinstance(value, bool):
        raise field.error("'draft' must be true or false")
    return value


def _in_reply_to(value: Any, field: Field) -> str | None:
    if value is None:
        return None
    url = _text(value, field)
    if not url.startswith(("http://", "https://")):
        raise field.error("'in_reply_to' must be an http(s) URL")
    return url


def _quote_of(value: Any, field: Field) -> str | None:
    if value is None:
        return None
    url = _text(value, field).strip()
    if not url.startswith(("http://", "https://")) or len(url) > 2048:
        raise field.error("'quote_of' must be the http(s) URL of the post to quote")
    return url


def _pinned(value: Any, field: Field) -> bool:
    if not isinstance(value, bool):
        raise field.error("'pinned' must be true or false")
    return value


def _summary(value: Any, field: Field) -> str | None:
    return _text(value, field).strip() if value else None


# In the order they are checked, so the first error of a file is the same every time.
POST_PROCESSORS: dict[str, Processor] = {
    "date": _datetime,
    "updated": _optional_datetime,
    "title": _title,
    "slug": _slug,
    "tags": _tags,
    "images": _images,
    "fediverse_format": _fediverse_format,
    "draft": _draft,
    "in_reply_to": _in_reply_to,
    "original_url": _optional_text,
    "summary": _summary,
    "lang": _text,
    "content_warning": _optional_text,
    "pinned": _pinned,  # featured on the profile (bridge/site/featured.py)
    "quote_of": _quote_of,  # a quote post (bridge/site/quote_card.py, FEP-044f)
}
POST_KEYS = frozenset(POST_PROCESSORS)
EXTRA_KEYS = ("original_url",)  # kept in ``Post.extra`` when given, not as fields


def post_defaults(config: SiteConfig, slug: str) -> dict[str, Any]:
    """What an absent key means: the file name's slug and the site's settings."""
    return {
        "slug": slug,
        "draft": False,
        "pinned": False,
        "lang": config.language,
        "fediverse_format": config.fediverse_format,
    }


def post_fields(
    meta: dict[str, Any], text: str, rel: str, config: SiteConfig, slug: str
) -> dict[str, Any]:
    """The validated values of a post's front matter, by key (``extra`` for the rest).

    Raises:
        ContentError: an unknown key, no date, or a value of the wrong kind.
    """
    _refuse_unknown(meta, POST_KEYS, text, rel, "")
    if "date" not in meta:
        raise ContentError(rel, 1, "front matter key 'date' is required (e.g. date: 2026-03-01)")
    defaults = post_defaults(config, slug)
    fields: dict[str, Any] = {}
    for key, process in POST_PROCESSORS.items():
        value = meta[key] if key in meta else defaults.get(key)
        fields[key] = process(value, Field(rel, key, text, config))
    extra = {key: fields.pop(key) for key in EXTRA_KEYS}
    fields["extra"] = {key: value for key, value in extra.items() if value is not None}
    return fields


def _weight(value: Any, field: Field) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise field.error("'weight' must be a whole number (lighter pages come first in the menu)")


def _flag(value: Any, field: Field) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise field.error(f"'{field.key}' must be true or false")
    return value


# Pages: a title, an optional slug and language, their place in the menu; dates are
# accepted and not used.
PAGE_PROCESSORS: dict[str, Processor] = {
    "menu": _flag,
    "weight": _weight,
    "author_card": _flag,
}
PAGE_KEYS = frozenset({"title", "slug", "lang", "date", "updated", *PAGE_PROCESSORS})


def page_fields(
    meta: dict[str, Any], text: str, rel: str, config: SiteConfig, slug: str
) -> dict[str, Any]:
    """The validated values of a page's front matter (title, slug, lang, menu)."""
    _refuse_unknown(meta, PAGE_KEYS, text, rel, " for a page")
    if not meta.get("title"):
        raise ContentError(rel, 1, "front matter key 'title' is required for a page")
    page_slug = str(meta.get("slug", slug))
    if not SLUG_RE.match(page_slug):
        raise Field(rel, "slug", text, config).error(
            f"'slug' must be lowercase letters, digits and dashes, got {page_slug!r}"
        )
    fields: dict[str, Any] = {
        "title": str(meta["title"]),
        "slug": page_slug,
        "lang": str(meta.get("lang", config.language)),
    }
    for key, process in PAGE_PROCESSORS.items():
        fields[key] = process(meta.get(key), Field(rel, key, text, config))
    return fields


def _refuse_unknown(
    meta: dict[str, Any], allowed: frozenset[str], text: str, rel: str, kind: str
) -> None:
    for key in meta:
        if key not in allowed:
            raise ContentError(
                rel,
                key_line(text, str(key)),
                f"unknown front matter key '{key}'{kind} "
                f"(expected one of: {', '.join(sorted(allowed))})",
            )
