"""Featured hashtags on the actor (Mastodon's ``toot:featuredTags``), from the site's most
used tags under the ``featured_tags`` setting.

Source: Mastodon's ``ActivityPub::FetchFeaturedTagsCollectionService`` (a ``Collection`` or
``OrderedCollection`` of items typed ``Hashtag`` whose ``name`` loses its ``#``; at most
``FeaturedTag::LIMIT`` = 10) and its context term ``featuredTags: {"@id":
"toot:featuredTags", "@type": "@id"}``.  The shapes are compared with the golden copies
``tests/data/golden/actor-featured-tags.as2.json`` and ``featured-tags.as2.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge import config as config_mod
from bridge import keys
from bridge.errors import ConfigError
from bridge.site import proofs
from bridge.site.build import BuildResult
from tests.conftest import Built
from tests.site.test_featured import assert_golden, extension_terms, redacted, write_post

Build = Callable[..., BuildResult]


def read(out: Path, rel: str) -> Any:
    return json.loads((out / rel).read_text("utf-8"))


def test_no_featured_tags_by_default(built: Built) -> None:
    actor = built.json("ap/actor.json")
    assert "featuredTags" not in actor
    assert "featuredTags" not in extension_terms(actor)
    assert not (built.out / "ap/featured-tags.json").exists()


def test_the_actor_features_the_most_used_tags(
    make_site: Callable[..., Path], build_site: Build
) -> None:
    site = make_site({"featured_tags": 3})
    out = build_site(site).out_dir
    actor = read(out, "ap/actor.json")
    assert extension_terms(actor)["featuredTags"] == {"@id": "toot:featuredTags", "@type": "@id"}
    assert extension_terms(actor)["toot"] == "http://joinmastodon.org/ns#"
    assert actor["featuredTags"] == "https://blog.example/ap/featured-tags.json"
    doc = read(out, "ap/featured-tags.json")
    assert doc["id"] == actor["featuredTags"]  # served at its id
    # python is on two posts; tv (14 Jan) and notes (12 Jan) are newer than IndieWeb (10 Jan).
    assert doc["type"] == "Collection" and doc["totalItems"] == 3
    assert doc["items"] == [
        {"type": "Hashtag", "href": "https://blog.example/tags/python/", "name": "#python"},
        {"type": "Hashtag", "href": "https://blog.example/tags/tv/", "name": "#tv"},
        {"type": "Hashtag", "href": "https://blog.example/tags/notes/", "name": "#notes"},
    ]
    for item in doc["items"]:  # each href is a page of the site
        path = item["href"].removeprefix("https://blog.example/")
        assert (out / path / "index.html").is_file()
    assert_golden("actor-featured-tags", redacted(actor))
    assert_golden("featured-tags", doc)
    # The actor's proof covers the added context and property.
    public = keys.load(config_mod.load(site).state_dir).ed25519.public_key()
    proofs.verify_object(actor, public)


def test_spellings_of_one_tag_count_together_and_drafts_not_at_all(
    make_site: Callable[..., Path], build_site: Build
) -> None:
    site = make_site({"featured_tags": 10})
    write_post(site, "2026-01-20-tv-again.md", "date: 2026-01-20T08:00:00Z\ntags: [TV, Lighthouse]")
    write_post(site, "2026-01-21-more-tv.md", "date: 2026-01-21T08:00:00Z\ntags: [tv]")
    write_post(
        site,
        "2026-01-22-unfinished.md",
        "date: 2026-01-22T08:00:00Z\ndraft: true\ntags: [secret, python, python2]",
    )
    doc = read(build_site(site, drafts=True).out_dir, "ap/featured-tags.json")
    names = [item["name"] for item in doc["items"]]
    # tv: 3 posts (newest spelling "tv"), python: 2, then one post each, newest first.
    assert names == ["#tv", "#python", "#Lighthouse", "#notes", "#IndieWeb"]


@pytest.mark.parametrize("bad", [11, -1, True, "3", 2.5])
def test_featured_tags_is_a_count_up_to_ten(make_site: Callable[..., Path], bad: Any) -> None:
    with pytest.raises(ConfigError) as info:
        config_mod.load(make_site({"featured_tags": bad}))
    message = str(info.value)
    assert message == "site.toml: key 'featured_tags' must be a whole number from 0 to 10"
