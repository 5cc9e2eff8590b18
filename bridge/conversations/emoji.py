"""Custom emoji in comments: a reply's ``Emoji`` tags become small images stored here.

A fediverse server writes a custom emoji as its shortcode in the text (``:blobcat:``) and
describes it in the object's ``tag`` list.  ``with_emoji`` turns each shortcode of the
(already sanitised) comment HTML that has such a tag into ``<img class="emoji" src alt
title>``, the image fetched once and stored on the blog, so a page never loads anything
from the commenter's server.

Where the images live: ``<site>/static/emoji/<sha256>.<ext>``, served at
``/static/emoji/…`` by the build's static step like the site's own files.  Not under
``content/comments/`` (that folder holds one folder per post), and not in the output folder,
which each build replaces as a whole.  Named by content hash, so the same image used by many
servers and comments is one file, and a file never changes once written.  Hotlinking the
remote server instead would tell it who reads the blog, break when it removes the file, and
let it swap the picture after the comment was approved.

Facts relied on (tests/conversations/test_emoji.py and tests/security/test_emoji_hostility.py
check each; the payloads in ../shared/fixtures/activities are Mastodon's, Misskey's and
GoToSocial's own):

* The tag is ``{"type": "Emoji", "name": ":blobcat:", "icon": {"type": "Image",
  "mediaType": "image/png", "url": "https://…"}}`` (Mastodon docs ``spec/activitypub.md``,
  "Custom emoji"; ``toot:Emoji``); Pleroma and Akkoma omit ``mediaType``.
* A shortcode is ``[a-zA-Z0-9_]+`` between colons, not touching a letter or digit on either
  side (Mastodon ``app/models/custom_emoji.rb``: ``SHORTCODE_RE_FRAGMENT``, ``SCAN_RE``).
* Mastodon refuses remote emoji over 256 KiB (``MAX_REMOTE_EMOJI_SIZE``, default
  ``256.kilobytes``) and accepts png, gif, webp and jpeg (``IMAGE_MIME_TYPES``).  Here the
  type is decided by the file's magic bytes, never by the header or the URL, so an SVG
  (which can carry script) is never stored.

Bounds: at most ``MAX_TAGS_READ`` tags are read, ``MAX_PER_COMMENT`` distinct emoji are
fetched (the first ones in the text; the rest stay text), all of them within
``FETCH_BUDGET`` seconds, each through the SSRF-safe fetcher with ``MAX_BYTES``; the folder
holds at most ``MAX_STORED_BYTES``.  A failed fetch leaves the shortcode as text and never
fails the comment.
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio

from bridge.conversations.shapes import objects, types
from bridge.errors import FetchError
from bridge.federation.context import Context
from bridge.federation.fetch import SafeFetcher
from bridge.site.sanitize import EMOJI_PATH, http_url

__all__ = [
    "emoji_tags",
    "replace_shortcodes",
    "sniff",
    "store_image",
    "stored_in",
    "with_emoji",
]

log = logging.getLogger("indiebridge.conversations")

MAX_TAGS_READ = 200
MAX_PER_COMMENT = 20
MAX_BYTES = 256 * 1024
MAX_STORED_BYTES = 64 * 1024 * 1024
FETCH_BUDGET = 15.0  # seconds for all the emoji of one comment
CONCURRENT_FETCHES = 4
ACCEPT = "image/png, image/gif, image/webp, image/jpeg"

_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_SHORTCODE = re.compile(r"(?<![^\W_]):([A-Za-z0-9_]{1,64}):(?![^\W_])")
# nh3's output escapes ``<`` and ``>`` in text and attribute values: a tag is ``<[^>]*>``.
_TAG = re.compile(r"(<[^>]*>)")
_VERBATIM = frozenset({"code", "pre"})  # shortcodes there are shown as written
_STORED = re.compile(
    r'<img class="emoji" src="/static/emoji/([0-9a-f]{64}\.(?:png|gif|webp|jpg))" '
    r'alt=":([A-Za-z0-9_]{1,64}):"'
)


def emoji_tags(obj: dict[str, Any]) -> dict[str, str]:
    """Shortcode (without colons) -> icon URL, from an object's ``Emoji`` tags (http(s)
    icons only, the first tag of a name wins)."""
    found: dict[str, str] = {}
    for tag in objects(obj.get("tag"))[:MAX_TAGS_READ]:
        if "Emoji" not in types(tag):
            continue
        name = tag.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name.strip().strip(":")):
            continue
        icons = objects(tag.get("icon"))
        url = http_url(icons[0].get("url")) if icons else ""
        if url and name.strip().strip(":") not in found:
            found[name.strip().strip(":")] = url
    return found


def _text_segments(content: str) -> Iterable[tuple[int, str]]:
    """(index, text) of the HTML's text pieces outside ``<code>``/``<pre>``."""
    verbatim = 0
    for index, piece in enumerate(_TAG.split(content)):
        if piece.startswith("<"):
            name = piece.strip("</>").split(" ", 1)[0].lower()
            if name in _VERBATIM:
                verbatim += -1 if piece.startswith("</") else 1
        elif verbatim <= 0:
            yield index, piece


