"""Comments as files: ``content/comments/<post-slug>/<id>.json``, one file per comment.

Comments are data the site is built from, so they live beside the posts: portable,
reviewable in git, and rebuilt into the pages like any other content.  Each file is
written atomically (temporary file + rename), so a crash never leaves half a comment.

The id is derived from what the comment *is* (the remote object id, or the webmention
source and target), so a redelivered activity or a re-sent webmention updates the same
file instead of creating a second one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bridge.site.posts import SLUG_RE, Comment, CommentAuthor

_ID_RE = re.compile(r"^[0-9a-f]{1,64}$")


def comment_id(protocol: str, key: str) -> str:
    """Stable id: a hash of the protocol and the comment's natural key."""
    return hashlib.sha256(f"{protocol}\0{key}".encode()).hexdigest()[:20]


def comments_dir(content_dir: Path) -> Path:
    return content_dir / "comments"


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def _parse_dt(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def to_json(comment: Comment) -> dict[str, Any]:
    data = asdict(comment)
    data["published"] = _iso(comment.published)
    data["updated"] = _iso(comment.updated)
    return data


def from_json(data: dict[str, Any]) -> Comment:
    author = data.get("author") or {}
    published = _parse_dt(data.get("published")) or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return Comment(
        id=str(data["id"]),
        type=str(data.get("type", "mention")),
        protocol=str(data.get("protocol", "webmention")),
        source=str(data.get("source", "")),
        target=str(data.get("target", "")),
        author=CommentAuthor(
            name=str(author.get("name", "")),
            url=str(author.get("url", "")),
            photo=str(author.get("photo", "")),
            handle=str(author.get("handle", "")),
        ),
        content=str(data.get("content", "")),
        published=published,
        updated=_parse_dt(data.get("updated")),
        status=str(data.get("status", "approved")),
        in_reply_to=str(data.get("in_reply_to", "")),
        object_id=str(data.get("object_id", "")),
    )


class CommentStore:
    """Reads and writes comment files of one site."""

    def __init__(self, content_dir: Path) -> None:
        self.root = comments_dir(content_dir)

    def path(self, post_slug: str, cid: str) -> Path:
        """The file of a comment; slugs and ids are checked so no path leaves the folder."""
        if not SLUG_RE.match(post_slug) or not _ID_RE.match(cid):
            raise ValueError(f"invalid comment location {post_slug!r}/{cid!r}")
        return self.root / post_slug / f"{cid}.json"

    def write(self, post_slug: str, comment: Comment) -> Path:
        path = self.path(post_slug, comment.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        data = json.dumps(to_json(comment), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    def get(self, cid: str) -> tuple[str, Comment] | None:
        """Find a comment by id in any post folder: (post slug, comment)."""
        if not self.root.is_dir():
            return None
        for folder in self.root.iterdir():
            path = folder / f"{cid}.json"
            if path.is_file():
                return folder.name, self._read(path)
        return None

    def delete(self, cid: str) -> bool:
        found = self.get(cid)
        if found is None:
            return False
        self.path(found[0], cid).unlink(missing_ok=True)
        return True

    @staticmethod
    def _read(path: Path) -> Comment:
        return from_json(json.loads(path.read_text(encoding="utf-8")))

    def iter_all(self) -> Iterable[tuple[str, Comment]]:
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.json")):
                try:
                    yield folder.name, self._read(path)
                except (ValueError, KeyError, OSError):
                    continue  # a hand-broken file must not stop the build; `comments list` shows it

    def by_post(self) -> dict[str, list[Comment]]:
        out: dict[str, list[Comment]] = {}
        for slug, comment in self.iter_all():
            out.setdefault(slug, []).append(comment)
        return out

    def digest(self, slug: str) -> str:
        """Hash of a post's comment files: a change re-renders only that post's pages."""
        folder = self.root / slug
        h = hashlib.sha256()
        if folder.is_dir():
            for path in sorted(folder.glob("*.json")):
                h.update(path.name.encode() + b"\0" + path.read_bytes())
        return h.hexdigest()
