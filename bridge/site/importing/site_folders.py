"""Reading a Hugo or Jekyll site folder from its Markdown sources: better than any feed.

A folder with ``hugo.toml``/``config.toml``/``config.yaml`` and ``content/`` is Hugo's; a
folder with ``_config.yml`` and ``_posts/`` is Jekyll's.  Each source file becomes a
``FeedEntry`` whose body is already Markdown (template tags converted by
``template_tags``), and whose link is the URL the old site gave it, so slugs and redirects
follow the old URLs.

Facts relied on:

* Hugo (gohugo.io/content-management/front-matter/, /urls/): front matter is YAML
  (``---``), TOML (``+++``) or JSON; ``title``, ``date``, ``publishDate``, ``lastmod``,
  ``draft``, ``slug``, ``url``, ``tags``, ``categories``, ``summary``, ``description``.  A
  file directly under ``content/`` is a page, one in a section folder a post;
  ``_index.md`` is a list page; ``name/index.md`` is a bundle named ``name``.  The URL is
  ``/section/slug/`` unless ``[permalinks]`` gives a pattern (``:year``, ``:month``,
  ``:day``, ``:title``, ``:slug``, ``:filename``, ``:section``); ``url`` overrides.  A
  draft or a ``publishDate`` in the future is not published.
* Jekyll (jekyllrb.com/docs/posts/, /permalinks/, /front-matter/): posts are
  ``_posts/YYYY-MM-DD-title.md``, drafts are in ``_drafts/``; ``published: false`` hides a
  post; the default ``permalink: date`` is ``/:categories/:year/:month/:day/:title.html``
  (``pretty`` ends in ``/``, ``ordinal``/``none`` also exist); ``url`` + ``baseurl`` in
  ``_config.yml``.  A root ``.md`` file with front matter is a page.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import yaml

from bridge.site.importing import template_tags
from bridge.site.importing.html_to_markdown import convert
from bridge.site.importing.model import FeedEntry, FeedError, ParsedFeed
from bridge.site.posts import slugify

HUGO_CONFIGS = ("hugo.toml", "hugo.yaml", "hugo.json", "config.toml", "config.yaml", "config.yml")
_JEKYLL_POST = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)$")
_JEKYLL_STYLES = {
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "none": "/:categories/:title:output_ext",
}
_MARKDOWN = (".md", ".markdown", ".mdown", ".html")


def kind_of(folder: Path) -> str | None:
    """ "hugo", "jekyll" or None."""
    if (folder / "_config.yml").is_file() and (folder / "_posts").is_dir():
        return "jekyll"
    if (folder / "content").is_dir() and any((folder / n).is_file() for n in HUGO_CONFIGS):
        return "hugo"
    return None


def _front_matter(text: str, rel: str) -> tuple[dict[str, Any], str]:
    """YAML, TOML or JSON front matter and the body after it."""
    text = text.removeprefix("\ufeff")
    try:
        for fence, load in (("---", yaml.safe_load), ("+++", tomllib.loads)):
            if text.startswith(fence + "\n") or text.startswith(fence + "\r\n"):
                head, sep, body = text[len(fence) :].partition(f"\n{fence}")
                if not sep:
                    raise FeedError(f"{rel}: front matter is not closed by '{fence}'")
                data = load(head) or {}
                return (data if isinstance(data, dict) else {}), body.partition("\n")[2]
        if text.startswith("{"):
            data, end = json.JSONDecoder().raw_decode(text)
            return (data if isinstance(data, dict) else {}), text[end:].lstrip("\n")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise FeedError(f"{rel}: front matter cannot be read: {reason}") from None
    return {}, text


def _date(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "T", 1)
        text = re.sub(r"\s*([+-]\d{2}):?(\d{2})$", r"\1:\2", text).replace("Z", "+00:00")
        try:
            return _date(dt.datetime.fromisoformat(text))
        except ValueError:
            return None
    return None


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value if str(v).strip()]
    return []


def _tags(meta: dict[str, Any]) -> tuple[str, ...]:
    out: dict[str, str] = {}
    for name in [*_names(meta.get("tags")), *_names(meta.get("categories"))]:
        out.setdefault(name.lower(), name)
    return tuple(out.values())


def _fill(pattern: str, values: dict[str, str]) -> str:
    for key in sorted(values, key=len, reverse=True):  # :title before :t...
        pattern = pattern.replace(f":{key}", values[key])
    return re.sub(r"/{2,}", "/", pattern)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise FeedError(f"{path}: cannot be read: {reason or exc}") from None


def _config(folder: Path, names: tuple[str, ...]) -> dict[str, Any]:
    for name in names:
        path = folder / name
        if path.is_file():
            text = _read(path)
            try:
                data = tomllib.loads(text) if name.endswith(".toml") else yaml.safe_load(text)
            except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
                reason = str(exc).splitlines()[0]
                raise FeedError(f"{path}: cannot be read: {reason}") from None
            return data if isinstance(data, dict) else {}
    return {}


_FENCE = re.compile(r"^(```+|~~~+)")
_MD_LINK = re.compile(r"(\]\()([^)\s#][^)\s]*)|((?:src|href)=\")([^\"#][^\"]*)")


def _joined(match: re.Match[str], base: str) -> str:
    prefix: str = match.group(1) or match.group(3)
    target: str = match.group(2) or match.group(4)
    return prefix + urljoin(base, target)


def absolute_links(markdown: str, base: str) -> str:
    """Relative link and image targets (``](/x)``, ``src="../y"``) resolved on ``base``,
    outside code blocks, so they still reach the old site's files."""
    out, fence = [], ""
    for line in markdown.split("\n"):
        opening = _FENCE.match(line.lstrip())
        if opening and (not fence or opening.group(1).startswith(fence)):
            fence = "" if fence else opening.group(1)[:3]
        elif not fence:  # and not in `code spans`, the odd parts of this split
            parts = re.split(r"(`+[^`]*`+)", line)
            parts[::2] = [_MD_LINK.sub(lambda m: _joined(m, base), p) for p in parts[::2]]
            line = "".join(parts)
        out.append(line)
    return "\n".join(out)


