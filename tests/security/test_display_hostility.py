"""Display spoofing: a commenter must not pass for someone else through its name or handle.

The case that got through once: a ``preferredUsername`` padded with U+2800 (BRAILLE PATTERN
BLANK) then cut at 100 characters hid the real host, so the commenter displayed as the
blog's own owner.  Names and handles are normalised (``bridge.conversations.names``): no
invisible, blank or bidi control characters, and the handle always ends with the real host
of the actor id.
"""

from __future__ import annotations

import unicodedata

import pytest

from bridge.conversations.names import MAX_NAME, display_name, handle_of
from bridge.site import build as site_mod
from tests.security.conftest import ALICE, POST_SLUG, InboxHarness, create, note

pytestmark = [pytest.mark.anyio, pytest.mark.category("display")]

PADDING = {
    "braille-blank": "\u2800",
    "zero-width-space": "\u200b",
    "zero-width-joiner-run": "\u200d",
    "zero-width-non-joiner-run": "\u200c",
    "word-joiner": "\u2060",
    "invisible-times": "\u2062",
    "bom": "\ufeff",
    "soft-hyphen": "\u00ad",
    "hangul-filler": "\u3164",
    "hangul-choseong-filler": "\u115f",
    "hangul-jungseong-filler": "\u1160",
    "halfwidth-hangul-filler": "\uffa0",
    "mongolian-vowel-separator": "\u180e",
    "combining-grapheme-joiner": "\u034f",
    "variation-selector-16-run": "\ufe0f",
    "variation-selector-1": "\ufe00",
    "tag-space": "\U000e0020",
    "khmer-inherent-vowel": "\u17b4",
    "rtl-override": "\u202e",
    "rtl-isolate": "\u2067",
    "arabic-letter-mark": "\u061c",
    "lrm": "\u200e",
    "nbsp": "\u00a0",
    "em-space": "\u2003",
    "ideographic-space": "\u3000",
    "line-separator": "\u2028",
    "private-use": "\ue000",
    "nul": "\u0000",
    "escape": "\u001b",
}
INVISIBLE = {ch for ch in PADDING.values() if not ch.isspace()} - {"\u0000", "\u001b"}


def visible_only(text: str) -> bool:
    """No character of the padding list, and no control, format or private-use character;
    a ZWJ/ZWNJ/VS16 only right after a visible character."""
    for i, ch in enumerate(text):
        if ch in ("\u200d", "\u200c", "\ufe0f"):
            if i == 0 or text[i - 1] in ("\u200d", "\u200c", "\ufe0f") or text[i - 1].isspace():
                return False
            continue
        if ch in INVISIBLE or unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Cn"):
            return False
    return True


@pytest.mark.parametrize("case", sorted(PADDING))
def test_padding_is_dropped_from_names(case: str) -> None:
    pad = PADDING[case]
    name = display_name("Blog" + pad * 3 + " Owner" + pad * 500 + "!")
    assert visible_only(name) and len(name) <= MAX_NAME
    # What is left of the padding is at most one space or one joiner between letters.
    letters = "".join(ch for ch in name if not ch.isspace() and ch not in "\u200c\u200d\ufe0f")
    assert letters == "BlogOwner!"
    assert len(name) <= len("Blog Owner!") + 2


@pytest.mark.parametrize("case", sorted(PADDING))
def test_padding_never_hides_the_host_of_a_handle(case: str) -> None:
    handle = handle_of(
        "https://remote.example/users/x", "owner" + PADDING[case] * 500 + "@blog.example"
    )
    assert handle.endswith("@remote.example")
    assert handle.count("@") == 2 and visible_only(handle)


def test_real_host_is_shown_idna_encoded_with_its_port() -> None:
    assert handle_of("https://bücher.example/u/x", "x") == "@x@xn--bcher-kva.example"
    assert handle_of("https://remote.example:8443/u/x", "x") == "@x@remote.example:8443"
    assert handle_of("https://remote.example:443/u/x", "x") == "@x@remote.example"
    long = handle_of("https://remote.example/u/x", "a" * 1000)
    assert long.endswith("…@remote.example") and len(long) < 100


def test_emoji_sequences_and_joining_scripts_keep_their_joiners() -> None:
    assert display_name("👩\u200d💻 Ada") == "👩\u200d💻 Ada"
    assert display_name("❤\ufe0f") == "❤\ufe0f"
    assert display_name("می\u200cخواهم") == "می\u200cخواهم"
    assert display_name("a\u200d\u200d\u200db") == "a\u200db"


@pytest.mark.parametrize(
    "case", ["braille-blank", "zero-width-space", "hangul-filler", "rtl-override"]
)
async def test_padded_actor_shows_its_real_host_on_the_page(inbox: InboxHarness, case: str) -> None:
    pad = PADDING[case]
    inbox.add_actor(
        ALICE,
        inbox.keys[ALICE],
        name="Blog Owner" + pad * 300,
        preferredUsername="owner" + pad * 300 + "@blog.example",
    )
    obj = note(ALICE + "/notes/1", in_reply_to=inbox.post_url)
    assert (await inbox.post(create(ALICE, obj))).status_code == 202
    await inbox.process()
    [comment] = inbox.comments().values()
    assert comment.author.name == "Blog Owner"
    assert comment.author.handle == "@ownerblog.example@remote.example"  # "@" is not a name
    site_mod.build(inbox.config)
    page = (inbox.config.output_dir / "posts" / POST_SLUG / "index.html").read_text("utf-8")
    assert comment.author.handle in page and pad not in page


async def test_blank_only_name_falls_back_to_the_handle(inbox: InboxHarness) -> None:
    inbox.add_actor(ALICE, inbox.keys[ALICE], name="\u2800\u200b\u3164", preferredUsername="alice")
    obj = note(ALICE + "/notes/1", in_reply_to=inbox.post_url)
    assert (await inbox.post(create(ALICE, obj))).status_code == 202
    await inbox.process()
    [comment] = inbox.comments().values()
    assert comment.author.name == "@alice@remote.example"
