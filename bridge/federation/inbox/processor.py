"""Processing stored activities: the ``inbox`` rows with status ``new``, through the handlers.

Outcomes of one row:

* the handler returns: ``done``;
* it raises ``FetchError`` (a remote server did not answer as needed): ``new`` again, tried
  later, ``failed`` after ``max_tries``;
* it raises another ``BridgeError`` or a ``ValueError`` (what a remote document may cause):
  ``failed`` with the message;
* the stored activity does not have the shape every handler relies on (a JSON object with a
  string ``type`` and an ``actor`` id): ``failed`` before any handler runs, so a hostile
  payload never reaches code that would trip over it;
* anything else is a bug in a handler: the row is marked ``failed`` (so it never jams the
  queue) and, once the batch is done, the first such exception is raised again, so tests
  see it and the daemon logs it with its traceback.

Unknown types are marked done.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from bridge.errors import BridgeError, FetchError
from bridge.federation.actors import first_id
from bridge.federation.context import Context
from bridge.federation.inbox.handlers import Handler

log = logging.getLogger("indiebridge.inbox")


def shape_error(activity: Any) -> str:
    """Why a stored activity cannot be handed to a handler, or ``""`` when it can."""
    if not isinstance(activity, dict):
        return "not a JSON object"
    if not isinstance(activity.get("type"), str):
        return "type is not a string"
    if not first_id(activity.get("actor")):
        return "actor is not an id"
    return ""


class InboxProcessor:
    """Processes stored activities through ``handlers`` (type -> coroutine)."""

    def __init__(self, ctx: Context, handlers: dict[str, Handler], max_tries: int = 5) -> None:
        self.ctx = ctx
        self.handlers = handlers
        self.max_tries = max_tries

    async def process_pending(self, limit: int = 100) -> int:
        """Process up to ``limit`` new rows, oldest first; return how many were looked at."""
        rows = self.ctx.db.query(
            "SELECT id, body, tries, forwarded FROM inbox WHERE status = 'new' "
            "ORDER BY received LIMIT ?",
            (limit,),
        )
        bugs: list[Exception] = []
        for row in rows:
            bug = await self.process_one(
                row["id"], row["body"], row["tries"], bool(row["forwarded"])
            )
            if bug is not None:
                bugs.append(bug)
        if bugs:
            raise bugs[0]
        return len(rows)

    async def process_one(
        self, activity_id: str, body: str, tries: int, forwarded: bool
    ) -> Exception | None:
        """Process one row and record its outcome; return a handler bug instead of raising."""
        status, message, bug = "done", "", None
        try:
            activity = json.loads(body)
            problem = shape_error(activity)
            if problem:
                raise ValueError(f"stored activity {problem}")
            handler = self.handlers.get(activity["type"])
            if handler is not None:
                await handler(self.ctx, activity, forwarded)
        except FetchError as exc:
            status = "new" if tries + 1 < self.max_tries else "failed"
            message = str(exc)
        except (BridgeError, ValueError, RecursionError) as exc:
            status, message = "failed", f"{type(exc).__name__}: {exc}"
            log.warning("inbox %s: %s", activity_id, message)
        except Exception as exc:  # noqa: BLE001 - a handler bug: recorded, re-raised after the batch
            status, message, bug = "failed", f"{type(exc).__name__}: {exc}", exc
            log.error("inbox %s: handler bug: %s", activity_id, message)
        with self.ctx.db.tx() as con:
            con.execute(
                "UPDATE inbox SET status = ?, tries = tries + 1, error = ? WHERE id = ?",
                (status, message[:500], activity_id),
            )
        return bug
