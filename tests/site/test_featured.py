"""Author attribution and pinned posts in the built site (Mastodon 4.3+ actor extensions).

Sources: Mastodon's documentation ``spec/activitypub.md`` (``featured``, the ``toot:``
namespace) and ``Account#can_be_attributed_from?`` for ``attributionDomains``; the shapes
are compared with the golden copies ``tests/data/golden/actor.as2.json`` and
``featured.as2.json``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup

from bridge import config as config_mod
from bridge.errors import ConfigError
from bridge.site import featured, proofs
from bridge.site.build import BuildResult
from tests.conftest import GOLDEN, Built

Build = Callable[..., BuildResult]
TOOT = "http://joinmastodon.org/ns#"


def extension_terms(doc: dict[str, Any]) -> dict[str, Any]:
    terms: dict[str, Any] = {}
    for entry in doc["@context"]:
        if isinstance(entry, dict):
            terms.update(entry)
    return terms


def redacted(doc: Any) -> Any:
    """A document without what changes per key pair or per build (keys, proofs)."""
    if isinstance(doc, dict):
        return {
            k: ("<redacted>" if k in ("publicKeyPem", "publicKeyMultibase") else redacted(v))
            for k, v in doc.items()
            if k != "proof"
        }
    if isinstance(doc, list):
        return [redacted(v) for v in doc]
    return doc


def assert_golden(name: str, doc: Any) -> None:
    """Regenerate with UPDATE_GOLDEN=1 after a deliberate change, and review the diff."""
    text = json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    golden = GOLDEN / f"{name}.as2.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    expected = golden.read_text(encoding="utf-8")
    if json.loads(expected) != doc:
        diff = "".join(
            difflib.unified_diff(expected.splitlines(True), text.splitlines(True), name, "built")
        )
        pytest.fail(f"{name} differs from its golden copy (UPDATE_GOLDEN=1 rewrites it):\n{diff}")


def write_post(site: Path, name: str, front: str, body: str = "Some text.") -> None:
    (site / "content" / "posts" / name).write_text(f"---\n{front}\n---\n{body}\n", "utf-8")


# ---- author attribution ------------------------------------------------------------------


def test_actor_declares_attribution_domains_as_a_toot_id_term(built: Built) -> None:
    actor = built.json("ap/actor.json")
    terms = extension_terms(actor)
    assert terms["toot"] == TOOT
    assert terms["attributionDomains"] == {"@id": "toot:attributionDomains", "@type": "@id"}
    assert actor["attributionDomains"] == ["blog.example"]
    assert_golden("actor", redacted(actor))


def test_attribution_domains_setting_adds_domains_after_the_own_host(
    make_site: Callable[..., Path], build_site: Build
) -> None:
    site = make_site(
        {
            "base_url": "https://Blog.example:8443",
            "attribution_domains": ["news.example", "blog.example", "news.example"],
        }
    )
    out = build_site(site).out_dir
    actor = json.loads((out / "ap/actor.json").read_text("utf-8"))
    assert actor["attributionDomains"] == ["blog.example", "news.example"]


@pytest.mark.parametrize("bad", ["https://news.example", "news.example:443", "news.example/x", ""])
def test_attribution_domain_must_be_a_bare_domain(make_site: Callable[..., Path], bad: str) -> None:
    site = make_site({"attribution_domains": [bad]})
    with pytest.raises(ConfigError) as info:
        config_mod.load(site)
    message = str(info.value)
    assert "attribution_domains" in message and "\n" not in message


def test_post_pages_keep_the_fediverse_creator_meta(built: Built) -> None:
    soup = BeautifulSoup(built.text("posts/first-article/index.html"), "html.parser")
    meta = soup.find("meta", attrs={"name": "fediverse:creator"})
    assert meta is not None and meta["content"] == "@tester@blog.example"


# ---- pinned posts ---------------------------------------------------------------------------


def test_featured_is_declared_and_empty_without_pins(built: Built) -> None:
    actor = built.json("ap/actor.json")
    assert extension_terms(actor)["featured"] == {"@id": "toot:featured", "@type": "@id"}
    assert actor["featured"] == built.config.featured_url
    doc = built.json("ap/featured.json")
    assert doc["id"] == actor["featured"]
    assert (doc["type"], doc["totalItems"], doc["orderedItems"]) == ("OrderedCollection", 0, [])


@pytest.fixture
def pinned_site(site: Path) -> Path:
    """The test site with its oldest article and a new note pinned, and one draft pinned."""
    path = site / "content/posts/2026-01-10-first-article.md"
    path.write_text(path.read_text("utf-8").replace("---\ntitle:", "---\npinned: true\ntitle:", 1))
    write_post(site, "2026-01-13-pinned-note.md", "date: 2026-01-13T08:00:00Z\npinned: true")
    write_post(
        site, "2026-01-20-pinned-draft.md", "date: 2026-01-20T08:00:00Z\npinned: true\ndraft: true"
    )
    return site


def test_featured_lists_pinned_objects_newest_first(pinned_site: Path, build_site: Build) -> None:
    out = build_site(pinned_site).out_dir
    doc = json.loads((out / "ap/featured.json").read_text("utf-8"))
    ids = [item["id"] for item in doc["orderedItems"]]
    assert ids == [
        "https://blog.example/ap/posts/pinned-note.json",
        "https://blog.example/ap/posts/first-article.json",
    ]
    assert doc["totalItems"] == 2
    # Each item is the post's own signed object, byte for byte the one served at its id.
    for item in doc["orderedItems"]:
        served = json.loads((out / "ap/posts" / item["id"].rsplit("/", 1)[1]).read_text("utf-8"))
        assert item == served
        assert "proof" in item
    assert_golden("featured", redacted(doc))


def test_home_page_lists_pinned_posts_first(pinned_site: Path, build_site: Build) -> None:
    out = build_site(pinned_site).out_dir
    soup = BeautifulSoup((out / "index.html").read_text("utf-8"), "html.parser")
    entries = soup.select("section.h-feed article.h-entry")
    hrefs = [e.select_one("a.u-url")["href"] for e in entries]
    assert hrefs == [
        "https://blog.example/posts/pinned-note/",
        "https://blog.example/posts/first-article/",
    ]
    assert all("pinned" in e["class"] for e in entries)
    assert [e.get_text(strip=True) for e in soup.select(".pin-label")] == ["Pinned", "Pinned"]
    # Page 2 goes on with the newest unpinned posts.
    page2 = BeautifulSoup((out / "page/2/index.html").read_text("utf-8"), "html.parser")
    first = page2.select_one("section.h-feed article.h-entry a.u-url")
    assert first is not None and first["href"] == "https://blog.example/posts/a-reply/"


def test_pinned_must_be_a_boolean(site: Path, build_site: Build) -> None:
    from bridge.errors import ContentError

    write_post(site, "2026-01-13-bad.md", "date: 2026-01-13T08:00:00Z\npinned: yes please")
    with pytest.raises(ContentError) as info:
        build_site(site)
    assert "'pinned' must be true or false" in str(info.value)
    assert "2026-01-13-bad.md" in str(info.value)


def test_pin_activities_target_the_featured_collection(built: Built) -> None:
    moment = dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC)
    obj = "https://blog.example/ap/posts/first-article.json"
    add = featured.pin_activity(built.config, "Add", obj, moment)
    remove = featured.pin_activity(built.config, "Remove", obj, moment)
    for activity, kind in ((add, "Add"), (remove, "Remove")):
        assert activity["type"] == kind
        assert activity["actor"] == built.config.actor_id
        assert activity["object"] == obj
        assert activity["target"] == built.json("ap/actor.json")["featured"]
    assert add["id"] != remove["id"]
    with pytest.raises(ValueError):
        featured.pin_activity(built.config, "Like", obj, moment)


def test_featured_items_verify_with_the_actor_key(pinned_site: Path, build_site: Build) -> None:
    from bridge import keys

    out = build_site(pinned_site).out_dir
    public = keys.load(config_mod.load(pinned_site).state_dir).ed25519.public_key()
    for item in json.loads((out / "ap/featured.json").read_text("utf-8"))["orderedItems"]:
        proofs.verify_object(item, public)
