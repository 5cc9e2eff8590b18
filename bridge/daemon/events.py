"""One log line per thing the daemon does, as text or as JSON (``serve --log-format``).

Events (the ``event`` field of a JSON line):

* ``follow`` / ``follow-refused`` / ``unfollow`` - from the inbox's Follow and Undo
  handlers, wrapped by ``logged_handlers``;
* ``comment-received`` / ``comment-held`` (held for approval) / ``comment-deleted`` - from
  the comment store the ``Context`` is built with (``LoggedCommentStore``);
* ``webmention-verified`` / ``webmention-refused`` - after each verification round
  (``log_webmentions``);
* ``rebuild`` - pages changed, seconds, and the CPU seconds of the building thread
  (``cpu_seconds``, JSON only: the rest waited for a core or the disk) (``bridge.daemon.rebuild``);
* ``delivery-gave-up`` - a delivery row that ended failed or gone (``DeliveryWatch``).

Text lines read ``12:00:01 follow @alice@social.example (accepted)``; JSON lines carry
``time``, ``level``, ``event``, ``message`` and the event's fields.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bridge.db import Database
from bridge.federation import followers
from bridge.federation.context import Context
from bridge.site.comments import CommentStore
from bridge.site.posts import Comment

log = logging.getLogger("indiebridge.events")

Handler = Callable[[Context, dict[str, Any], bool], Awaitable[None]]


def event(name: str, message: str, **fields: Any) -> None:
    """Log one event line."""
    log.info(message, extra={"event": name, "fields": fields})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", record.name),
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: str = "text") -> None:
    """Send indiebridge's log lines (INFO and up) to stderr, one line each."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("indiebridge")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


class LoggedCommentStore(CommentStore):
    """The comment store of the daemon's ``Context``: new comments are logged."""

    def write(
        self, post_slug: str, comment: Comment, landed: Callable[[], None] | None = None
    ) -> Any:
        if self.exists(post_slug, comment.id):
            return super().write(post_slug, comment, landed)
        who = comment.author.handle or comment.author.name
        if comment.status == "pending":
            name, what = "comment-held", "held for approval"
        else:
            name, what = "comment-received", comment.status

        def logged() -> None:  # once the file is there (a deferred write lands later)
            if landed is not None:
                landed()
            event(
                name,
                f"{name.replace('-', ' ')}: {comment.type} by {who} on {post_slug} ({what})",
                id=comment.id,
                post=post_slug,
                author=who,
                type=comment.type,
                status=comment.status,
            )

        return super().write(post_slug, comment, logged)

    def delete(self, cid: str) -> bool:
        gone = super().delete(cid)
        if gone:
            event("comment-deleted", f"comment deleted: {cid}", id=cid)
        return gone


def _actor(activity: dict[str, Any]) -> str:
    actor = activity.get("actor")
    if isinstance(actor, dict):
        actor = actor.get("id")
    return actor if isinstance(actor, str) else ""


def logged_handlers(table: dict[str, Handler]) -> dict[str, Handler]:
    """The inbox's table with Follow and Undo logging who followed and unfollowed."""
    follow, undo = table.get("Follow"), table.get("Undo")

    async def on_follow(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
        assert follow is not None
        await follow(ctx, activity, forwarded)
        actor = _actor(activity)
        found = followers.get(ctx.db, actor)
        if found is None:
            event("follow-refused", f"follow refused: {actor}", actor=actor)
        else:
            who = found.handle or actor
            event("follow", f"follow: {who} ({found.state})", actor=actor, state=found.state)

    async def on_undo(ctx: Context, activity: dict[str, Any], forwarded: bool) -> None:
        assert undo is not None
        actor = _actor(activity)
        before = followers.get(ctx.db, actor)
        await undo(ctx, activity, forwarded)
        if before is not None and followers.get(ctx.db, actor) is None:
            event("unfollow", f"unfollow: {before.handle or actor}", actor=actor)

    logged = dict(table)
    if follow is not None:
        logged["Follow"] = on_follow
    if undo is not None:
        logged["Undo"] = on_undo
    return logged


def pending_webmentions(db: Database) -> list[int]:
    return [int(r["id"]) for r in db.query("SELECT id FROM webmentions_in WHERE status = 'new'")]


def log_webmentions(db: Database, ids: list[int]) -> None:
    """After a verification round: one line per webmention that was verified or refused."""
    for wid in ids:
        row = db.one(
            "SELECT source, target, status, error FROM webmentions_in WHERE id = ?", (wid,)
        )
        if row is None or row["status"] == "new":
            continue
        fields = {"source": row["source"], "target": row["target"]}
        if row["status"] == "done":
            event("webmention-verified", f"webmention verified: {row['source']}", **fields)
        else:
            reason = row["error"] or row["status"]
            event(
                "webmention-refused",
                f"webmention refused: {row['source']}: {reason}",
                error=reason,
                **fields,
            )


class DeliveryWatch:
    """Logs each delivery row that ended ``failed`` or ``gone`` since the last look."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.since = time.time()

    def check(self) -> int:
        rows = self.db.query(
            "SELECT d.inbox, d.state, d.tries, d.last_error, d.updated, o.type "
            "FROM deliveries d JOIN outgoing o ON o.id = d.activity_id "
            "WHERE d.state IN ('failed', 'gone') AND d.updated > ? ORDER BY d.updated",
            (self.since,),
        )
        for r in rows:
            self.since = max(self.since, float(r["updated"]))
            event(
                "delivery-gave-up",
                f"delivery gave up: {r['type']} to {r['inbox']} after {r['tries']} "
                f"tr{'y' if r['tries'] == 1 else 'ies'} ({r['state']}: {r['last_error']})",
                inbox=r["inbox"],
                state=r["state"],
                tries=r["tries"],
                error=r["last_error"],
            )
        return len(rows)
