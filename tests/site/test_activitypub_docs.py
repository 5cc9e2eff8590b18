"""The static ActivityPub, WebFinger and NodeInfo documents, field by field.

What Mastodon and other servers require of each document: an actor whose ``id`` is the URL it
is served at, with an SPKI RSA key and an Ed25519 Multikey; a WebFinger answer that round-trips
to that actor; posts addressed to the Public IRI with hashtags, alt text and content warnings;
and ids that all dereference to files of the output.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from bridge import keys
from bridge.config import load as load_config
from bridge.daemon.collections import empty_collection
from bridge.errors import SignatureError
from bridge.site import collections, proofs
from bridge.site.build import BuildResult
from tests.conftest import BASE_URL, GOLDEN, Built
from tests.site.test_proofs import spec_verify

AS = "https://www.w3.org/ns/activitystreams"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
SECURITY = "https://w3id.org/security/v1"
ACTOR = f"{BASE_URL}/ap/actor.json"
FOLLOWERS = f"{BASE_URL}/ap/followers.json"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
NEWEST_FIRST = ["a-reply", "spoilers", "quick-note", "first-article"]


def served_at(built: Built, url: str) -> Path:
    path = built.path_for(url)
    assert path is not None, f"{url} is not under {BASE_URL}"
    assert path.is_file(), f"{url} does not resolve to a file of the output"
    return path


def served_json(built: Built, url: str) -> Any:
    """The JSON the daemon serves at ``url``: the output's file, else the empty collection
    it answers for a live post's unwritten replies/likes/shares/context
    (``bridge.daemon.collections``); a static host serves ``collections.SHARED_EMPTY``."""
    path = built.path_for(url)
    assert path is not None, f"{url} is not under {BASE_URL}"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    doc = empty_collection(built.config, path.relative_to(built.out).as_posix())
    assert doc is not None, f"{url} is neither a file of the output nor answered by the daemon"
    return doc


def post(built: Built, slug: str) -> dict[str, Any]:
    doc: dict[str, Any] = built.json(f"ap/posts/{slug}.json")
    return doc


def walk(value: Any, where: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every member of every object, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield where, key, item
            yield from walk(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk(item, f"{where}[{i}]")


def objects_with_proof(value: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        if "proof" in value:
            yield where or "(document)", value
        for key, item in value.items():
            if key != "proof":
                yield from objects_with_proof(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from objects_with_proof(item, f"{where}[{i}]")


def context_terms(doc: dict[str, Any]) -> list[Any]:
    context = doc["@context"]
    return context if isinstance(context, list) else [context]


# ---- the actor -----------------------------------------------------------------------------


def test_actor_is_served_at_its_id(built: Built) -> None:
    actor = built.json("ap/actor.json")
    assert actor["id"] == ACTOR
    assert served_at(built, actor["id"]) == built.out / "ap/actor.json"
    assert actor["type"] == "Person"
    assert AS in context_terms(actor)
    assert SECURITY in context_terms(actor)


def test_actor_fields(built: Built) -> None:
    actor = built.json("ap/actor.json")
    assert actor["preferredUsername"] == "tester"
    assert actor["name"] == "Tess Tester"
    assert actor["summary"] == "<p>Writes posts so the tests have something to read.</p>"
    assert actor["url"] == f"{BASE_URL}/"
    assert actor["inbox"] == f"{BASE_URL}/ap/inbox"
    assert actor["endpoints"] == {"sharedInbox": f"{BASE_URL}/inbox"}
    assert actor["outbox"] == f"{BASE_URL}/ap/outbox.json"
    assert actor["followers"] == FOLLOWERS
    assert actor["following"] == f"{BASE_URL}/ap/following.json"
    for key in ("outbox", "followers", "following", "url"):
        served_at(built, actor[key])
    assert actor["manuallyApprovesFollowers"] is False
    assert actor["discoverable"] is True
    assert actor["alsoKnownAs"] == ["https://old.example/users/tester"]
    assert actor["webfinger"] == "tester@blog.example"  # FEP-2c59
    assert actor["published"] == "2026-01-10T08:30:00Z"  # the first post
    assert actor["icon"] == {
        "type": "Image",
        "mediaType": "image/png",
        "url": f"{BASE_URL}/static/avatar.png",
    }
    served_at(built, actor["icon"]["url"])


def test_actor_profile_fields_are_property_values(built: Built) -> None:
    blog, pronouns = built.json("ap/actor.json")["attachment"]
    assert blog["type"] == pronouns["type"] == "PropertyValue"
    assert (blog["name"], pronouns["name"]) == ("Blog", "Pronouns")
    assert blog["value"].startswith('<a href="https://blog.example/" rel="me')
    assert pronouns["value"] == "they/them"


def test_actor_rsa_key_is_spki_pem(built: Built, key_files: Path) -> None:
    key = built.json("ap/actor.json")["publicKey"]
    assert key["id"] == f"{ACTOR}#main-key"
    assert key["owner"] == ACTOR
    pem = key["publicKeyPem"]
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert "RSA PUBLIC KEY" not in pem
    public = serialization.load_pem_public_key(pem.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size >= 2048
    assert pem == keys.load(key_files.parent).public_pem


def test_actor_ed25519_multikey(built: Built, key_files: Path) -> None:
    [method] = built.json("ap/actor.json")["assertionMethod"]
    assert method["id"] == f"{ACTOR}#ed25519-key"
    assert method["type"] == "Multikey"
    assert method["controller"] == ACTOR
    assert method["publicKeyMultibase"].startswith("z6Mk")
    public = keys.ed25519_from_multibase(method["publicKeyMultibase"])
    assert isinstance(public, ed25519.Ed25519PublicKey)
    mine = keys.load(key_files.parent).ed25519.public_key()
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert public.public_bytes(*raw) == mine.public_bytes(*raw)


def test_actor_follows_the_settings(
    make_site: Callable[..., Path], build_site: Callable[..., BuildResult]
) -> None:
    folder = make_site(
        {
            "manually_approves_followers": True,
            "discoverable": False,
            "federation_url": "https://ap.blog.example",
            "also_known_as": [],
            "author": {"avatar": "", "bio": "", "fields": []},
        }
    )
    out = build_site(folder).out_dir
    actor = json.loads((out / "ap/actor.json").read_text())
    assert actor["manuallyApprovesFollowers"] is True
    assert actor["discoverable"] is False and actor["indexable"] is False
    assert actor["inbox"] == "https://ap.blog.example/ap/inbox"
    assert actor["endpoints"]["sharedInbox"] == "https://ap.blog.example/inbox"
    assert actor["id"] == ACTOR  # the documents stay on the blog
    assert actor["alsoKnownAs"] == [] and actor["attachment"] == []
    assert "icon" not in actor
    assert actor["summary"] == "<p>A small site the test suite builds.</p>"  # falls back


# ---- WebFinger, host-meta, NodeInfo --------------------------------------------------------


def test_webfinger_round_trips_to_the_actor(built: Built) -> None:
    jrd = built.json(".well-known/webfinger")
    assert jrd["subject"] == "acct:tester@blog.example"
    [self_link] = [link for link in jrd["links"] if link["rel"] == "self"]
    assert self_link["type"] == "application/activity+json"
    assert self_link["href"] == ACTOR
    assert jrd["aliases"] == [f"{BASE_URL}/", ACTOR]
    [profile] = [link for link in jrd["links"] if link["rel"].endswith("/profile-page")]
    assert profile == {
        "rel": "http://webfinger.net/rel/profile-page",
        "type": "text/html",
        "href": f"{BASE_URL}/",
    }
    # Mastodon's check: preferredUsername @ host of the actor id gives back the same actor.
    actor = built.json("ap/actor.json")
    acct = f"acct:{actor['preferredUsername']}@{urlsplit(actor['id']).netloc}"
    assert acct == jrd["subject"]


def test_host_meta_has_an_lrdd_template(built: Built) -> None:
    root = ET.fromstring(built.text(".well-known/host-meta"))
    ns = "{http://docs.oasis-open.org/ns/xri/xrd-1.0}"
    assert root.tag == f"{ns}XRD"
    [link] = root.findall(f"{ns}Link")
    assert link.get("rel") == "lrdd"
    assert link.get("template") == f"{BASE_URL}/.well-known/webfinger?resource={{uri}}"


def test_nodeinfo_discovery_and_documents(built: Built) -> None:
    links = built.json(".well-known/nodeinfo")["links"]
    by_rel = {link["rel"]: link["href"] for link in links}
    assert links[0]["rel"] == "http://nodeinfo.diaspora.software/ns/schema/2.1"
    for version in ("2.1", "2.0"):
        href = by_rel[f"http://nodeinfo.diaspora.software/ns/schema/{version}"]
        doc = json.loads(served_at(built, href).read_text())
        assert doc["version"] == version
        assert re.fullmatch(r"[a-z0-9-]+", doc["software"]["name"])
        assert doc["software"]["name"] == "indiebridge"
        assert doc["software"]["version"]
        assert doc["protocols"] == ["activitypub"]
        assert isinstance(doc["services"]["inbound"], list)
        assert isinstance(doc["services"]["outbound"], list)
        assert doc["openRegistrations"] is False
        assert doc["usage"]["users"] == {"total": 1, "activeMonth": 1, "activeHalfyear": 1}
        assert doc["usage"]["localPosts"] == 4
        assert doc["metadata"]["nodeName"] == "Test Tides"
        if version == "2.0":  # the 2.0 schema allows only name and version
            assert set(doc["software"]) == {"name", "version"}


# ---- posts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", NEWEST_FIRST)
def test_every_post_object_is_public_and_served_at_its_id(built: Built, slug: str) -> None:
    obj = post(built, slug)
    assert obj["id"] == f"{BASE_URL}/ap/posts/{slug}.json"
    assert served_at(built, obj["id"]) == built.out / f"ap/posts/{slug}.json"
    assert obj["url"] == f"{BASE_URL}/posts/{slug}/"
    served_at(built, obj["url"])
    assert obj["attributedTo"] == ACTOR
    assert obj["to"] == [PUBLIC]
    assert FOLLOWERS in obj["cc"]
    assert ISO_Z.match(obj["published"])
    assert obj["contentMap"] == {"en": obj["content"]}
    assert AS in context_terms(obj)
    for tag in obj["tag"]:
        assert tag["type"] == "Hashtag"
        assert tag["name"].startswith("#")
        served_at(built, tag["href"])
    for name in ("replies", "likes", "shares", "context"):
        assert obj[name] == f"{BASE_URL}/ap/posts/{slug}/{name}.json"
        collection = served_json(built, obj[name])  # a file only when it has items
        assert collection["id"] == obj[name]
        assert collection["type"] == "OrderedCollection"


def test_article(built: Built) -> None:
    obj = post(built, "first-article")
    assert obj["type"] == "Article"
    assert obj["name"] == "The first article"
    assert obj["summary"] == "An article with a picture, two tags and an edit."
    assert obj["content"].startswith("<p>This is the <strong>first</strong> article.")
    assert obj["sensitive"] is False
    assert obj["published"] == "2026-01-10T08:30:00Z"
    assert obj["updated"] == "2026-01-11T09:00:00Z"
    assert [(t["name"], t["href"]) for t in obj["tag"]] == [
        ("#python", f"{BASE_URL}/tags/python/"),
        ("#IndieWeb", f"{BASE_URL}/tags/indieweb/"),
    ]
    assert obj["attachment"] == [
        {
            "type": "Image",
            "mediaType": "image/png",
            "url": f"{BASE_URL}/static/images/pool.png",
            "name": "A small blue rectangle standing in for a tide pool.",
        }
    ]
    served_at(built, obj["attachment"][0]["url"])
    assert "inReplyTo" not in obj
    assert "<img" not in obj["content"]


def test_note(built: Built) -> None:
    obj = post(built, "quick-note")
    assert obj["type"] == "Note"
    assert "name" not in obj
    assert obj["content"] == (  # the inline #notes is linked as Mastodon links a hashtag
        '<p>A short note without a title. <a href="https://blog.example/tags/notes/" '
        'class="mention hashtag" rel="tag">#notes</a></p>'
    )
    assert "summary" not in obj and obj["sensitive"] is False
    assert "updated" not in obj
    assert obj["attachment"] == []


def test_content_warning_is_summary_and_sensitive(built: Built) -> None:
    obj = post(built, "spoilers")
    assert obj["summary"] == "Spoilers for the finale"
    assert obj["sensitive"] is True
    assert obj["content"] == "<p>The lighthouse keeper did it.</p>"


def test_reply_has_in_reply_to(built: Built) -> None:
    obj = post(built, "a-reply")
    assert obj["type"] == "Note"
    assert obj["inReplyTo"] == "https://example.org/posts/1"


def test_titled_posts_as_notes(
    make_site: Callable[..., Path], build_site: Callable[..., BuildResult]
) -> None:
    out = build_site(make_site({"fediverse_format": "note"})).out_dir
    obj = json.loads((out / "ap/posts/first-article.json").read_text())
    assert obj["type"] == "Note"
    assert "name" not in obj
    assert obj["content"].startswith("<p><strong>The first article</strong></p>")
    link = f"{BASE_URL}/posts/first-article/"
    assert obj["content"].endswith(f'<p><a href="{link}">{link}</a></p>')
    assert "summary" not in obj
    spoilers = json.loads((out / "ap/posts/spoilers.json").read_text())
    assert spoilers["type"] == "Note"
    assert (spoilers["summary"], spoilers["sensitive"]) == ("Spoilers for the finale", True)


@pytest.mark.parametrize("slug", NEWEST_FIRST)
def test_create_wraps_the_object(built: Built, slug: str) -> None:
    create = built.json(f"ap/posts/{slug}/create.json")
    obj = post(built, slug)
    assert create["type"] == "Create"
    assert create["id"] == f"{BASE_URL}/ap/posts/{slug}/create.json"
    assert create["actor"] == ACTOR
    assert create["object"] == obj
    assert create["to"] == obj["to"] == [PUBLIC]
    assert create["cc"] == obj["cc"]
    assert create["published"] == obj["published"]
    assert AS in context_terms(create)


def test_replies_collection_lists_approved_replies(built: Built) -> None:
    replies = built.json("ap/posts/first-article/replies.json")
    assert replies["totalItems"] == 1
    assert replies["first"] == f"{BASE_URL}/ap/posts/first-article/replies/page-1.json"
    page = built.json("ap/posts/first-article/replies/page-1.json")  # paged: threads.py
    assert page["orderedItems"] == ["https://social.example/users/friend/statuses/1"]
    # No likes: no file; the daemon answers the id with an empty collection.
    likes = f"{BASE_URL}/ap/posts/first-article/likes.json"
    assert not (built.out / "ap/posts/first-article/likes.json").exists()
    assert served_json(built, likes) == {
        "@context": AS,
        "id": likes,
        "type": "OrderedCollection",
        "totalItems": 0,
        "orderedItems": [],
    }


def test_only_collections_with_items_are_written(built: Built) -> None:
    """The sample's one approved reply is under first-article: its replies and context are
    files; every other post's collections are answered without one."""
    written = sorted(
        rel
        for rel, _ in built.json_files()
        if re.fullmatch(r"ap/posts/[^/]+/(replies|likes|shares|context)(/page-\d+)?\.json", rel)
    )
    assert written == [
        "ap/posts/first-article/context.json",
        "ap/posts/first-article/context/page-1.json",
        "ap/posts/first-article/replies.json",
        "ap/posts/first-article/replies/page-1.json",
    ]
    shared = built.json(collections.SHARED_EMPTY)
    assert shared["type"] == "OrderedCollection"
    assert shared["totalItems"] == 0
    assert shared["id"] == f"{BASE_URL}/{collections.SHARED_EMPTY}"
    rules = built.text("_redirects")
    for name in ("replies", "likes", "shares", "context"):
        assert f"/ap/posts/:slug/{name}.json  /{collections.SHARED_EMPTY}  200\n" in rules
    # Deleted posts' 410 rules come first: on Netlify the first matching line wins.
    assert rules.index(" 410") < rules.index(" 200") if " 410" in rules else True


