"""Comment pages (``bridge/site/comment_pages.py``): the post's page shows the newest page
of its replies, older pages link to each other, every reply is on exactly one page, and a
new reply renders only the page it lands on."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mf2py
import pytest

from bridge.config import load as load_config
from bridge.errors import ConfigError
from bridge.site import comment_cards, comment_pages, pages
from bridge.site.build import BuildResult
from bridge.site.comments import CommentStore
from bridge.site.posts import Comment
from bridge.site.threads import Thread
from tests.site.test_threads import reply

Build = Callable[..., BuildResult]
POST = "quick-note"
POST_URL = "https://blog.example/posts/quick-note/"


def reply_comment(n: int, **extra: Any) -> Comment:
    """``test_threads.reply`` whose text ``_shown`` finds."""
    return reply(n, **{"content": f"<p>Reply number {n}.</p>", **extra})


def _shown(html: str) -> list[int]:
    """The replies a page prints, by number, in order."""
    return [int(n) for n in re.findall(r"Reply number (\d+)\.", html)]


def _thread(n: int, *children: Thread) -> Thread:
    return Thread(reply_comment(n), tuple(children))


# ---- the pure part ------------------------------------------------------------------------


def test_split_keeps_whole_threads_and_zero_means_one_page() -> None:
    threads = [_thread(1, _thread(2), _thread(3)), _thread(4), _thread(5)]
    assert comment_pages.split(threads, 2) == [tuple(threads[:2]), (threads[2],)]
    assert comment_pages.split(threads, 0) == [tuple(threads)]
    assert comment_pages.split(threads, 3) == [tuple(threads)]
    assert comment_pages.split([], 2) == [()]
    assert comment_pages.replies(threads) == 5


def test_threads_go_to_pages_by_arrival_and_stay_in_written_order_within_one() -> None:
    def arrived(n: int, minute: int) -> Thread:
        at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minute)
        return Thread(reply_comment(n, received=at), ())

    # In written order 1..4; 1 and 3 arrived last (a server catching up).
    threads = [arrived(1, 9), arrived(2, 1), arrived(3, 8), arrived(4, 2)]
    assert comment_pages.split(threads, 2) == [(threads[1], threads[3]), (threads[0], threads[2])]


def test_places_link_the_pages_and_the_post_page_counts_the_older_replies(site: Path) -> None:
    config = load_config(site)
    threads = [_thread(1, _thread(2)), _thread(3), _thread(4), _thread(5), _thread(6)]
    first, second, last = comment_pages.places(config, POST, comment_pages.split(threads, 2))
    assert (first.number, first.older_url) == (1, "")
    assert first.newer_url == POST_URL + "comments/2/"
    assert second.older_url == POST_URL + "comments/1/"
    assert second.newer_url == POST_URL + "#comments"  # the newest page is the post's
    assert (last.number, last.newer_url, last.older_url) == (3, "", POST_URL + "comments/2/")
    assert last.older_replies == 5 and first.older_replies is None
    (only,) = comment_pages.places(config, POST, comment_pages.split(threads, 0))
    assert (only.older_url, only.newer_url, only.older_replies) == ("", "", 0)


def test_a_page_digest_changes_with_its_replies_files_and_places_only() -> None:
    page = [_thread(1, _thread(2)), _thread(3)]
    hashes = {f"{n:020x}": bytes([n]) * 32 for n in range(1, 5)}
    digest = comment_pages.page_digest(page, hashes)
    assert comment_pages.page_digest(page, {**hashes, f"{4:020x}": b"x" * 32}) == digest
    assert comment_pages.page_digest(page, {**hashes, f"{2:020x}": b"x" * 32}) != digest
    flat = [_thread(1), _thread(2), _thread(3)]  # the same replies, not nested
    assert comment_pages.page_digest(flat, hashes) != digest


# ---- built -------------------------------------------------------------------------------


@pytest.fixture
def paged(make_site: Callable[..., Path]) -> Path:
    """The test site with two top-level replies a page, five of them (the first with a
    nested reply), a like and a pending reply on the quick note."""
    site = make_site({"comments_per_page": 2})
    store = CommentStore(load_config(site).content_dir)
    for n in range(1, 6):
        store.write(POST, reply_comment(n))
    store.write(POST, reply_comment(7, in_reply_to="https://far.example/notes/1"))
    store.write(POST, reply_comment(8, status="pending"))
    store.write(POST, reply_comment(9, type="like", content=""))
    return site


def _walk(out: Path) -> list[tuple[str, list[int]]]:
    """From the post's page, follow the older links to page 1: (page, replies shown)."""
    rel, seen = f"posts/{POST}/index.html", []
    while rel:
        html = (out / rel).read_text(encoding="utf-8")
        seen.append((rel, _shown(html)))
        older = re.search(r'<nav class="pagination comment-pages".*?</nav>', html, re.S)
        link = re.search(r'href="https://blog\.example/([^"]*)">←', older[0]) if older else None
        rel = link[1] + "index.html" if link else ""
        assert len(seen) <= 100, "the older links loop"
    return seen


