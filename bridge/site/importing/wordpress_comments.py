"""WordPress comments, pingbacks and trackbacks -> the site's comment files.

Approved comments (``wp:comment_approved`` 1) are kept as approved, held ones (0) as
pending; spam and trash are left out and counted.  The commenter's email and IP are
never read; names are cleaned to one line, URLs must be http(s), and the text goes
through the same sanitiser as fediverse replies.  A comment's id is derived from the
post's guid and the WordPress comment id, so importing again finds the same file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from bridge.site.comments import comment_id
from bridge.site.importing.model import FeedEntry
from bridge.site.posts import Comment, CommentAuthor
from bridge.site.sanitize import clean_text, http_url, sanitize_html

PROTOCOL = "wordpress"
_STATUS = {"1": "approved", "approve": "approved", "0": "pending", "hold": "pending"}


@dataclass
class Converted:
    comments: list[Comment] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # one line per comment not kept


def _source(entry: FeedEntry, key: str) -> str:
    return f"{entry.link or entry.guid}#comment-{key}"


def convert(entry: FeedEntry, target: str, fallback: dt.datetime) -> Converted:
    """The comments of ``entry`` as ``Comment`` values for the post at ``target``."""
    out = Converted()
    sources = {c.key: _source(entry, c.key) for c in entry.comments}
    for item in entry.comments:
        status = _STATUS.get(item.approved)
        who = clean_text(item.author) or "someone"
        if status is None:
            out.left_out.append(f"{item.kind} {item.key} by {who}: marked {item.approved}")
            continue
        ping = item.kind in ("pingback", "trackback")
        url = http_url(item.author_url)
        source = url if ping and url else sources[item.key]
        out.comments.append(
            Comment(
                id=comment_id(PROTOCOL, f"{entry.guid or entry.link}#comment-{item.key}"),
                type="mention" if ping else "reply",
                protocol=PROTOCOL,
                source=source,
                target=target,
                author=CommentAuthor(name=who, url=url),
                content=sanitize_html(item.html, base_url=entry.link or ""),
                published=item.date or fallback,
                status=status,
                in_reply_to=sources.get(item.parent, "") if item.parent not in ("", "0") else "",
            )
        )
    return out
