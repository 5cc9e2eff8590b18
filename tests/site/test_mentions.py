"""Finding ``@user@host`` in a post's HTML and linking it (``bridge.site.mentions``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mf2py
import pytest

from bridge import config as config_mod
from bridge.site import build as site_mod
from bridge.site import content, mentions

ALICE = mentions.Account(
    "@alice@social.example",
    "https://social.example/users/alice",
    "https://social.example/@alice",
    "https://social.example/users/alice/inbox",
)


@pytest.mark.parametrize(
    ("html", "found"),
    [
        ("<p>Hello @alice@social.example!</p>", ["@alice@social.example"]),
        (
            "<p>(@Alice@Social.Example) and @bob@b.example.org.</p>",
            ["@alice@social.example", "@bob@b.example.org"],
        ),
        ("<p>@alice@social.example, again @alice@social.example</p>", ["@alice@social.example"]),
        ("<p>peer @p@127.0.0.1:8080 here</p>", ["@p@127.0.0.1:8080"]),
        # e-mail addresses and URLs are not mentions
        ("<p>write to alice@social.example</p>", []),
        ("<p>see https://social.example/@alice@social.example</p>", []),
        # code spans, code blocks and existing links are left alone
        ("<p><code>@alice@social.example</code></p>", []),
        ("<pre><code>ssh @alice@social.example\n</code></pre>", []),
        ('<p><a href="https://x.example/">@alice@social.example</a></p>', []),
        ("<p><code>x</code> @alice@social.example</p>", ["@alice@social.example"]),
        # a bare @user or a host without a dot is no handle
        ("<p>@alice and @alice@intranet</p>", []),
        # an @ written as a character reference is still an @ (the text is unescaped),
        # so the quick "no @ at all" test must not skip these
        ("<p>&#64;alice@social.example</p>", ["@alice@social.example"]),
        ("<p>&#x40;alice&#x40;social.example</p>", ["@alice@social.example"]),
        ("<p>&commat;alice&commat;social.example</p>", ["@alice@social.example"]),
        ("<p>no handle here &amp; none there</p>", []),
    ],
)
def test_find_handles(html: str, found: list[str]) -> None:
    assert mentions.find_handles(html) == found


def test_markdown_code_is_skipped_after_rendering(tmp_path: Path) -> None:
    renderer = content.MarkdownRenderer(tmp_path)
    try:
        html = renderer.render(
            "Hi @alice@social.example, run `@bob@b.example`:\n\n"
            "    @carol@c.example\n\n[@dave@d.example](https://d.example/)\n"
        )
    finally:
        renderer.close()
    assert mentions.find_handles(html) == ["@alice@social.example"]


def test_a_known_handle_becomes_an_h_card_mention() -> None:
    html = (
        "<p>Hello @Alice@social.example and @bob@b.example, <code>@alice@social.example</code></p>"
    )
    linked = mentions.link_mentions(html, {ALICE.handle: ALICE})
    assert (
        '<a class="u-category h-card mention" href="https://social.example/@alice" '
        'title="@alice@social.example">@Alice</a>'
    ) in linked
    assert "@bob@b.example," in linked  # unknown: plain text
    assert "<code>@alice@social.example</code>" in linked
    # microformats2: a person tag of the h-entry, an h-card with the profile as its url
    doc = mf2py.parse(doc=f'<div class="h-entry"><div class="e-content">{linked}</div></div>')
    card = doc["items"][0]["properties"]["category"][0]
    assert card["type"] == ["h-card"]
    assert card["properties"]["url"] == ["https://social.example/@alice"]


def test_the_blogs_own_handle_is_no_mention(site: Path) -> None:
    config = config_mod.load(site)
    posts = list(site_mod.build(config).built_posts)[:1]
    assert posts
    post = posts[0]
    own = config.handle
    written = [replace(post, html=f"<p>follow {own} or @bob@b.example</p>")]
    out, warnings = mentions.apply(written, {}, own=own)
    assert out[0].mentions == ()
    assert len(warnings) == 1 and "@bob@b.example" in warnings[0]
