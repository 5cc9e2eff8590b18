"""The list pages' keys kept by a process equal the keys made anew, and render the new
posts (``bridge.site.plan_lists``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bridge import config as config_mod
from bridge.site import content, plan_lists
from bridge.site.plan_keys import shown_in_list, whole_post
from bridge.site.posts import Post

TEMPLATES = ("index-digest", "tag-digest", "archive-digest")


def _posts(site: Path) -> list[Post]:
    posts, _ = content.load(config_mod.load(site))
    return posts


def _lists(posts: list[Post], entry: plan_lists.Entry = shown_in_list) -> plan_lists.Lists:
    return plan_lists.lists(posts, "base", TEMPLATES, (entry, entry), 2)


def _fresh(posts: list[Post], entry: plan_lists.Entry = shown_in_list) -> plan_lists.Lists:
    plan_lists.forget()
    return _lists(posts, entry)


def _keys(lists: plan_lists.Lists) -> tuple[object, ...]:
    return (
        [(p, k, [x.slug for x in c]) for p, k, c in lists.home],
        [(s, t, k, [x.slug for x in g]) for s, t, k, g in lists.tags],
        lists.archive,
    )


def _swapped(posts: list[Post], **changes: object) -> tuple[list[Post], Post]:
    """``posts`` with its first titled, summarised, tagged post replaced by a changed copy."""
    i = next(i for i, p in enumerate(posts) if p.title and p.summary and p.tags)
    new = dataclasses.replace(posts[i], **changes)  # type: ignore[arg-type]
    return [*posts[:i], new, *posts[i + 1 :]], new


def test_a_body_edit_keeps_the_keys_and_lists_the_new_post(site: Path) -> None:
    posts = _posts(site)
    before = _fresh(posts)
    edited, new = _swapped(posts, body="changed", html="<p>changed</p>", digest="0" * 64)
    kept = _lists(edited)
    assert kept.made_of == before.made_of and kept.archive == before.archive
    assert _keys(kept) == _keys(_fresh(edited))  # the same keys as made anew
    assert any(new in chunk for _, _, chunk in kept.home)
    slugs = {kept.slugs[tag] for tag in new.tags}
    assert slugs and all(new in tagged for slug, _, _, tagged in kept.tags if slug in slugs)
    listed = [p for _, _, chunk in kept.home for p in chunk]
    assert not [p for p in listed if p.slug == new.slug and p is not new]


def test_a_title_edit_re_keys_only_the_pages_that_show_the_post(site: Path) -> None:
    posts = _posts(site)
    before = _fresh(posts)
    retitled, new = _swapped(posts, title="Another title")
    made = _lists(retitled)
    assert _keys(made) == _keys(_fresh(retitled))
    old_home = {path: key for path, key, _ in before.home}
    changed_home = {path for path, key, _ in made.home if key != old_home[path]}
    assert changed_home == {path for path, _, chunk in made.home if new in chunk}
    old_tags = {slug: key for slug, _, key, _ in before.tags}
    changed_tags = {slug for slug, _, key, _ in made.tags if key != old_tags[slug]}
    assert changed_tags == {made.slugs[tag] for tag in new.tags}
    assert made.archive != before.archive


def test_a_date_edit_or_another_entry_makes_the_lists_anew(site: Path) -> None:
    posts = _posts(site)
    _fresh(posts)
    redated, _ = _swapped(posts, date=posts[-1].date)
    assert _keys(_lists(redated)) == _keys(_fresh(redated))
    # A site's own entry template: the whole post counts, so a body edit re-keys its lists.
    before = _fresh(posts, whole_post)
    edited, new = _swapped(posts, body="changed", digest="0" * 64)
    whole = _lists(edited, whole_post)
    assert _keys(whole) == _keys(_fresh(edited, whole_post))
    old_tags = {slug: key for slug, _, key, _ in before.tags}
    assert {s for s, _, k, _ in whole.tags if k != old_tags[s]} == {
        whole.slugs[tag] for tag in new.tags
    }
    assert whole.archive == before.archive  # a titled post's body is not in the archive
