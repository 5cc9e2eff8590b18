"""Who may change a comment: the actor whose id the comment file records, and no one else.

Edits, deletes and Undos used to be authorised by origin plus handle, so any account on the
author's server that showed the same handle (a second account named ``alice``, or a
document a redirect planted there) could edit or delete the author's comments.  Each
ActivityPub comment file now records its author's actor id, and only that actor may change
it.  Files written before (without ``actor_id``) keep working for their real author.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from bridge.site.comments import CommentStore, comment_id
from tests.security.conftest import ALICE, MALLORY, POST_SLUG, InboxHarness, create, note

pytestmark = [pytest.mark.anyio, pytest.mark.category("identity")]

# A second account on alice's server whose handle reads exactly like hers.
TWIN = "https://remote.example/users/alice-twin"


@pytest.fixture
def twin(inbox: InboxHarness) -> str:
    inbox.keys[TWIN] = inbox.keys[MALLORY]
    inbox.add_actor(TWIN, inbox.keys[TWIN], preferredUsername="alice", name="Alice")
    assert inbox.ctx.actors.cached(TWIN) is not None
    assert inbox.ctx.actors.cached(TWIN).handle == inbox.ctx.actors.cached(ALICE).handle  # type: ignore[union-attr]
    return TWIN


async def alices_reply(inbox: InboxHarness) -> tuple[dict[str, Any], str]:
    obj = note(ALICE + "/notes/1", in_reply_to=inbox.post_url, content="<p>mine</p>")
    inbox.remote.serve(obj["id"], obj)
    assert (await inbox.post(create(ALICE, obj))).status_code == 202
    await inbox.process()
    cid = comment_id("activitypub", obj["id"])
    assert set(inbox.comments()) == {cid}
    return obj, cid


async def test_comment_file_records_the_actor_id(inbox: InboxHarness) -> None:
    _, cid = await alices_reply(inbox)
    raw = json.loads(CommentStore(inbox.config.content_dir).path(POST_SLUG, cid).read_text())
    assert raw["actor_id"] == ALICE


async def test_same_handle_cannot_delete(inbox: InboxHarness, twin: str) -> None:
    obj, cid = await alices_reply(inbox)
    delete = {"id": twin + "/delete/1", "type": "Delete", "actor": twin, "object": obj["id"]}
    assert (await inbox.post(delete, signer=twin)).status_code == 202
    await inbox.process()
    assert cid in inbox.comments()


async def test_same_handle_cannot_edit(inbox: InboxHarness, twin: str) -> None:
    obj, cid = await alices_reply(inbox)
    forged = dict(obj, attributedTo=twin, content="<p>forged</p>")
    inbox.remote.serve(obj["id"], forged)  # even if alice's server answered so
    update = {"id": twin + "/update/1", "type": "Update", "actor": twin, "object": forged}
    assert (await inbox.post(update, signer=twin)).status_code == 202
    await inbox.process()
    assert "mine" in inbox.comments()[cid].content


async def test_same_handle_cannot_undo_a_like(inbox: InboxHarness, twin: str) -> None:
    like = {"id": ALICE + "/likes/1", "type": "Like", "actor": ALICE, "object": inbox.post_url}
    assert (await inbox.post(like)).status_code == 202
    await inbox.process()
    [cid] = inbox.comments()
    undo = {"id": twin + "/undo/1", "type": "Undo", "actor": twin, "object": like["id"]}
    assert (await inbox.post(undo, signer=twin)).status_code == 202
    await inbox.process()
    assert cid in inbox.comments()


async def test_the_author_still_edits_and_deletes(inbox: InboxHarness) -> None:
    obj, cid = await alices_reply(inbox)
    edited = dict(obj, content="<p>edited</p>", updated="2026-02-02T10:00:00Z")
    inbox.remote.serve(obj["id"], edited)
    update = {"id": ALICE + "/update/1", "type": "Update", "actor": ALICE, "object": edited}
    assert (await inbox.post(update)).status_code == 202
    await inbox.process()
    assert "edited" in inbox.comments()[cid].content
    delete = {"id": ALICE + "/delete/1", "type": "Delete", "actor": ALICE, "object": obj["id"]}
    assert (await inbox.post(delete)).status_code == 202
    await inbox.process()
    assert inbox.comments() == {}


async def test_old_file_without_actor_id_is_still_the_authors(inbox: InboxHarness) -> None:
    """A file from before actor ids were recorded: its author edits it (and the file
    learns the actor id); the twin still cannot, once the id is known."""
    obj, cid = await alices_reply(inbox)
    store = CommentStore(inbox.config.content_dir)
    store.write(POST_SLUG, dataclasses.replace(inbox.comments()[cid], actor_id=""))
    raw = json.loads(store.path(POST_SLUG, cid).read_text())
    raw.pop("actor_id")
    store.path(POST_SLUG, cid).write_text(json.dumps(raw))
    edited = dict(obj, content="<p>edited</p>")
    inbox.remote.serve(obj["id"], edited)
    update = {"id": ALICE + "/update/1", "type": "Update", "actor": ALICE, "object": edited}
    assert (await inbox.post(update)).status_code == 202
    await inbox.process()
    comment = inbox.comments()[cid]
    assert "edited" in comment.content and comment.actor_id == ALICE
