"""Custom emoji in comments (``bridge.conversations.emoji``): the ``Emoji`` tags of real
Mastodon, Misskey, GoToSocial and Pleroma payloads, shortcodes replaced in text only, images
stored by content hash under the site's ``static/emoji/`` and shown by the theme."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.conversations import emoji
from bridge.site.sanitize import sanitize_html
from tests.conversations.fediverse_harness import (
    ALICE,
    FIXTURES,
    POST_ID,
    Body,
    Harness,
    Remote,
    create,
    note,
)

pytestmark = pytest.mark.anyio


def png(width: int = 1, height: int = 1, pad: int = 0) -> bytes:
    """A real PNG (grey pixels), padded with a text chunk to a wanted size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    text = chunk(b"tEXt", b"pad\x00" + b"x" * pad) if pad else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + text
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>'


def fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return doc


class Images(Remote):
    """The mock fediverse plus binary files (emoji images) by URL."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, tuple[int, bytes, dict[str, str]]] = {}

    def file(self, url: str, data: bytes, status: int = 200, **headers: str) -> None:
        self.files[url] = (status, data, {"Content-Type": "image/png", **headers})

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url not in self.files:
            return super().handler(request)
        self.requests.append(url)
        status, data, headers = self.files[url]
        return httpx.Response(status, headers=headers, stream=Body(data))


@pytest.fixture
def emoji_harness(harness_factory: Callable[..., Harness]) -> tuple[Harness, Images]:
    remote = Images()
    return harness_factory(remote), remote


def emoji_tag(name: str, url: str, media: str = "image/png") -> dict[str, Any]:
    return {
        "id": f"https://social.example/emojis/{name}",
        "type": "Emoji",
        "name": f":{name}:",
        "updated": "2024-01-01T00:00:00Z",
        "icon": {"type": "Image", "mediaType": media, "url": url},
    }


# ---- the tags as real servers send them ------------------------------------------------------


def test_tags_of_real_payloads() -> None:
    mastodon = fixture("mastodon--create--note-hashtags-emoji.json")["object"]
    assert emoji.emoji_tags(mastodon) == {
        "party_parrot": "https://ondergrond.org/system/custom_emojis/images/000/002/390/original/ef133aac7ab23341.gif",
        "amaze": "https://ondergrond.org/system/custom_emojis/images/000/002/395/original/2c7d9345e57367ed.png",
        "blobsunglasses": "https://ondergrond.org/system/custom_emojis/images/000/000/764/original/3f8eef9de773c90d.png",
    }
    misskey = fixture("misskey--note--custom-emoji.json")
    assert list(emoji.emoji_tags(misskey)) == ["oyasumi"]
    gotosocial = fixture("gotosocial--note--hashtag-emoji-attachment-alt.json")
    assert list(emoji.emoji_tags(gotosocial)) == ["rainbow"]
    # Pleroma/Akkoma: no mediaType on the icon; still an emoji.
    pleroma = fixture("pleroma--person--actor.json")
    assert set(emoji.emoji_tags(pleroma)) == {"anarchy", "bzh", "gentoo"}


def test_the_text_uses_only_tagged_shortcodes_in_order() -> None:
    content = "<p>:b: then :a: and :b: again, :unknown: stays</p>"
    assert emoji.used_shortcodes(content, {"a", "b", "c"}) == ["b", "a"]


@pytest.mark.parametrize(
    ("data", "ext"),
    [(png(), "png"), (GIF, "gif"), (WEBP, "webp"), (JPEG, "jpg"), (SVG, None), (b"", None),
     (b"<?xml version='1.0'?><svg/>", None), (b"RIFF\x00\x00\x00\x00WAVE", None)],
)  # fmt: skip
def test_the_type_comes_from_the_magic_bytes(data: bytes, ext: str | None) -> None:
    assert emoji.sniff(data) == ext


# ---- replacing shortcodes --------------------------------------------------------------------

NAME = "a" * 64 + ".png"
IMG = f'<img class="emoji" src="/static/emoji/{NAME}" alt=":blob:" title=":blob:">'


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("<p>hi :blob:!</p>", f"<p>hi {IMG}!</p>"),
        ("<p>:blob::blob:</p>", f"<p>{IMG}{IMG}</p>"),
        # Misskey wraps shortcodes in zero-width spaces.
        ("<p>\u200b:blob:\u200b</p>", f"<p>\u200b{IMG}\u200b</p>"),
        # Touching a letter or digit: not a shortcode (Mastodon's SCAN_RE).
        ("<p>x:blob: :blob:2</p>", "<p>x:blob: :blob:2</p>"),
        # Never inside a tag or its attributes; link text is text.
        (
            '<p><a href="https://s.example/:blob:" rel="nofollow">:blob:</a></p>',
            f'<p><a href="https://s.example/:blob:" rel="nofollow">{IMG}</a></p>',
        ),
        # Code shows what was written.
        ("<p><code>:blob:</code> :blob:</p>", f"<p><code>:blob:</code> {IMG}</p>"),
        ("<pre><code>:blob:</code></pre>", "<pre><code>:blob:</code></pre>"),
        ("<p>:other: :blob</p>", "<p>:other: :blob</p>"),
    ],
)
def test_shortcodes_are_replaced_in_text_only(content: str, expected: str) -> None:
    assert emoji.replace_shortcodes(content, {"blob": NAME}) == expected


def test_what_is_produced_survives_render_time_sanitising() -> None:
    html = emoji.replace_shortcodes("<p>hi :blob:</p>", {"blob": NAME})
    assert sanitize_html(html, limit=None, emoji=True) == html
    # Ingestion allows no image at all: only the emoji step adds them.
    assert sanitize_html(html) == "<p>hi </p>".strip()


# ---- storing ---------------------------------------------------------------------------------


def test_images_are_stored_once_by_content_hash(tmp_path: Path) -> None:
    data = png()
    name = emoji.store_image(tmp_path, data)
    assert name == hashlib.sha256(data).hexdigest() + ".png"
    assert (tmp_path / name).read_bytes() == data
    assert emoji.store_image(tmp_path, data) == name
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left


def test_a_full_folder_stores_no_more(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emoji, "MAX_STORED_BYTES", len(png()) + 10)
    assert emoji.store_image(tmp_path, png()) is not None
    assert emoji.store_image(tmp_path, png(2, 2)) is None
    assert emoji.store_image(tmp_path, png()) is not None  # already there: no new bytes


# ---- a reply with custom emoji, end to end through the conversation hooks ---------------------


def mastodon_reply(remote: Images) -> dict[str, Any]:
    """Mastodon's note with three custom emoji (GoToSocial's capture), as a reply to our post
    by Alice: same content and tags."""
    original = fixture("mastodon--create--note-hashtags-emoji.json")["object"]
    obj = note(
        "https://social.example/users/alice/statuses/1",
        content=original["content"],
        in_reply_to=POST_ID,
        tag=original["tag"],
    )
    images = {"party_parrot": GIF, "amaze": png(), "blobsunglasses": png(2, 1)}
    for name, url in emoji.emoji_tags(original).items():
        remote.file(url, images[name], **{"Content-Type": "image/" + url.rsplit(".", 1)[1]})
    return obj


async def test_a_reply_shows_its_emoji_from_local_files(
    emoji_harness: tuple[Harness, Images],
) -> None:
    h, remote = emoji_harness
    obj = mastodon_reply(remote)
    await h.send(create(obj))
    comment = h.comment(obj["id"])
    assert comment is not None
    stored = h.site / "static" / "emoji"
    names = {
        code: hashlib.sha256(data).hexdigest() + "." + ext
        for code, data, ext in (
            ("party_parrot", GIF, "gif"),
            ("amaze", png(), "png"),
            ("blobsunglasses", png(2, 1), "png"),
        )
    }
    assert sorted(p.name for p in stored.iterdir()) == sorted(names.values())
    for code, name in names.items():
        tag = f'<img class="emoji" src="/static/emoji/{name}" alt=":{code}:" title=":{code}:">'
        assert tag in comment.content
    assert ":amaze:" not in comment.content.replace('":amaze:"', "")

    page = h.build()
    for code, name in names.items():
        assert f'src="/static/emoji/{name}" alt=":{code}:"' in page
        served = h.ctx.config.output_dir / "static" / "emoji" / name
        assert served.read_bytes() == (stored / name).read_bytes()
    assert "ondergrond.org/system" not in page  # never hotlinked


async def test_a_failed_fetch_leaves_the_shortcode_as_text(
    emoji_harness: tuple[Harness, Images],
) -> None:
    h, remote = emoji_harness
    obj = note(
        "https://social.example/users/alice/statuses/2",
        content="<p>:gone: and :fine:</p>",
        tag=[
            emoji_tag("gone", "https://social.example/emoji/gone.png"),
            emoji_tag("fine", "https://social.example/emoji/fine.png"),
        ],
    )
    remote.file("https://social.example/emoji/gone.png", b"not found", status=404)
    remote.file("https://social.example/emoji/fine.png", png())
    await h.send(create(obj))
    comment = h.comment(obj["id"])
    assert comment is not None
    assert comment.content.startswith('<p>:gone: and <img class="emoji"')


async def test_an_edit_keeps_the_same_images(emoji_harness: tuple[Harness, Images]) -> None:
    h, remote = emoji_harness
    obj = note(
        "https://social.example/users/alice/statuses/3",
        content="<p>:fine:</p>",
        tag=[emoji_tag("fine", "https://social.example/emoji/fine.png")],
    )
    remote.file("https://social.example/emoji/fine.png", png())
    await h.send(create(obj))
    first = h.comment(obj["id"])
    edited = {**obj, "content": "<p>:fine: edited</p>", "updated": "2026-02-01T11:00:00Z"}
    await h.send({"id": obj["id"] + "#u", "type": "Update", "actor": ALICE, "object": edited})
    second = h.comment(obj["id"])
    assert first is not None and second is not None
    assert second.content == first.content.replace("</p>", " edited</p>")
    # The edit used the stored image again instead of fetching it once more.
    assert remote.requests.count("https://social.example/emoji/fine.png") == 1


def test_an_earlier_version_names_its_stored_images(tmp_path: Path) -> None:
    name = emoji.store_image(tmp_path, png())
    assert name is not None
    content = emoji.replace_shortcodes("<p>:a: :b:</p>", {"a": name, "b": "f" * 64 + ".png"})
    assert emoji.stored_in(content, tmp_path) == {"a": name}  # b's file is not stored
    assert emoji.stored_in("<p>:a:</p>", tmp_path) == {}


async def test_a_disk_that_refuses_the_file_costs_the_image_not_the_comment(
    emoji_harness: tuple[Harness, Images], monkeypatch: pytest.MonkeyPatch
) -> None:
    h, remote = emoji_harness

    def refuse(folder: Path, data: bytes) -> str | None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(emoji, "store_image", refuse)
    obj = note(
        "https://social.example/users/alice/statuses/4",
        content="<p>:fine: still here</p>",
        tag=[emoji_tag("fine", "https://social.example/emoji/fine.png")],
    )
    remote.file("https://social.example/emoji/fine.png", png())
    await h.send(create(obj))
    comment = h.comment(obj["id"])
    assert comment is not None and comment.content == "<p>:fine: still here</p>"