def _entry(
    meta: dict[str, Any], body: str, *, link: str, kind: str, status: str, warnings: tuple[str, ...]
) -> FeedEntry:
    summary = meta.get("summary") or meta.get("description") or meta.get("excerpt")
    return FeedEntry(
        key=link,
        title=str(meta["title"]).strip() if meta.get("title") else None,
        link=link,
        date=_date(meta.get("date")) or _date(meta.get("publishDate")),
        updated=_date(meta.get("lastmod") or meta.get("last_modified_at")),
        tags=_tags(meta),
        summary=" ".join(str(summary).split()) if summary else None,
        html="",
        markdown=absolute_links(body.strip("\n"), link),
        status=status,
        kind=kind,
        guid=link,
        warnings=warnings,
    )


def _body(path: Path, body: str, convert_tags: Callable[[str], Any]) -> tuple[str, tuple[str, ...]]:
    text, warnings = convert_tags(body)
    if path.suffix == ".html":
        converted = convert(text)
        return converted.markdown, (*warnings, *converted.warnings)
    return text, warnings


def _hugo(folder: Path, now: dt.datetime) -> ParsedFeed:
    config = _config(folder, HUGO_CONFIGS)
    base = str(config.get("baseURL") or config.get("baseurl") or "").rstrip("/")
    found = config.get("permalinks")
    permalinks: dict[str, Any] = found if isinstance(found, dict) else {}
    root = folder / "content"
    files = [p for p in sorted(root.rglob("*")) if p.suffix in _MARKDOWN and p.name != "_index.md"]
    parsed: list[tuple[Path, dict[str, Any], str, str]] = []
    for path in files:
        rel = path.relative_to(root)
        meta, body = _front_matter(_read(path), rel.as_posix())
        stem = rel.parent.name if path.stem == "index" else path.stem
        section = rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] != stem else ""
        date = _date(meta.get("date")) or now
        slug = str(meta.get("slug") or slugify(stem))
        values = {
            "year": f"{date:%Y}", "month": f"{date:%m}", "day": f"{date:%d}",
            "section": section, "slug": slug, "title": slugify(str(meta.get("title") or stem)),
            "filename": stem, "contentbasename": stem,
        }  # fmt: skip
        pattern = permalinks.get(section) if section else None
        url = str(meta.get("url") or (_fill(pattern, values) if pattern else ""))
        url = url or (f"/{section}/{slug}/" if section else f"/{slug}/")
        parsed.append((path, meta, body, urljoin(base + "/", url.lstrip("/"))))
    links = {p.relative_to(root).as_posix(): link for p, _, _, link in parsed}

    def resolve(ref: str) -> str | None:
        ref = ref.strip("/")
        return next(
            (link for rel, link in links.items() if rel == ref or rel.endswith("/" + ref)), None
        )

    entries = []
    for path, meta, body, link in parsed:
        text, warnings = _body(path, body, lambda b: template_tags.hugo(b, resolve))
        publish = _date(meta.get("publishDate"))
        status = (
            "draft" if meta.get("draft") else "future" if publish and publish > now else "publish"
        )
        kind = "post" if len(path.relative_to(root).parts) > 1 else "page"
        entries.append(_entry(meta, text, link=link, kind=kind, status=status, warnings=warnings))
    return ParsedFeed(
        title=str(config.get("title") or ""), link=base, updated=None, wordpress=False,
        entries=tuple(entries), generator="Hugo (sources)",
    )  # fmt: skip


