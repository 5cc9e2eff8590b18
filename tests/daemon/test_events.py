"""The daemon's event lines: one per event, as text or JSON."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.daemon import events
from bridge.db import Database
from bridge.federation import delivery
from bridge.site.comments import comment_id
from bridge.site.posts import Comment, CommentAuthor


@pytest.fixture
def restore_logging() -> Iterator[None]:
    logger = logging.getLogger("indiebridge")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def reply(status: str) -> Comment:
    oid = "https://social.example/users/alice/statuses/9"
    return Comment(
        id=comment_id("activitypub", oid),
        type="reply",
        protocol="activitypub",
        source=oid,
        target="https://blog.example/posts/first-article/",
        author=CommentAuthor("Alice", "https://social.example/@alice", "", "@alice@social.example"),
        content="<p>hi</p>",
        published=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        status=status,
        object_id=oid,
    )


def test_json_lines_carry_the_event_and_its_fields(
    site: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    events.configure("json")
    store = events.LoggedCommentStore(site / "content")
    held = reply("pending")
    store.write("first-article", held)
    store.write("first-article", held)  # the same comment again: not a new event
    store.delete(held.id)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["comment-held", "comment-deleted"]
    assert lines[0]["message"] == (
        "comment held: reply by @alice@social.example on first-article (held for approval)"
    )
    assert lines[0]["post"] == "first-article" and lines[0]["status"] == "pending"
    assert lines[0]["level"] == "info" and lines[0]["time"].endswith("+00:00")


def test_text_lines_and_deliveries_that_gave_up(
    site: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    events.configure("text")
    config = config_mod.load(site)
    db = Database(config.db_path)
    watch = events.DeliveryWatch(db)
    watch.since -= 10
    activity = {"id": config.actor_id + "#u1", "type": "Update", "actor": config.actor_id}
    delivery.enqueue(db, activity, ["https://gone.example/inbox"])
    with db.tx() as con:
        con.execute(
            "UPDATE deliveries SET state = 'failed', tries = 1, last_error = 'HTTP 403', "
            "updated = ?",
            (watch.since + 5,),
        )
    assert watch.check() == 1
    assert watch.check() == 0  # each row once
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(
        "delivery gave up: Update to https://gone.example/inbox after 1 try (failed: HTTP 403)"
    )
    assert line[:8].count(":") == 2  # HH:MM:SS first
    db.close()


@pytest.mark.anyio
async def test_follow_and_unfollow_lines_come_from_the_handler_table(
    site: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """The composition root's table logs what the Follow and Undo handlers did."""
    from bridge import keys
    from bridge.daemon import services
    from bridge.federation import followers

    events.configure("text")
    config = config_mod.load(site)
    db = Database(config.db_path)
    ctx = services.build_context(config, db, keys.load(config.state_dir))
    actor = "https://social.example/users/alice"

    async def follow(ctx: object, activity: dict[str, object], forwarded: bool) -> None:
        if activity["id"] != "refused":
            followers.upsert(
                db,
                actor=actor,
                inbox=actor + "/inbox",
                shared_inbox=None,
                follow_id=str(activity["id"]),
                handle="@alice@social.example",
                state="accepted",
            )

    async def undo(ctx: object, activity: dict[str, object], forwarded: bool) -> None:
        followers.remove(db, actor)

    table = events.logged_handlers({"Follow": follow, "Undo": undo})
    await table["Follow"](ctx, {"id": "refused", "actor": actor}, False)
    await table["Follow"](ctx, {"id": actor + "#f", "actor": {"id": actor}}, False)
    await table["Undo"](ctx, {"id": actor + "#u", "actor": actor}, False)
    await table["Undo"](ctx, {"id": actor + "#u2", "actor": actor}, False)  # nothing to undo
    lines = [line.split(" ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines == [
        f"follow refused: {actor}",
        "follow: @alice@social.example (accepted)",
        "unfollow: @alice@social.example",
    ]
    await ctx.fetcher.aclose()
    db.close()
