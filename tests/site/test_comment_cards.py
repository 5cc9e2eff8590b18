"""Rendered comment cards kept between builds (``bridge.site.comment_cards``): reused only
where rendering again would print the same, and never a reason for a wrong page."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from bridge import config
from bridge.site import comment_cards
from bridge.site.build import build
from bridge.site.comments import CommentStore
from bridge.site.posts import Comment, CommentAuthor

SLUG = "first-article"


def reply(n: int, text: str, parent: str = "") -> Comment:
    return Comment(
        id=f"{n:020x}",
        type="reply",
        protocol="activitypub",
        source=f"https://a.example/notes/{n}",
        target=f"https://blog.example/posts/{SLUG}/",
        author=CommentAuthor(name=f"Person {n}", url=f"https://a.example/users/{n}"),
        content=f"<p>{text}</p>",
        published=dt.datetime(2026, 1, 1, 12, n, tzinfo=dt.UTC),
        in_reply_to=parent,
        object_id=f"https://a.example/notes/{n}",
    )


def rows(site: Path) -> dict[bytes, str]:
    path = config.load(site).cache_dir / comment_cards.FILE
    con = sqlite3.connect(path)
    try:
        return {bytes(k): h for k, h in con.execute("SELECT key, html FROM cards")}
    finally:
        con.close()


def page(site: Path) -> str:
    cfg = config.load(site)
    build(cfg)
    return (cfg.output_dir / "posts" / SLUG / "index.html").read_text(encoding="utf-8")


def tamper(site: Path, old: str, new: str) -> None:
    """Change the text of every kept card: a page showing ``new`` was made from them."""
    path = config.load(site).cache_dir / comment_cards.FILE
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE cards SET html = replace(html, ?, ?)", (old, new))
    con.close()


@pytest.fixture
def store(site: Path) -> CommentStore:
    return CommentStore(config.load(site).content_dir)


def test_a_card_is_rendered_once_and_reused_until_its_reply_changes(
    site: Path, store: CommentStore
) -> None:
    store.write(SLUG, reply(1, "first words"))
    store.write(SLUG, reply(2, "second words"))
    first = page(site)
    assert "first words" in first and "second words" in first
    kept = rows(site)
    assert sum("first words" in h for h in kept.values()) == 1
    # Reused: a page rendered again prints the kept card, not a new render.
    tamper(site, "first words", "KEPT CARD")
    store.write(SLUG, reply(3, "third words"))  # the page is rendered again
    second = page(site)
    assert "KEPT CARD" in second and "third words" in second
    # A changed reply is a new key: rendered again from its file.
    store.write(SLUG, reply(1, "edited words"))
    third = page(site)
    assert "edited words" in third and "KEPT CARD" not in third


def test_a_nested_reply_renders_its_parent_card_again(site: Path, store: CommentStore) -> None:
    store.write(SLUG, reply(1, "parent words"))
    page(site)
    tamper(site, "parent words", "KEPT PARENT")
    store.write(SLUG, reply(2, "child words", parent="https://a.example/notes/1"))
    shown = page(site)
    assert "parent words" in shown and "KEPT PARENT" not in shown
    assert shown.index("parent words") < shown.index("child words")


def test_cards_are_the_same_bytes_as_rendering_every_time(
    site: Path, store: CommentStore, tmp_path: Path
) -> None:
    for n in range(1, 6):
        parent = "https://a.example/notes/1" if n in (3, 4) else ""
        store.write(SLUG, reply(n, f"words {n} <b>&amp;</b>", parent=parent))
    first = page(site)
    cfg = config.load(site)
    (cfg.cache_dir / comment_cards.FILE).unlink()  # nothing kept: every card rendered
    store.write(SLUG, reply(6, "words 6"))
    page(site)
    assert len(rows(site)) == 7  # 6 written here and the test site's own reply
    store.delete(reply(6, "").id)
    assert page(site) == first


def test_a_changed_card_template_renders_every_post_page_again(
    site: Path, store: CommentStore
) -> None:
    store.write(SLUG, reply(1, "some words"))
    page(site)
    themed = site / "templates"
    themed.mkdir(exist_ok=True)
    default = Path(comment_cards.__file__).parents[2] / "site_template/templates/_comment.html"
    source = default.read_text(encoding="utf-8")
    (themed / "_comment.html").write_text(
        source.replace('<p class="small via">', '<p class="small via">NEW THEME '),
        encoding="utf-8",
    )
    assert "NEW THEME" in page(site)  # the post page's key names the card template


def test_a_card_that_reads_more_than_its_key_is_never_kept(site: Path, store: CommentStore) -> None:
    themed = site / "templates"
    themed.mkdir(exist_ok=True)
    (themed / "_comment.html").write_text(
        "<li>{{ node.comment.content | sanitize }} on {{ post.title }}</li>", encoding="utf-8"
    )
    store.write(SLUG, reply(1, "some words"))
    shown = page(site)
    assert "some words</p> on " in shown
    path = config.load(site).cache_dir / comment_cards.FILE
    assert not path.exists() or not rows(site)


def test_an_unusable_cards_file_only_costs_the_render(site: Path, store: CommentStore) -> None:
    cfg = config.load(site)
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    (cfg.cache_dir / comment_cards.FILE).write_bytes(b"not a database" * 100)
    store.write(SLUG, reply(1, "some words"))
    assert "some words" in page(site)


def test_a_node_hash_covers_every_field_of_a_thread() -> None:
    """``node_hash`` stands for ``repr(node)``: it hashes the comment and the nested
    threads, so a field added to ``Thread`` must be added to it."""
    import dataclasses

    from bridge.site.threads import Thread

    assert [f.name for f in dataclasses.fields(Thread)] == ["comment", "children"]


def like(n: int, kind: str = "like") -> Comment:
    return Comment(
        id=f"{n:020x}",
        type=kind,
        protocol="activitypub",
        source=f"https://a.example/likes/{n}",
        target=f"https://blog.example/posts/{SLUG}/",
        author=CommentAuthor(name=f"Fan {n}", url=f"https://a.example/users/{n}"),
        content="",
        published=dt.datetime(2026, 1, 1, 12, n, tzinfo=dt.UTC),
    )


def test_a_facepile_entry_is_a_card_keyed_on_its_kind_too(site: Path, store: CommentStore) -> None:
    store.write(SLUG, like(1))
    store.write(SLUG, like(2, "repost"))
    first = page(site)
    assert 'class="p-like h-cite"' in first and 'class="p-repost h-cite"' in first
    tamper(site, "Fan 1", "KEPT FAN")
    store.write(SLUG, like(3))
    second = page(site)
    assert "KEPT FAN" in second and "Fan 3" in second
    assert second.count('class="p-repost h-cite"') == 1  # the boost's card is its own


def test_the_cards_of_a_post_without_comments_now_are_dropped(
    site: Path, store: CommentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(comment_cards, "PRUNE_EVERY", 0.0)
    store.write(SLUG, reply(1, "soon gone"))
    page(site)
    assert any("soon gone" in h for h in rows(site).values())
    for comment in store.by_post()[SLUG]:
        store.delete(comment.id)
    assert "soon gone" not in page(site)
    assert rows(site) == {}


def test_a_card_that_reads_a_site_variable_is_keyed_on_it(site: Path, store: CommentStore) -> None:
    """``jinja2.meta.find_undeclared_variables`` does not report the environment's globals
    (``site``, ``menu``, ``live_reload``), so every key holds them all."""
    themed = site / "templates"
    themed.mkdir(exist_ok=True)
    (themed / "_comment.html").write_text(
        "<li>{{ node.comment.content | sanitize }} on {{ site.title }}</li>", encoding="utf-8"
    )
    store.write(SLUG, reply(1, "some words"))
    assert "some words</p> on " in page(site)
    toml = site / "site.toml"
    text = toml.read_text(encoding="utf-8")
    title = config.load(site).title
    toml.write_text(text.replace(f'"{title}"', '"A New Title"', 1), encoding="utf-8")
    assert "some words</p> on A New Title" in page(site)
