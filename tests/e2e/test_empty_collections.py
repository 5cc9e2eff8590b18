"""A post's empty collections over real loopback HTTP: the build writes replies, likes,
shares and context only when they have items, and the daemon answers every id the Note
names anyway, with the id asked for (``bridge.daemon.collections``)."""

from __future__ import annotations

import json

from bridge.site.comments import CommentStore
from bridge.site.comments import from_json as comment_from_json
from tests.e2e.blog import Blog

AP = "application/activity+json"


def test_every_collection_id_of_a_post_is_served(blog: Blog) -> None:
    blog.write_post("quiet", "Nobody answered.", title="Quiet")
    blog.start()
    note = blog.get("/ap/posts/quiet.json").json()
    urls = [note[name] for name in ("replies", "likes", "shares", "context")]
    for url in urls:
        rel = url.removeprefix(blog.base_url + "/")
        assert not (blog.root / "public" / rel).exists(), rel  # not written
        r = blog.get(url.removeprefix(blog.base_url))
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith(AP)
        assert r.headers["access-control-allow-origin"] == "*"
        doc = r.json()
        assert doc["id"] == url and doc["type"] == "OrderedCollection"
    replies = blog.get("/ap/posts/quiet/replies.json").json()
    assert replies["totalItems"] == 0
    first = blog.get(replies["first"].removeprefix(blog.base_url)).json()
    assert first["type"] == "OrderedCollectionPage" and first["orderedItems"] == []
    context = blog.get("/ap/posts/quiet/context.json").json()
    page = blog.get(context["first"].removeprefix(blog.base_url)).json()
    assert page["orderedItems"] == [note["id"]]  # FEP-7888: the post alone
    assert blog.get("/ap/posts/quiet/likes.json").json()["totalItems"] == 0
    # Only a live post's collections: an unknown slug or another name is a 404.
    assert blog.get("/ap/posts/never-was/likes.json").status_code == 404
    assert blog.get("/ap/posts/quiet/replies/page-2.json").status_code == 404
    assert blog.get("/ap/posts/quiet/followers.json").status_code == 404


def test_a_collection_with_items_is_a_file(blog: Blog) -> None:
    blog.write_post("liked", "Someone liked it.", title="Liked")
    like = {
        "id": "c0ffee0000000000b001",
        "type": "like",
        "protocol": "activitypub",
        "source": "https://far.example/@ann/likes/1",
        "target": f"{blog.base_url}/posts/liked/",
        "author": {"name": "Ann", "url": "https://far.example/@ann"},
        "content": "",
        "published": "2026-02-01T00:00:00Z",
        "object_id": "https://far.example/likes/1",
        "status": "approved",
    }
    CommentStore(blog.root / "content").write("liked", comment_from_json(like))
    blog.start()
    path = blog.root / "public/ap/posts/liked/likes.json"
    assert json.loads(path.read_text())["orderedItems"] == ["https://far.example/likes/1"]
    served = blog.get("/ap/posts/liked/likes.json").json()
    assert served["totalItems"] == 1
    assert not (blog.root / "public/ap/posts/liked/shares.json").exists()
    assert blog.get("/ap/posts/liked/shares.json").json()["totalItems"] == 0