def _has_front_matter(path: Path) -> bool:
    return _read(path).startswith("---")


def _jekyll_files(folder: Path) -> Iterator[tuple[Path, str]]:
    for sub, status in (("_posts", "publish"), ("_drafts", "draft")):
        for path in sorted((folder / sub).rglob("*")) if (folder / sub).is_dir() else []:
            if path.suffix in _MARKDOWN:
                yield path, status
    for path in sorted(folder.glob("*")):
        source = path.suffix in (".md", ".markdown")
        if source and path.stem not in ("README", "index", "404") and _has_front_matter(path):
            yield path, "page"


def _jekyll(folder: Path, now: dt.datetime) -> ParsedFeed:
    config = _config(folder, ("_config.yml",))
    baseurl = str(config.get("baseurl") or "").rstrip("/")
    base = str(config.get("url") or "").rstrip("/") + baseurl
    style = str(config.get("permalink") or "date")
    default = _JEKYLL_STYLES.get(style, style)
    parsed: list[tuple[Path, dict[str, Any], str, str, str]] = []
    for path, status in _jekyll_files(folder):
        meta, body = _front_matter(_read(path), path.name)
        found = _JEKYLL_POST.match(path.stem)
        date = _date(meta.get("date")) or (
            dt.datetime(int(found[1]), int(found[2]), int(found[3]), tzinfo=dt.UTC)
            if found
            else now
        )
        meta.setdefault("date", date)
        title = str(meta.get("slug") or (found[4] if found else path.stem))
        categories = "/".join(
            slugify(c) for c in _names(meta.get("categories") or meta.get("category"))
        )
        values = {
            "year": f"{date:%Y}", "month": f"{date:%m}", "day": f"{date:%d}",
            "y_day": f"{date:%j}", "title": title, "slug": title,
            "categories": categories, "output_ext": ".html",
        }  # fmt: skip
        pattern = str(meta.get("permalink") or (f"/{title}/" if status == "page" else default))
        if meta.get("published") is False:
            status = "draft"
        parsed.append((path, meta, body, status, base + _fill(pattern, values)))
    links = {p.relative_to(folder).as_posix(): link for p, *_, link in parsed}

    def resolve(ref: str) -> str | None:
        ref = ref.strip().strip("\"'")
        return next((link for rel, link in links.items() if ref in (rel, Path(rel).stem)), None)

    entries = []
    for path, meta, body, status, link in parsed:
        text, warnings = _body(path, body, lambda b: template_tags.jekyll(b, resolve, baseurl))
        kind = "page" if status == "page" else "post"
        status = "publish" if status == "page" else status
        entries.append(_entry(meta, text, link=link, kind=kind, status=status, warnings=warnings))
    return ParsedFeed(
        title=str(config.get("title") or ""), link=base, updated=None, wordpress=False,
        entries=tuple(entries), generator="Jekyll (sources)",
    )  # fmt: skip


def read(folder: Path, *, now: dt.datetime | None = None) -> ParsedFeed:
    """The posts and pages of a Hugo or Jekyll site folder.

    Raises:
        FeedError: not a Hugo or Jekyll folder, or a file's front matter is unreadable.
    """
    moment = now or dt.datetime.now(dt.UTC)
    kind = kind_of(folder)
    if kind == "hugo":
        return _hugo(folder, moment)
    if kind == "jekyll":
        return _jekyll(folder, moment)
    raise FeedError(
        f"{folder}: not a Hugo site (config.toml or hugo.toml beside content/) "
        "or a Jekyll site (_config.yml beside _posts/)"
    )
