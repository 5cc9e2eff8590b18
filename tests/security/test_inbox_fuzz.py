"""Property: whatever JSON a verified sender puts in the fields the code reads, the inbox
answers a 2xx or 4xx (never a 500), the processor never raises and finishes or retries
every row, and the store stays consistent (every comment file is a readable comment).

Activities are signed correctly (by alice, so they pass the signature check and reach
the processor); only their content is hostile.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.site.comments import from_json
from tests.security.conftest import ALICE, MALLORY, PUBLIC, InboxHarness

pytestmark = [pytest.mark.anyio, pytest.mark.category("inbox")]

TYPES = [
    "Create", "Update", "Delete", "Follow", "Undo", "Like", "Announce", "EmojiReact",
    "Dislike", "Accept", "Reject", "Move", "Add", "Note", "", "create",
]  # fmt: skip
FIELDS = [
    "id", "object", "to", "cc", "bto", "audience", "tag", "inReplyTo", "content",
    "contentMap", "attributedTo", "published", "updated", "url", "summary", "name",
    "attachment", "quote", "quoteUrl", "_misskey_quote", "actor", "type", "mediaType",
    "href", "preferredUsername", "icon", "inbox", "endpoints", "publicKey",
]  # fmt: skip

# Values that mean something to the code, mixed with junk of every JSON type.
MEANINGFUL = [
    "https://blog.example/posts/first-article/",
    "https://blog.example/ap/posts/first-article.json",
    "https://blog.example/ap/actor.json",
    ALICE,
    MALLORY,
    ALICE + "/notes/1",
    "https://other.example/notes/1",
    PUBLIC,
    "as:Public",
    "Note",
    "Person",
    "Mention",
    "javascript:alert(1)",
    "<script>alert(1)</script>",
    "\u202eevil",
    "http://[",
    "https://x:99999/",
    "",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(MEANINGFUL),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6),
    ),
    max_leaves=25,
)
objects = st.dictionaries(st.sampled_from(FIELDS), values, max_size=10)


POST = "https://blog.example/posts/first-article/"
ACTOR = "https://blog.example/ap/actor.json"


def sane_note(n: int) -> dict[str, Any]:
    return {
        "id": f"{ALICE}/notes/{n}",
        "type": "Note",
        "attributedTo": ALICE,
        "inReplyTo": POST,
        "content": "<p>hello</p>",
        "summary": "cw",
        "to": [PUBLIC],
        "cc": [ACTOR],
        "published": "2026-02-01T10:00:00Z",
        "url": f"https://remote.example/@alice/{n}",
        "tag": [{"type": "Mention", "href": ACTOR}],
        "attachment": [{"type": "Image", "url": "https://remote.example/a.png", "name": "a"}],
    }


def sane_activity(kind: str, n: int) -> dict[str, Any]:
    base: dict[str, Any] = {"id": f"{ALICE}/activities/{n}", "type": kind, "actor": ALICE}
    if kind in ("Create", "Update"):
        base["object"] = sane_note(n)
    elif kind in ("Like", "Announce", "EmojiReact", "Dislike"):
        base["object"] = POST
    elif kind == "Follow":
        base["object"] = ACTOR
    elif kind == "Undo":
        base["object"] = {
            "id": f"{ALICE}/likes/{n}",
            "type": "Like",
            "actor": ALICE,
            "object": POST,
        }
    elif kind == "Delete":
        base["object"] = f"{ALICE}/notes/{n}"
    base["to"] = [PUBLIC]
    return base


@st.composite
def corrupted(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with some fields replaced by values of any JSON type (nested docs too)."""
    out = dict(doc)
    for key in draw(st.lists(st.sampled_from(sorted(doc)), max_size=4, unique=True)):
        if key in ("actor",):
            continue  # the signer must stay the actor, so the activity reaches the handlers
        if isinstance(doc[key], dict) and draw(st.booleans()):
            out[key] = draw(corrupted(doc[key]))
        else:
            out[key] = draw(values)
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)):
        if key != "actor":
            out[key] = draw(values)
    return out


@st.composite
def activities(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(TYPES))
    n = draw(st.integers(min_value=0, max_value=3))
    activity: dict[str, Any] = draw(corrupted(sane_activity(kind, n)))
    activity["actor"] = draw(st.sampled_from([ALICE, ALICE, ALICE, {"id": ALICE}, [ALICE]]))
    return activity


UNEXPECTED = ("ProgrammingError", "InterfaceError", "RecursionError", "IndexError", "Overflow")


def check_store(h: InboxHarness) -> None:
    statuses = {row["status"] for row in h.inbox_rows()}
    assert statuses <= {"new", "done", "failed"}
    for row in h.inbox_rows():  # failures are refusals, not crashes caught by the catch-all
        assert not row["error"].startswith(UNEXPECTED), row["error"]
    for path in (h.config.content_dir / "comments").rglob("*.json"):
        comment = from_json(json.loads(path.read_text(encoding="utf-8")))
        assert comment.id and path.stem == comment.id and "/" not in comment.id
    for row in h.db.query("SELECT * FROM followers"):
        assert isinstance(row["actor"], str) and isinstance(row["follow_id"], str)
    for row in h.db.query("SELECT body FROM outgoing"):
        json.loads(row["body"])


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(activity=activities())
async def test_any_field_of_any_type_never_breaks_the_inbox(
    inbox: InboxHarness, activity: dict[str, Any]
) -> None:
    inbox.unlimited()
    r = await inbox.post(activity)
    assert r.status_code in (202, 400, 401, 413, 415), (r.status_code, r.text)
    await inbox.process()  # must not raise
    check_store(inbox)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(activity=activities(), inner=objects)
async def test_forwarded_and_embedded_objects_of_any_shape_never_break_processing(
    inbox: InboxHarness, activity: dict[str, Any], inner: dict[str, Any]
) -> None:
    """The same through the paths that fetch: objects served by the sender's own server."""
    inbox.unlimited()
    inbox.remote.serve(ALICE + "/notes/1", {"id": ALICE + "/notes/1", **inner})
    inbox.remote.serve("https://other.example/notes/1", inner)
    r = await inbox.post(activity, signer=MALLORY)  # forwarded when a Create/Update
    assert r.status_code in (202, 400, 401), (r.status_code, r.text)
    await inbox.process()
    check_store(inbox)
