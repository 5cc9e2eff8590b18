"""Deleted and re-created posts over real loopback HTTP: the daemon answers 410 Gone on a
deleted post's page and ids, content negotiation follows the live id, and the build
writes the same gone paths as rules for static hosts."""

from __future__ import annotations

from bridge import config
from bridge.site import gone
from tests.e2e.blog import Blog

AP = "application/activity+json"


def test_deleted_post_answers_410_and_a_recreated_one_its_new_id(blog: Blog) -> None:
    blog.write_post("gone", "Soon gone.", title="Gone")
    blog.start()
    blog.cli("publish", "--no-webmentions")
    first = f"{blog.base_url}/ap/posts/gone.json"
    assert blog.get("/posts/gone/", headers={"Accept": AP}).json()["id"] == first

    (blog.root / "content" / "posts" / "gone.md").unlink()
    out = blog.cli("publish", "--no-webmentions").stdout
    assert "1 deleted" in out
    page = blog.get("/posts/gone/")
    assert page.status_code == 410 and "deleted" in page.text
    assert blog.get("/posts/gone").status_code == 410
    assert blog.get("/posts/gone/comments/1/").status_code == 410  # below the page: gone too
    tomb = blog.get("/ap/posts/gone.json")
    assert tomb.status_code == 410 and tomb.headers["content-type"].startswith(AP)
    assert tomb.json()["type"] == "Tombstone" and tomb.json()["id"] == first
    assert blog.get("/ap/posts/gone/create.json").status_code == 410
    assert blog.get("/posts/never-was/").status_code == 404  # unknown stays 404
    # What `indiebridge doctor` checks: the same URLs, answered 410 here by the daemon.
    sample = gone.sample(config.load(blog.root))
    page = f"{blog.base_url}/posts/gone/"
    assert sample == (page, page + "comments/1/", first)

    # The rules for static hosts name the same paths (real nginx and Caddy run them in
    # tests/deploy/test_gone_rules.py).
    rules = (blog.root / "public" / "_gone.nginx").read_text()
    for path in ("/ap/posts/gone.json", "/ap/posts/gone/create.json"):
        assert f"location = {path} {{ return 410; }}" in rules
    assert "location ^~ /posts/gone/ {" in rules and "location = /posts/gone {" in rules
    redirects = (blog.root / "public/_redirects").read_text()
    assert "/ap/posts/gone.json  /_gone.html  410" in redirects
    assert "/posts/gone/*  /_gone.html  410" in redirects
    assert "@gone path /ap/posts/gone.json " in (blog.root / "public" / "_gone.caddy").read_text()

    # Written again under the same slug: a fresh id, served at the page's alternate link.
    blog.write_post("gone", "Back again.", title="Gone")
    out = blog.cli("publish", "--no-webmentions").stdout
    assert "1 new" in out
    second = f"{blog.base_url}/ap/posts/gone/g2.json"
    assert blog.get("/posts/gone/").status_code == 200
    assert f'type="application/activity+json" href="{second}"' in blog.html("/posts/gone/")
    negotiated = blog.get("/posts/gone/", headers={"Accept": AP})
    assert negotiated.status_code == 200 and negotiated.json()["id"] == second
    assert blog.get("/ap/posts/gone/g2.json").json()["id"] == second
    assert blog.get("/ap/posts/gone.json").status_code == 410  # the old id stays gone
    rules = (blog.root / "public" / "_gone.nginx").read_text()
    assert "location = /ap/posts/gone.json { return 410; }" in rules
    assert "/posts/gone {" not in rules and "/posts/gone/ {" not in rules  # the page is back
    assert gone.sample(config.load(blog.root)) == (first,)  # doctor still checks the old id
