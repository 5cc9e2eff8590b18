"""``indiebridge move``: the target must list the blog in alsoKnownAs; the actor and every
page then say where the blog went; ``--undo`` takes both back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge import keys
from bridge.db import Database
from bridge.errors import PublishError
from bridge.federation import followers, moving
from bridge.federation.context import Context, make_context
from bridge.site import build as site_mod
from bridge.site import proofs
from tests.webserver import WebServer, web_fixture  # noqa: F401 - `web` fixture

pytestmark = pytest.mark.anyio
TARGET_PATH = "/users/me"
OUR_ACTOR = "https://blog.example/ap/actor.json"  # the test site's actor


def target_doc(actor_id: str, also_known_as: list[str]) -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": actor_id,
        "type": "Person",
        "preferredUsername": "me",
        "inbox": actor_id + "/inbox",
        "url": actor_id.removesuffix("/users/me") + "/@me",
        "alsoKnownAs": also_known_as,
    }


@pytest.fixture
async def moving_site(
    make_site: Callable[..., Path], web: WebServer
) -> AsyncIterator[Callable[[list[str]], Context]]:
    """A site with one follower, and the target account served on loopback."""
    made: list[Context] = []

    def make(also_known_as: list[str]) -> Context:
        folder = make_site({"allow_private_addresses": True})
        config = config_mod.load(folder)
        body = json.dumps(target_doc(web.url(TARGET_PATH), also_known_as))
        web.route(TARGET_PATH, body=body, content_type="application/activity+json")
        ctx = make_context(config, Database(config.db_path), keys.load(config.state_dir))
        followers.upsert(
            ctx.db,
            actor="https://peer.example/users/alice",
            inbox="https://peer.example/users/alice/inbox",
            shared_inbox="https://peer.example/inbox",
            follow_id="https://peer.example/follows/1",
            handle="@alice@peer.example",
            state="accepted",
        )
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        await ctx.fetcher.aclose()


async def test_move_is_refused_unless_the_target_lists_the_blog(
    moving_site: Callable[[list[str]], Context], web: WebServer
) -> None:
    ctx = moving_site(["https://someone-else.example/users/x"])
    target = web.url(TARGET_PATH)
    with pytest.raises(PublishError) as caught:
        await moving.move(ctx, target)
    message = str(caught.value)
    assert "\n" not in message and target in message and ctx.config.actor_id in message
    assert ctx.db.query("SELECT * FROM outgoing") == []
    assert not ctx.db.get_meta("moved_to")


async def test_move_queues_a_signed_move_and_the_site_says_so(
    moving_site: Callable[[list[str]], Context], web: WebServer
) -> None:
    ctx = moving_site([OUR_ACTOR])
    target = web.url(TARGET_PATH)
    assert await moving.move(ctx, target) == 1
    [row] = ctx.db.query("SELECT body FROM outgoing")
    activity = json.loads(row["body"])
    assert activity["type"] == "Move" and activity["target"] == target
    assert activity["object"] == activity["actor"] == ctx.config.actor_id
    proofs.verify_object(activity, ctx.keys.ed25519.public_key())

    site_mod.build(ctx.config)
    out = ctx.config.output_dir
    assert json.loads((out / "ap/actor.json").read_text())["movedTo"] == target
    home = (out / "index.html").read_text()
    profile, handle = web.url("/@me"), f"@me@127.0.0.1:{web.port}"
    assert f'This blog has moved to <a href="{profile}">{handle}</a>' in home

    # A second move (to the same account) gets its own id: nothing is silently dropped.
    await moving.move(ctx, target)
    ids = [r["id"] for r in ctx.db.query("SELECT id FROM outgoing WHERE type = 'Move'")]
    assert len(set(ids)) == 2


def test_move_undo_command_forgets_the_move(make_site: Callable[..., Path]) -> None:
    folder = make_site()
    config = config_mod.load(folder)
    db = Database(config.db_path)
    target = "https://new.example/users/me"
    moving.record(db, {"id": target, "url": target, "handle": "@me@new.example"})
    runner = CliRunner()
    assert runner.invoke(_main(), ["build", "--site", str(folder)]).exit_code == 0
    assert json.loads((config.output_dir / "ap/actor.json").read_text())["movedTo"] == target

    result = runner.invoke(_main(), ["move", "--undo", "--site", str(folder)])
    assert result.exit_code == 0, result.output
    assert "Move forgotten" in result.output
    assert "movedTo" not in json.loads((config.output_dir / "ap/actor.json").read_text())
    assert "has moved" not in (config.output_dir / "index.html").read_text()
    wrong = runner.invoke(_main(), ["move", "--site", str(folder)])
    assert wrong.exit_code != 0 and "NEW_ACCOUNT or --undo" in wrong.output


def _main() -> Any:
    from bridge.cli import main

    return main
