"""Who may see a reply: visibility comes from the object as its origin serves it, never from
the activity that carries it.

The case that got through once: a third party sent Create{to: Public, object: "<B's
followers-only reply id>"}; the blog fetched the object and published it as a public
comment.  Every variant below sends a non-public object inside a public wrapper, by a
stranger, by a relay and by the author, and checks that no comment file appears and the
post page does not change (the owner still gets a private notification).
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge.site import build as site_mod
from tests.security.conftest import ALICE, CAROL, MALLORY, POST_SLUG, PUBLIC, InboxHarness, note

pytestmark = [pytest.mark.anyio, pytest.mark.category("audience")]

FOLLOWERS = ALICE + "/followers"
BLOG_ACTOR = "https://blog.example/ap/actor.json"


def post_page(inbox: InboxHarness) -> str:
    return (inbox.config.output_dir / "posts" / POST_SLUG / "index.html").read_text("utf-8")


def wrapper(actor: str, obj: Any, n: int = 1) -> dict[str, Any]:
    """A Create addressed to everyone, whatever its object says."""
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}/activities/wrap-{n}",
        "type": "Create",
        "actor": actor,
        "object": obj,
        "to": [PUBLIC],
        "cc": [BLOG_ACTOR],
    }


NON_PUBLIC = {
    "followers-only": {"to": [FOLLOWERS], "cc": []},
    "direct": {"to": [BLOG_ACTOR], "cc": []},
    "limited-audience": {"to": [], "cc": [], "audience": [FOLLOWERS]},
    "no-addressing": {"to": [], "cc": []},
    "public-only-in-bto": {"to": [FOLLOWERS], "cc": [], "bto": [PUBLIC], "bcc": [PUBLIC]},
    "public-as-a-name": {"to": [{"type": "Collection", "name": PUBLIC}], "cc": []},
}


async def assert_not_shown(inbox: InboxHarness, baseline: str) -> None:
    await inbox.process()
    assert inbox.comments() == {}
    site_mod.build(inbox.config)
    assert post_page(inbox) == baseline


def private_reply(inbox: InboxHarness, case: str) -> dict[str, Any]:
    obj = note(ALICE + "/notes/secret", in_reply_to=inbox.post_url, content="<p>secret</p>")
    obj.update(NON_PUBLIC[case])
    inbox.remote.serve(obj["id"], obj)  # what alice's server answers (to a signed fetch)
    return obj


@pytest.mark.parametrize("case", sorted(NON_PUBLIC))
async def test_stranger_wraps_a_private_reply_by_reference(inbox: InboxHarness, case: str) -> None:
    baseline = post_page(inbox)
    obj = private_reply(inbox, case)
    assert (await inbox.post(wrapper(MALLORY, obj["id"]), signer=MALLORY)).status_code == 202
    await assert_not_shown(inbox, baseline)


@pytest.mark.parametrize("case", sorted(NON_PUBLIC))
async def test_stranger_embeds_a_public_copy_of_a_private_reply(
    inbox: InboxHarness, case: str
) -> None:
    """Mallory embeds the object with `to: Public` added: the copy is not trusted, the
    object is fetched from alice's server, and that one is not public."""
    baseline = post_page(inbox)
    obj = private_reply(inbox, case)
    forged = dict(obj, to=[PUBLIC], cc=[PUBLIC])
    assert (await inbox.post(wrapper(MALLORY, forged), signer=MALLORY)).status_code == 202
    await assert_not_shown(inbox, baseline)


@pytest.mark.parametrize("case", sorted(NON_PUBLIC))
async def test_author_wraps_own_private_reply_in_a_public_create(
    inbox: InboxHarness, case: str
) -> None:
    baseline = post_page(inbox)
    obj = private_reply(inbox, case)
    assert (await inbox.post(wrapper(ALICE, obj))).status_code == 202
    await assert_not_shown(inbox, baseline)
    rows = inbox.db.query("SELECT id FROM notifications")
    assert len(rows) == 1  # the owner still sees it, privately


@pytest.mark.parametrize("case", sorted(NON_PUBLIC))
async def test_relay_forwards_authors_create_of_a_private_reply(
    inbox: InboxHarness, case: str
) -> None:
    """The author's own Create, forwarded (signed by another server): still not shown."""
    baseline = post_page(inbox)
    obj = private_reply(inbox, case)
    r = await inbox.post(wrapper(ALICE, obj), signer=CAROL)
    assert r.status_code == 202
    await assert_not_shown(inbox, baseline)


async def test_edit_that_makes_a_comment_private_takes_it_off_the_site(
    inbox: InboxHarness,
) -> None:
    obj = note(ALICE + "/notes/1", in_reply_to=inbox.post_url, content="<p>hello all</p>")
    inbox.remote.serve(obj["id"], obj)
    assert (await inbox.post(wrapper(ALICE, obj))).status_code == 202
    await inbox.process()
    assert len(inbox.comments()) == 1
    hidden = dict(obj, to=[FOLLOWERS], cc=[], content="<p>now for followers</p>")
    inbox.remote.serve(obj["id"], hidden)
    update = {
        "id": ALICE + "/activities/update-1",
        "type": "Update",
        "actor": ALICE,
        "object": hidden,
        "to": [PUBLIC],
    }
    assert (await inbox.post(update)).status_code == 202
    await inbox.process()
    assert inbox.comments() == {}
    site_mod.build(inbox.config)
    assert "now for followers" not in post_page(inbox)
    assert "hello all" not in post_page(inbox)


@pytest.mark.parametrize(
    "addressing",
    [
        {"to": [PUBLIC]},
        {"to": [FOLLOWERS], "cc": [PUBLIC]},  # unlisted
        {"to": "as:Public"},
        {"to": [{"id": "Public"}]},
    ],
    ids=["to", "unlisted-cc", "compact-string", "object-form"],
)
async def test_public_objects_are_still_shown(
    inbox: InboxHarness, addressing: dict[str, Any]
) -> None:
    """The control: the same path with a public object makes a comment."""
    obj = note(ALICE + "/notes/1", in_reply_to=inbox.post_url, to=())
    obj.pop("to")
    obj.update(addressing)
    inbox.remote.serve(obj["id"], obj)
    wrapped = wrapper(ALICE, obj)
    wrapped["to"] = []  # the wrapper says nothing: the object decides
    wrapped["cc"] = []
    assert (await inbox.post(wrapped)).status_code == 202
    await inbox.process()
    assert len(inbox.comments()) == 1
