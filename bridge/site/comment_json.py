"""A comment file's fields and the ``Comment`` they make (``to_json``, ``from_json``).

``from_json`` is sized for the daemon's processes, which keep thousands of parsed comments
between builds (``bridge.site.comment_cache``): what repeats across comments is kept once.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
from dataclasses import fields
from typing import Any

from bridge.site.posts import Comment, CommentAuthor

__all__ = ["from_json", "to_json"]

_intern = sys.intern


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def _parse_dt(value: Any, *, shared: bool = True) -> dt.datetime | None:
    """``shared``: one (immutable) datetime for each timestamp text, as replies arriving
    within the same second share it; a timestamp no other comment has (``received``) is
    not worth the cache."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_iso(value) if shared else _iso_instant(value)


def _iso_instant(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


_parse_iso = functools.lru_cache(maxsize=4096)(_iso_instant)


_FIELDS = tuple(f.name for f in fields(Comment))
_AUTHOR_FIELDS = tuple(f.name for f in fields(CommentAuthor))


def to_json(comment: Comment) -> dict[str, Any]:
    """The file's fields (``asdict``'s result, without its deep copy of every string)."""
    data = {name: getattr(comment, name) for name in _FIELDS}
    data["author"] = {name: getattr(comment.author, name) for name in _AUTHOR_FIELDS}
    data["published"] = _iso(comment.published)
    data["updated"] = _iso(comment.updated)
    data["received"] = _iso(comment.received)
    return data


@functools.lru_cache(maxsize=4096)
def _author(name: str, url: str, photo: str, handle: str) -> CommentAuthor:
    """One (frozen) author value for each remote actor's recent comments."""
    return CommentAuthor(_intern(name), _intern(url), _intern(photo), _intern(handle))


def from_json(data: dict[str, Any]) -> Comment:
    """The ``Comment`` of a file's fields.  Strings that repeat across comments (the type,
    protocol, status and target, and the author's fields, which repeat per remote actor)
    are interned, an author's value is shared by its comments, and ``object_id`` shares
    ``source`` when equal, so thousands of resident comments (``comment_cache``) keep one
    copy of each."""
    author = data.get("author") or {}
    published = _parse_dt(data.get("published")) or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    source = str(data.get("source", ""))
    object_id = str(data.get("object_id", ""))
    return Comment(
        id=str(data["id"]),
        type=_intern(str(data.get("type", "mention"))),
        protocol=_intern(str(data.get("protocol", "webmention"))),
        source=source,
        target=_intern(str(data.get("target", ""))),
        author=_author(
            str(author.get("name", "")),
            str(author.get("url", "")),
            str(author.get("photo", "")),
            str(author.get("handle", "")),
        ),
        content=str(data.get("content", "")),
        published=published,
        updated=_parse_dt(data.get("updated")),
        status=_intern(str(data.get("status", "approved"))),
        in_reply_to=_intern(str(data.get("in_reply_to", ""))),
        object_id=source if object_id == source else object_id,
        actor_id=_intern(str(data.get("actor_id", ""))),
        received=_parse_dt(data.get("received"), shared=False),
    )
