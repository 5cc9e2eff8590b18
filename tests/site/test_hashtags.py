"""Tags federate as hashtag names Mastodon accepts, linked to the site's tag page."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import config as config_mod
from bridge.errors import ContentError
from bridge.site import activities, content
from bridge.site.hashtags import hashtag_name
from bridge.site.posts import tag_slug

# Mastodon's HASHTAG_NAME_PAT (app/models/tag/naming.rb, Tag::Naming), with [[:word:]] as
# Python's \w and [[:alpha:]] as a letter: a federated Hashtag name must match it to be kept.
SEPARATORS = "_\u00b7\u30fb\u200c"
MASTODON_HASHTAG = re.compile(
    rf"(?:\w[\w{SEPARATORS}]*(?:[^\W\d_]|[{SEPARATORS}])[\w{SEPARATORS}]*\w)"
    r"|(?:\w*[^\W\d_]\w*)"
)


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        ("Interop Test", "InteropTest"),
        ("C++", "C"),
        ("python", "python"),
        ("#python", "python"),
        ("snake_case", "snake_case"),
        ("l·l", "l·l"),
        ("日本語", "日本語"),
        ("Ĉu ne?", "ĈuNe"),
        ("IPv6", "IPv6"),
        ("x²", "x2"),
    ],
)
def test_hashtag_names(tag: str, name: str) -> None:
    assert hashtag_name(tag) == name
    assert MASTODON_HASHTAG.fullmatch(name)


@pytest.mark.parametrize("tag", ["2026", "+++", "·", "42 ++ 7", ""])
def test_tags_without_a_letter_have_no_name(tag: str) -> None:
    assert hashtag_name(tag) is None


def _squash(text: str) -> str:
    return re.sub(r"[-_·]", "", text)


@given(
    st.text(
        st.sampled_from("abcXYZ019 _-+.#·éßĈ日本"),
        min_size=1,
        max_size=20,
    )
)
def test_name_corresponds_to_the_tag_page(tag: str) -> None:
    """Casefolded, the name is the tag slug without its separators; and Mastodon keeps it."""
    name = hashtag_name(tag)
    if name is None:
        assert not any(ch.isalpha() for ch in tag)
        return
    assert MASTODON_HASHTAG.fullmatch(name), name
    assert _squash(name.casefold()) == _squash(tag_slug(tag))


def test_a_tag_without_a_valid_name_is_one_line_naming_file_and_tag(
    make_site: Callable[..., Path],
) -> None:
    folder = make_site()
    post = folder / "content" / "posts" / "year.md"
    post.write_text("---\ntitle: Year\ndate: 2026-03-01\ntags: [review, '2026']\n---\nHi.\n")
    with pytest.raises(ContentError) as caught:
        content.load(config_mod.load(folder))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("content/posts/year.md:4:")
    assert "'2026'" in message


def test_hashtag_objects_link_the_tag_page(make_site: Callable[..., Path]) -> None:
    folder = make_site()
    post = folder / "content" / "posts" / "tagged.md"
    post.write_text("---\ntitle: Tagged\ndate: 2026-03-01\ntags: [Interop Test, C++]\n---\nHi.\n")
    config = config_mod.load(folder)
    posts, _ = content.load(config)
    [tagged] = [p for p in posts if p.slug == "tagged"]
    obj = activities.post_object(config, tagged)
    assert obj["tag"] == [
        {
            "type": "Hashtag",
            "name": "#InteropTest",
            "href": f"{config.base_url}/tags/interop-test/",
        },
        {"type": "Hashtag", "name": "#C", "href": f"{config.base_url}/tags/c/"},
    ]