def used_shortcodes(content: str, known: Iterable[str]) -> list[str]:
    """The known shortcodes the HTML's text uses, in the order they first appear."""
    names = set(known)
    seen: dict[str, None] = {}
    for _, text in _text_segments(content):
        for m in _SHORTCODE.finditer(text):
            if m.group(1) in names:
                seen.setdefault(m.group(1))
    return list(seen)


def emoji_img(shortcode: str, filename: str) -> str:
    """The one image markup ``bridge.site.sanitize`` keeps at render time."""
    code = html.escape(f":{shortcode}:")
    return f'<img class="emoji" src="{EMOJI_PATH}{filename}" alt="{code}" title="{code}">'


def replace_shortcodes(content: str, images: dict[str, str]) -> str:
    """``:name:`` in the text (never in a tag or its attributes, nor in code) -> its image,
    for each name in ``images`` (shortcode -> stored file name); the rest stays."""
    if not images:
        return content
    pieces = _TAG.split(content)

    def image(m: re.Match[str]) -> str:
        filename = images.get(m.group(1))
        return emoji_img(m.group(1), filename) if filename else m.group(0)

    for index, text in list(_text_segments(content)):
        pieces[index] = _SHORTCODE.sub(image, text)
    return "".join(pieces)


def sniff(data: bytes) -> str | None:
    """The file extension for PNG, GIF, WebP or JPEG data by its magic bytes, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    return None


def emoji_dir(site_dir: Path) -> Path:
    """Where the images are stored: the site's own ``static/emoji/`` (``EMOJI_PATH``)."""
    return site_dir / "static" / "emoji"


def _stored_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    with os.scandir(folder) as entries:
        return sum(e.stat().st_size for e in entries if e.is_file())


def store_image(folder: Path, data: bytes) -> str | None:
    """Write ``data`` as ``<sha256>.<ext>`` (atomically) and return the file name; None when
    it is not a PNG, GIF, WebP or JPEG, is too large, or the folder is full."""
    ext = sniff(data)
    if ext is None or len(data) > MAX_BYTES:
        return None
    filename = f"{hashlib.sha256(data).hexdigest()}.{ext}"
    path = folder / filename
    if path.is_file():
        return filename
    if _stored_bytes(folder) + len(data) > MAX_STORED_BYTES:  # a bound on disk use
        log.warning("%s holds %d MiB of emoji: not storing more", folder, MAX_STORED_BYTES >> 20)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{filename}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return filename


async def fetch_image(fetcher: SafeFetcher, url: str) -> bytes | None:
    """The image at ``url`` (at most ``MAX_BYTES``), or None when it cannot be had."""
    try:
        page = await fetcher.get(url, accept=ACCEPT, max_bytes=MAX_BYTES)
    except FetchError as exc:
        log.info("custom emoji %s not fetched: %s", url, exc)
        return None
    return page.body if page.status == 200 else None


def stored_in(content: str, folder: Path) -> dict[str, str]:
    """Shortcode -> file name of the emoji images an earlier version of a comment shows
    whose files are still stored."""
    found: dict[str, str] = {}
    for m in _STORED.finditer(content):
        if (folder / m.group(1)).is_file():
            found.setdefault(m.group(2), m.group(1))
    return found


async def with_emoji(ctx: Context, obj: dict[str, Any], content: str, *, previous: str = "") -> str:
    """``content`` (sanitised HTML of ``obj``) with its custom emoji as stored images.

    ``previous`` is the comment's earlier content (an edit): its images are used again
    for the same shortcodes instead of being fetched once more.
    """
    tags = emoji_tags(obj)
    folder = emoji_dir(ctx.config.site_dir)
    used = used_shortcodes(content, tags)[:MAX_PER_COMMENT]
    kept = stored_in(previous, folder)
    images = {name: kept[name] for name in used if name in kept}
    wanted = [name for name in used if name not in images]
    if not wanted:
        return replace_shortcodes(content, images)
    limiter = anyio.CapacityLimiter(CONCURRENT_FETCHES)

    async def one(name: str) -> None:
        async with limiter:
            data = await fetch_image(ctx.fetcher, tags[name])
        try:
            stored = store_image(folder, data) if data is not None else None
        except OSError as exc:  # a full or read-only disk costs the image, not the comment
            log.warning("custom emoji %s not stored: %s", tags[name], exc)
            return
        if stored is not None:
            images[name] = stored
        elif data is not None:
            log.info("custom emoji %s refused: not a small PNG, GIF, WebP or JPEG", tags[name])

    with anyio.move_on_after(FETCH_BUDGET):
        async with anyio.create_task_group() as group:
            for name in wanted:
                group.start_soon(one, name)
    return replace_shortcodes(content, images)