def test_the_post_page_shows_the_newest_page_and_links_to_every_older_one(
    paged: Path, build_site: Build
) -> None:
    out = build_site(paged).out_dir
    walked = _walk(out)
    assert walked == [
        (f"posts/{POST}/index.html", [5]),
        (f"posts/{POST}/comments/2/index.html", [3, 4]),
        (f"posts/{POST}/comments/1/index.html", [1, 7, 2]),  # a nested reply stays with it
    ]
    post = (out / f"posts/{POST}/index.html").read_text(encoding="utf-8")
    assert "← 5 older replies</a>" in post
    assert 'class="p-like' in post  # reactions are the post page's
    older = (out / f"posts/{POST}/comments/2/index.html").read_text(encoding="utf-8")
    assert f'<a href="{POST_URL}#comments">Newer replies →</a>' in older
    assert f'<link rel="canonical" href="{POST_URL}comments/2/">' in older
    assert 'class="p-like' not in older and "Reply number 8." not in post + older
    assert not (out / f"posts/{POST}/comments/3").exists()  # the newest is the post's page


def test_an_older_page_is_the_post_s_h_entry_with_its_replies(
    paged: Path, build_site: Build
) -> None:
    out = build_site(paged).out_dir
    html = (out / f"posts/{POST}/comments/1/index.html").read_text(encoding="utf-8")
    items = mf2py.parse(doc=html, url=POST_URL + "comments/1/")["items"]
    (entry,) = [i for i in items if "h-entry" in i["type"]]
    assert entry["properties"]["url"] == [POST_URL]
    comments = entry["properties"]["comment"]
    assert [c["properties"]["content"][0]["value"] for c in comments] == [
        "Reply number 1.",
        "Reply number 2.",
    ]