def test_followers_and_following(built: Built) -> None:
    followers = built.json("ap/followers.json")
    assert (followers["id"], followers["type"], followers["totalItems"]) == (
        FOLLOWERS,
        "OrderedCollection",
        0,
    )
    following = built.json("ap/following.json")
    assert following["type"] == "OrderedCollection" and following["totalItems"] == 0


# ---- the outbox -------------------------------------------------------------------------------


def test_outbox(built: Built) -> None:
    outbox = built.json("ap/outbox.json")
    assert outbox["id"] == f"{BASE_URL}/ap/outbox.json"
    assert outbox["type"] == "OrderedCollection"
    assert outbox["totalItems"] == 4
    page = json.loads(served_at(built, outbox["first"]).read_text())
    assert page["id"] == outbox["first"]
    assert page["type"] == "OrderedCollectionPage"
    assert page["partOf"] == outbox["id"]
    assert "next" not in page
    items = page["orderedItems"]
    assert [i["type"] for i in items] == ["Create"] * 4
    assert [i["object"]["id"] for i in items] == [
        f"{BASE_URL}/ap/posts/{slug}.json" for slug in NEWEST_FIRST
    ]
    for item in items:
        assert item["to"] == item["object"]["to"] and item["cc"] == item["object"]["cc"]


