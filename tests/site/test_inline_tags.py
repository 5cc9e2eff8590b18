"""Inline ``#word`` hashtags: found in a post's text outside code and links, linked to the
tag page, listed there and federated as ``Hashtag`` objects; a setting turns them off."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import markdown
import pytest

from bridge import config as config_mod
from bridge.config import SiteConfig
from bridge.errors import ConfigError
from bridge.site import activities, content, inline_tags
from bridge.site.build import BuildResult
from bridge.site.inline_tags import link_hashtags
from bridge.site.markdown_render import MD_EXTENSIONS
from bridge.site.posts import Post

BASE = "https://blog.example"


def _url(name: str) -> str:
    return f"{BASE}/tags/{name.casefold()}/"


def _md(text: str) -> str:
    """Markdown rendered as posts are, so the cases see what the finder sees in a build."""
    return markdown.markdown(text, extensions=MD_EXTENSIONS, output_format="html")


def _tags(text: str) -> tuple[str, ...]:
    return link_hashtags(_md(text), _url).tags


def test_a_hashtag_becomes_a_link_shaped_as_mastodon_renders_one() -> None:
    found = link_hashtags("<p>Hello #fediverse!</p>", _url)
    assert found.tags == ("fediverse",)
    assert found.html == (
        f'<p>Hello <a href="{BASE}/tags/fediverse/" class="mention hashtag" rel="tag">'
        "#fediverse</a>!</p>"
    )


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("I write #python and #IndieWeb.", ("python", "IndieWeb")),
        ("See (#inParens), #comma, #colon: #end", ("inParens", "comma", "colon", "end")),
        ('She said "#quoted" and #Python\'s rules.', ("quoted", "Python")),
        ("Say #Python then #python again", ("Python",)),  # one tag, first spelling
        (
            "Unicode: #日本語 #ĈuNe #café #snake_case #mid·dot",
            ("日本語", "ĈuNe", "café", "snake_case", "mid·dot"),
        ),
        ("We came #1st, not #2026 nor #123", ("1st",)),  # a name needs a letter
        ("Some *#emphasised* and **#strong**", ("emphasised", "strong")),
        ("a line\n\\#escaped at a line start", ("escaped",)),
    ],
)
def test_hashtags_in_text(text: str, tags: tuple[str, ...]) -> None:
    assert _tags(text) == tags


@pytest.mark.parametrize(
    "text",
    [
        "# A heading\n\nbody",
        "## Second level heading",
        "#heading without a space is a heading in Python-Markdown",
        "`#inline_code` here",
        "```\n#fenced code\n```",
        "    #indented code block",
        "[#linked text](https://example.org/)",
        "<https://example.org/page#fragment>",
        "a bare URL https://example.org/page#fragment and /#/route and ?q=1#frag",
        "a raw <kbd>#key</kbd> and <pre>#pre</pre>",
        "entities &#123; &#x41; and a tag&#35;",
        "word#glued, x=#eq, (x)#paren",
        "#C++ and #node.js and #foo-bar and #C# and #a/b",
        "##double",
        "<!-- #comment -->",
        '<span title="x > #attr">text</span>',
    ],
)
def test_not_hashtags(text: str) -> None:
    found = link_hashtags(_md(text), _url)
    assert found.tags == ()
    assert "hashtag" not in found.html


def test_text_after_a_closed_link_or_code_is_scanned_again() -> None:
    html = _md("[a #link](https://example.org/) then `#code` then #after")
    assert link_hashtags(html, _url).tags == ("after",)


def test_html_without_hashtags_is_unchanged() -> None:
    html = _md("Plain &amp; simple, *quoted* “text” with &#123; and `#code`.\n\n# Heading")
    assert link_hashtags(html, _url).html == html


def _post(folder: Path, body: str, tags: str = "[python]") -> None:
    (folder / "content/posts/inline.md").write_text(
        f"---\ntitle: Inline\ndate: 2026-03-01\ntags: {tags}\n---\n{body}\n", encoding="utf-8"
    )


def test_build_lists_the_post_on_the_tag_page_and_federates_the_hashtag(
    make_site: Callable[..., Path], build_site: Callable[..., BuildResult]
) -> None:
    folder = make_site()
    _post(folder, "About #Interop, #Python and `#notatag`.")
    config = config_mod.load(folder)
    out = build_site(folder).out_dir

    page = (out / "tags/interop/index.html").read_text(encoding="utf-8")
    assert f'href="{BASE}/posts/inline/"' in page
    post_html = (out / "posts/inline/index.html").read_text(encoding="utf-8")
    assert f'<a href="{BASE}/tags/interop/" class="mention hashtag" rel="tag">' in post_html
    assert "<code>#notatag</code>" in post_html
    assert not (out / "tags/notatag").exists()

    posts, _ = content.load(config)
    [post] = [p for p in posts if p.slug == "inline"]
    assert post.tags == ("python", "Interop")  # #Python is the front matter's tag page
    obj = activities.post_object(config, post)
    hashtags = [t for t in obj["tag"] if t["type"] == "Hashtag"]
    assert hashtags == [
        {"type": "Hashtag", "name": "#python", "href": f"{BASE}/tags/python/"},
        {"type": "Hashtag", "name": "#Interop", "href": f"{BASE}/tags/interop/"},
    ]
    assert f'href="{BASE}/tags/interop/"' in obj["content"]


def test_the_setting_turns_inline_hashtags_off(
    make_site: Callable[..., Path], build_site: Callable[..., BuildResult]
) -> None:
    folder = make_site({"inline_hashtags": False})
    _post(folder, "About #Interop.")
    config = config_mod.load(folder)
    assert config.inline_hashtags is False
    out = build_site(folder).out_dir
    assert not (out / "tags/interop").exists()
    assert "About #Interop." in (out / "posts/inline/index.html").read_text(encoding="utf-8")
    posts, _ = content.load(config)
    [post] = [p for p in posts if p.slug == "inline"]
    assert post.tags == ("python",)
    names = [t["name"] for t in activities.post_object(config, post)["tag"]]
    assert names == ["#python"]


def test_the_setting_must_be_a_boolean(make_site: Callable[..., Path]) -> None:
    folder = make_site({"inline_hashtags": "no"})
    with pytest.raises(ConfigError, match=r"key 'inline_hashtags' must be true or"):
        config_mod.load(folder)


def test_a_cached_rebuild_keeps_the_inline_tags(
    make_site: Callable[..., Path], build_site: Callable[..., BuildResult]
) -> None:
    """The parse cache holds what Markdown made; the hashtags are found on every load."""
    folder = make_site()
    _post(folder, "About #Interop.")
    config = config_mod.load(folder)
    first, _ = content.load(config)
    again, _ = content.load(config)
    tags = [p.tags for p in first if p.slug == "inline"]
    assert tags == [p.tags for p in again if p.slug == "inline"] == [("python", "Interop")]
    [post] = [p for p in again if p.slug == "inline"]
    assert len(re.findall("mention hashtag", post.html)) == 1


def test_turning_the_setting_off_rebuilds_what_it_made(
    make_site: Callable[..., Path], build_site: Callable[..., BuildResult]
) -> None:
    folder = make_site()
    _post(folder, "About #Interop.")
    out = build_site(folder).out_dir
    assert (out / "tags/interop/index.html").is_file()
    toml = folder / config_mod.CONFIG_NAME
    toml.write_text("inline_hashtags = false\n" + toml.read_text(encoding="utf-8"))
    build_site(folder)
    assert not (out / "tags/interop").exists()
    assert "hashtag" not in (out / "posts/inline/index.html").read_text(encoding="utf-8")


def test_a_tag_that_never_closes_is_read_in_one_pass() -> None:
    """Raw HTML in Markdown may hold a ``<`` that never closes: no backtracking blow-up."""
    html = "<p>#first</p><a " + "b " * 50_000 + "#inside"
    assert link_hashtags(html, _url).tags == ("first", "inside")


def test_hashtags_are_found_once_and_kept_with_the_parse_cache(
    make_site: Callable[..., Path],
    build_site: Callable[..., BuildResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = make_site()
    _post(folder, "About #Interop.")
    scanned: list[str] = []
    tag_post = inline_tags.tag_post

    def counting(post: Post, config: SiteConfig) -> Post:
        scanned.append(post.slug)
        return tag_post(post, config)

    monkeypatch.setattr(inline_tags, "tag_post", counting)
    build_site(folder)
    assert "inline" in scanned
    scanned.clear()
    config = config_mod.load(folder)
    posts, _ = content.load(config)  # every post from the cache: none scanned again
    assert scanned == []
    [post] = [p for p in posts if p.slug == "inline"]
    assert post.tags == ("python", "Interop")
    assert f'href="{BASE}/tags/interop/"' in post.html
    _post(folder, "Now about #Fediverse.")  # changed: parsed and scanned again
    posts, _ = content.load(config)
    assert scanned == ["inline"]
    [post] = [p for p in posts if p.slug == "inline"]
    assert post.tags == ("python", "Fediverse")
