"""Imported posts keep their old URLs working: the build writes 301 rules from each
post's ``original_url`` for static hosts, and the daemon answers them itself, over real
loopback HTTP. The daemon's own trailing-slash redirect stays on the site."""

from __future__ import annotations

from tests.e2e.blog import Blog


def test_old_urls_of_imported_posts_redirect_to_their_new_pages(blog: Blog) -> None:
    old = f"{blog.base_url}/2019/03/fish-and-chips/"
    blog.write_post("fish-and-chips-recipe", "Salt and vinegar.", original_url=old)
    blog.write_post("wp-item", "From WordPress.", original_url=f"{blog.base_url}/?p=123")
    blog.write_post("elsewhere", "Moved in.", original_url="https://old.example/a-post/")
    blog.start()

    rules = (blog.root / "public" / "_redirects").read_text(encoding="utf-8")
    assert "/2019/03/fish-and-chips/ /posts/fish-and-chips-recipe/ 301" in rules
    assert "/a-post/ " in rules and f"{blog.base_url}/posts/elsewhere/ 301" in rules
    nginx = (blog.root / "public" / "nginx-redirects.conf").read_text(encoding="utf-8")
    assert "/2019/03/fish-and-chips/ /posts/fish-and-chips-recipe/;" in nginx

    moved = blog.get("/2019/03/fish-and-chips/", follow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["location"] == "/posts/fish-and-chips-recipe/"
    query = blog.get("/?p=123", follow_redirects=False)
    assert (query.status_code, query.headers["location"]) == (301, "/posts/wp-item/")
    assert blog.get("/2019/03/never-was/", follow_redirects=False).status_code == 404


def test_a_doubled_slash_never_redirects_off_the_site(blog: Blog) -> None:
    blog.write_post("hello", "Hi.")
    blog.start()
    answer = blog.get("//posts", follow_redirects=False)
    assert answer.status_code == 301
    assert answer.headers["location"] == "/posts/"  # not the protocol-relative //posts/