def test_outbox_pages_link_up(
    make_site: Callable[..., Path],
    build_site: Callable[..., BuildResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collections, "OUTBOX_PAGE_SIZE", 3)
    out = build_site(make_site()).out_dir
    outbox = json.loads((out / "ap/outbox.json").read_text())
    page1 = json.loads((out / "ap/outbox/page-1.json").read_text())
    page2 = json.loads((out / "ap/outbox/page-2.json").read_text())
    assert outbox["first"] == page1["id"] and outbox["last"] == page2["id"]
    assert page1["next"] == page2["id"] and page2["prev"] == page1["id"]
    assert len(page1["orderedItems"]) == 3 and len(page2["orderedItems"]) == 1
    assert page2["orderedItems"][0]["object"]["id"].endswith("/first-article.json")


# ---- every id dereferences; every proof verifies -----------------------------------------------

NOT_SERVED_BY_FILES = {"inbox", "sharedInbox"}  # answered by the daemon


def test_every_url_of_ours_is_served(built: Built) -> None:
    """By a file of the output, or (a live post's empty collections, which the build
    does not write) by the daemon's fallback, ``bridge.daemon.collections``."""
    checked = 0
    by_daemon = set()
    missing = []
    for rel, doc in built.json_files():
        for where, key, value in walk(doc):
            values = value if isinstance(value, list) else [value]
            for url in values:
                if not isinstance(url, str) or not url.startswith(BASE_URL):
                    continue
                if key in NOT_SERVED_BY_FILES:
                    continue
                checked += 1
                path = built.path_for(url)
                if path is not None and not path.is_file():
                    empty = empty_collection(built.config, path.relative_to(built.out).as_posix())
                    if empty is not None and empty["id"] == url.split("#", 1)[0]:
                        by_daemon.add(url)
                        continue
                if path is None or not path.is_file():
                    missing.append(f"{rel}{where}.{key}: {url}")
    assert missing == []
    assert checked > 100
    assert f"{BASE_URL}/ap/posts/quick-note/likes.json" in by_daemon


def test_json_ids_equal_the_url_they_are_served_at(built: Built) -> None:
    for rel, doc in built.json_files():
        if isinstance(doc, dict) and isinstance(doc.get("id"), str):
            assert built.path_for(doc["id"]) == built.out / rel, rel


def actor_key(built: Built) -> ed25519.Ed25519PublicKey:
    [method] = built.json("ap/actor.json")["assertionMethod"]
    return keys.ed25519_from_multibase(method["publicKeyMultibase"])


def test_every_published_document_proof_verifies(built: Built) -> None:
    public = actor_key(built)
    verified = 0
    for rel, doc in built.json_files():
        if rel.startswith("ap/outbox/"):
            continue  # see test_outbox_items_keep_verifiable_proofs
        for where, obj in objects_with_proof(doc):
            proof = obj["proof"]
            assert proof["type"] == "DataIntegrityProof", (rel, where)
            assert proof["cryptosuite"] == "eddsa-jcs-2022"
            assert proof["verificationMethod"] == f"{ACTOR}#ed25519-key"
            assert proof["proofPurpose"] == "assertionMethod"
            assert ISO_Z.match(proof["created"])
            proofs.verify_object(obj, public)
            # As bovine and tootik verify: the proof hashed exactly as published.
            assert proof["@context"] == obj["@context"], (rel, where)
            assert spec_verify(obj, public, as_received=True), (rel, where)
            verified += 1
    # the actor, 4 objects, 4 Creates and the 4 objects they embed
    assert verified == 13


def test_a_tampered_object_does_not_verify(built: Built) -> None:
    obj = post(built, "first-article")
    obj["content"] = "<p>Forged.</p>"
    with pytest.raises(SignatureError):
        proofs.verify_object(obj, actor_key(built))


def test_outbox_items_keep_verifiable_proofs(built: Built) -> None:
    public = actor_key(built)
    page = built.json("ap/outbox/page-1.json")
    failures = []
    for where, obj in objects_with_proof(page):
        try:
            proofs.verify_object(obj, public)
        except SignatureError:
            failures.append(where)
    assert failures == []


# ---- golden copy of representative posts -------------------------------------------------------


@pytest.mark.parametrize("slug", ["first-article", "a-reply"])
def test_post_object_matches_golden_copy(built: Built, slug: str) -> None:
    """Regenerate with UPDATE_GOLDEN=1 after a deliberate change, and review the diff."""
    obj = proofs.strip_proof(post(built, slug))
    text = json.dumps(obj, ensure_ascii=False, indent=2) + "\n"
    golden = GOLDEN / f"{slug}.as2.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    expected = golden.read_text(encoding="utf-8")
    if json.loads(expected) != obj:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(True), text.splitlines(True), str(golden), "built"
            )
        )
        pytest.fail(f"{slug} differs from its golden copy (UPDATE_GOLDEN=1 rewrites it):\n{diff}")


