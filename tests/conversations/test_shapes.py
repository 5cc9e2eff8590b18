"""ActivityStreams values in every shape the format allows, through ``shapes`` and the hooks.

An object whose ``type`` is a list (``["Note", "Article"]``) used to raise a TypeError in
the Create handler after the inbox had answered 202, so the reply was lost.  Every field a
handler reads goes through ``bridge.conversations.shapes`` now.
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge.conversations import shapes
from tests.conversations.fediverse_harness import (
    ALICE,
    POST,
    POST_ID,
    PUBLIC,
    Harness,
    create,
    note,
)

pytestmark = pytest.mark.anyio

AS = "https://www.w3.org/ns/activitystreams#"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Note", {"Note"}),
        (["Note", "Article"], {"Note", "Article"}),
        (AS + "Note", {"Note"}),
        ("as:Note", {"Note"}),
        ([AS + "Image", None, 3, ""], {"Image"}),
        ({"type": ["Like", "EmojiReact"]}, {"Like", "EmojiReact"}),
        (None, set()),
        ({"no": "type"}, set()),
    ],
)
def test_types(value: Any, expected: set[str]) -> None:
    assert shapes.types(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.example/1", ["https://a.example/1"]),
        ({"id": "https://a.example/1"}, ["https://a.example/1"]),
        ({"type": "Link", "href": "https://a.example/1"}, ["https://a.example/1"]),
        (
            ["https://a.example/1", {"id": "https://a.example/2"}],
            ["https://a.example/1", "https://a.example/2"],
        ),
        (["https://a.example/1", "https://a.example/1"], ["https://a.example/1"]),
        ([None, 5, {"id": 7}, ""], []),
        (None, []),
    ],
)
def test_refs(value: Any, expected: list[str]) -> None:
    assert shapes.refs(value) == expected
    assert shapes.ref(value) == (expected[0] if expected else None)


def test_read_object_normalises_every_field() -> None:
    doc = {
        "id": "https://video.example/videos/1",
        "type": ["Video", "as:Document"],
        "attributedTo": [
            {"type": "Group", "id": "https://video.example/c/channel"},
            {"type": "Person", "id": "https://video.example/a/alice"},
        ],
        "inReplyTo": [{"id": POST_ID}],
        "to": PUBLIC,
        "cc": {"id": "https://video.example/a/alice/followers"},
        "tag": {"type": ["Mention"], "href": "https://blog.example/ap/actor"},
        "quoteUrl": {"type": "Link", "href": POST_ID},
    }
    obj = shapes.read_object(doc)
    assert obj is not None
    assert obj.types == {"Video", "Document"}
    assert obj.author == "https://video.example/a/alice"  # the person, not the channel
    assert obj.in_reply_to == POST_ID
    assert obj.audience == {PUBLIC, "https://video.example/a/alice/followers"}
    assert obj.mentions == {"https://blog.example/ap/actor"}
    assert obj.quotes == (POST_ID,)


@pytest.mark.parametrize("doc", [None, "https://a.example/1", [], {"type": "Note"}, {"id": 5}])
def test_read_object_needs_an_object_with_an_id(doc: Any) -> None:
    assert shapes.read_object(doc) is None


# ---- through the hooks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [
        {"type": ["Note", "Article"]},
        {"type": AS + "Note"},
        {"type": "as:Article"},
        {"attributedTo": [ALICE]},
        {"attributedTo": {"type": "Person", "id": ALICE}},
        {"inReplyTo": {"id": POST_ID, "type": "Article"}},
        {"inReplyTo": [POST]},
        {"to": PUBLIC},
        {"to": [{"id": PUBLIC}]},
        {"to": [], "cc": PUBLIC},
        {"tag": {"type": "Hashtag", "name": "#x", "href": "https://social.example/tags/x"}},
        {"attachment": {"type": ["Image"], "url": "https://social.example/m/1.png"}},
    ],
    ids=lambda shape: "-".join(f"{k}:{type(v).__name__}" for k, v in shape.items()),
)
async def test_every_shape_of_a_reply_becomes_a_comment(h: Harness, shape: dict[str, Any]) -> None:
    obj = note("https://social.example/users/alice/statuses/1", **shape)
    await h.send(create(obj))
    comment = h.comment(obj["id"])
    assert comment is not None and comment.type == "reply"
    assert comment.target == POST


@pytest.mark.parametrize("kind", ["Image", "Video", "Audio", "Document", "Event"])
async def test_media_replies_become_comments_with_their_media_as_links(
    h: Harness, kind: str
) -> None:
    obj = note(
        f"https://social.example/users/alice/{kind.lower()}/1",
        content="",
        name=f"My {kind.lower()}",
        url=[
            {
                "type": "Link",
                "mediaType": "text/html",
                "href": f"https://social.example/@alice/{kind}",
            },
            {
                "type": "Link",
                "mediaType": "application/octet-stream",
                "href": f"https://cdn.example/{kind}.bin",
            },
        ],
        startTime="2026-05-01T18:00:00Z",
    )
    obj["type"] = kind
    await h.send(create(obj))
    comment = h.comment(obj["id"])
    assert comment is not None and comment.type == "reply"
    assert comment.source == f"https://social.example/@alice/{kind}"  # the HTML page
    assert f"My {kind.lower()}" in comment.content
    assert f'href="https://cdn.example/{kind}.bin"' in comment.content
    assert ("Starts 2026-05-01T18:00:00Z" in comment.content) == (kind == "Event")
    page = h.build()
    assert f"https://cdn.example/{kind}.bin" in page
    assert "<img" not in comment.content and "<video" not in comment.content


async def test_like_and_undo_with_list_types(h: Harness) -> None:
    like = {
        "id": ALICE + "/likes/1",
        "type": "Like",
        "actor": ALICE,
        "object": [POST_ID],
    }
    await h.send(like)
    assert [c.type for c in h.comments().values()] == ["like"]
    undo = {
        "id": ALICE + "/undo/1",
        "type": "Undo",
        "actor": ALICE,
        "object": dict(like, type=["Like", "EmojiReact"], object={"id": POST_ID}),
    }
    await h.send(undo)
    assert h.comments() == {}