def test_a_new_reply_renders_only_the_page_it_lands_on(
    paged: Path, build_site: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_site(paged)
    rendered: list[int] = []
    real = pages.Renderer.comments

    def spy(self: pages.Renderer, post: Any, threads: Any, place: Any, ap_id: str) -> bytes:
        rendered.append(place.number)
        return real(self, post, threads, place, ap_id)

    monkeypatch.setattr(pages.Renderer, "comments", spy)
    store = CommentStore(load_config(paged).content_dir)
    # Dated before every other reply, it still arrived last: the newest page, no other.
    store.write(POST, reply_comment(12, published=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    result = build_site(paged)
    assert rendered == []
    assert f"posts/{POST}/index.html" in result.changed
    assert _shown((result.out_dir / f"posts/{POST}/index.html").read_text()) == [12, 5]
    store.write(POST, reply_comment(10))  # the newest page was full: a page opens
    cards: list[str] = []
    render_card = comment_cards.PostCards._render

    def card_spy(self: comment_cards.PostCards, context: Any, template: str, values: Any) -> Any:
        cards.append(f"{self.slug} {template}")
        return render_card(self, context, template, values)

    monkeypatch.setattr(comment_cards.PostCards, "_render", card_spy)
    result = build_site(paged)
    assert rendered == [2, 3]  # page 3 is new; page 2's newer link now points at it
    # Page 3's cards were the post page's: taken from its rows, not rendered again.
    assert cards == [f"{POST} _comment.html"]  # the new reply's, on the post's page
    assert [shown for _, shown in _walk(result.out_dir)] == [[10], [12, 5], [3, 4], [1, 7, 2]]
    rendered.clear()
    store.write(POST, reply_comment(11, in_reply_to="https://far.example/notes/3"))  # page 2
    result = build_site(paged)
    assert rendered == [2]
    assert f"posts/{POST}/comments/1/index.html" not in result.changed
    assert _walk(result.out_dir)[2][1] == [3, 11, 4]


def test_pages_go_when_their_replies_do(paged: Path, build_site: Build) -> None:
    out = build_site(paged).out_dir
    store = CommentStore(load_config(paged).content_dir)
    for n in (1, 2, 7):
        assert store.delete(f"{n:020x}")
    result = build_site(paged)
    assert [shown for _, shown in _walk(out)] == [[5], [3, 4]]
    assert f"posts/{POST}/comments/2/index.html" in result.changed
    assert not (out / f"posts/{POST}/comments/2").exists()


def test_zero_puts_every_reply_on_the_post_page(
    make_site: Callable[..., Path], build_site: Build
) -> None:
    site = make_site({"comments_per_page": 0})
    store = CommentStore(load_config(site).content_dir)
    for n in range(1, 80):
        store.write(POST, reply_comment(n))
    out = build_site(site).out_dir
    assert _shown((out / f"posts/{POST}/index.html").read_text()) == list(range(1, 80))
    assert not (out / f"posts/{POST}/comments").exists()


def test_a_theme_that_never_prints_comment_pages_gets_every_reply_on_the_post_page(
    paged: Path, build_site: Build
) -> None:
    """A theme written before comment pages would show no way to the older ones."""
    own_dir, stock_dir = load_config(paged).theme_dirs
    stock = (stock_dir / "_comments.html").read_text()
    own = stock.replace('{% include "_comment_pages.html" %}', "")
    assert own != stock
    own_dir.mkdir(parents=True, exist_ok=True)
    (own_dir / "_comments.html").write_text(own)
    out = build_site(paged).out_dir
    assert _shown((out / f"posts/{POST}/index.html").read_text()) == [1, 7, 2, 3, 4, 5]
    assert not (out / f"posts/{POST}/comments").exists()


def test_pruning_keeps_the_cards_of_a_post_s_older_pages(tmp_path: Path) -> None:
    cards = comment_cards.CardFile(tmp_path / comment_cards.FILE)
    for page in (POST, f"{POST}#1", "gone", "gone#2"):
        cards.write(page, {b"k": "<li>card</li>"}, [])
    cards.prune([POST])
    assert cards.read(f"{POST}#1") == {b"k": "<li>card</li>"}
    assert cards.read(POST) and not cards.read("gone") and not cards.read("gone#2")


@pytest.mark.parametrize("value", [-1, 10_001, "50", True])
def test_comments_per_page_must_be_a_count(make_site: Callable[..., Path], value: Any) -> None:
    site = make_site({"comments_per_page": value})
    with pytest.raises(ConfigError, match=r"comments_per_page.* whole number from 0 to 10000"):
        load_config(site)


def test_pages_opened_at_once_print_the_cards_the_post_page_kept(
    make_site: Callable[..., Path], build_site: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older pages are rendered before the post's page, whose render drops the rows of
    the cards it no longer prints (once they outnumber those it does)."""
    site = make_site({"comments_per_page": 100})
    store = CommentStore(load_config(site).content_dir)
    for n in range(1, 101):
        store.write(POST, reply_comment(n))
    build_site(site)  # one page: the post's keeps 100 cards
    toml = site / "site.toml"
    toml.write_text(toml.read_text().replace("comments_per_page = 100", "comments_per_page = 2"))
    rendered: list[str] = []
    render_card = comment_cards.PostCards._render

    def card_spy(self: comment_cards.PostCards, context: Any, template: str, values: Any) -> Any:
        rendered.append(self.slug)
        return render_card(self, context, template, values)

    monkeypatch.setattr(comment_cards.PostCards, "_render", card_spy)
    out = build_site(site).out_dir
    assert len(_walk(out)) == 50
    assert rendered == []  # 49 older pages took all 98 of their cards from the post page's