def test_dates_are_utc_with_z(built: Built) -> None:
    for rel, doc in built.json_files():
        for _, key, value in walk(doc):
            if key in ("published", "updated", "created", "deleted"):
                assert ISO_Z.match(value), (rel, key, value)
                dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")


def test_site_config_matches_built_documents(built: Built) -> None:
    config = load_config(built.config.site_dir)
    assert built.json("ap/actor.json")["id"] == config.actor_id
    assert built.json(".well-known/webfinger")["subject"] == f"acct:{config.handle[1:]}"


@pytest.mark.parametrize(
    ("resource", "status"),
    [
        ("acct:tester@blog.example", 200),
        ("ACCT:Tester@Blog.Example", 200),
        (f"{BASE_URL}/ap/actor.json", 200),
        ("tester@blog.example", 400),
        ("=acct:tester@blog.example", 400),
        ("acct:tester", 400),
        ("acct:@", 400),
        ("https://", 400),
        ("acct:tester@blog.example extra", 400),
        (None, 400),
        ("   ", 400),
        ("acct:other@blog.example", 404),
        ("mailto:tester@blog.example", 404),
    ],
)
def test_webfinger_resource_status(built: Built, resource: str | None, status: int) -> None:
    """RFC 7033 section 4.2: absent or malformed resource -> 400; not ours -> 404."""
    from bridge.site import webfinger

    got, error = webfinger.resource_status(built.config, resource)
    assert got == status, error
    assert (error == "") == (status == 200)
    assert "\n" not in error
