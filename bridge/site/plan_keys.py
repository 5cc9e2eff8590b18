"""What the plan's keys are made of: the hash of an output's parts, and what a list
page (the home pages, a tag page) shows of each post."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from bridge.config import DEFAULT_THEME
from bridge.site.pages import Renderer
from bridge.site.posts import Post


def key_of(*parts: str | bytes) -> str:
    """The key of an output: a hash of the parts it is made from, each followed by a NUL
    (text parts joined first: one ``update`` instead of two a part, for 30,000 keys)."""
    if all(type(p) is str for p in parts):
        return hashlib.sha256(("\0".join(parts) + "\0").encode()).hexdigest()  # type: ignore[arg-type]
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()


def stock_templates(renderer: Renderer, name: str) -> bool:
    """Whether ``name`` and every template it uses are the default theme's files."""
    import jinja2

    names = renderer.template_names(name)
    if names is None:
        return False
    stock = (DEFAULT_THEME / "templates").resolve()
    for dep in names:
        try:
            _, filename, _ = renderer.env.loader.get_source(renderer.env, dep)  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:
            return False
        if filename is None or not Path(filename).resolve().is_relative_to(stock):
            return False
    return True


def whole_post(post: Post) -> str:
    return post.digest


def shown_in_list(post: Post) -> str:
    """What the default ``_entry.html`` shows of a post: a note's or an unsummarised
    post's text (so its digest), else only its front matter.  Kept on the post (a
    frozen value): a home page and each tag page ask for it again."""
    shown = post.__dict__.get("_shown_in_list")
    if shown is None:
        text = post.digest if post.title is None or not post.summary else ""
        parts = (post.slug, post.title or "", post.summary or "", post.content_warning or "")
        shown = repr((*parts, post.date.isoformat(), post.tags, post.pinned, text))
        object.__setattr__(post, "_shown_in_list", shown)
    return str(shown)


def ids(posts: list[Post]) -> Iterator[str]:
    return (f"{p.slug}:{p.digest}" for p in posts)
