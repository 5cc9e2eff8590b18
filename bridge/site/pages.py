"""HTML pages: one compiled Jinja2 environment and the context each template receives.

Templates are looked up in the site's own ``templates/`` first, then in the default theme
(``site_template/templates``), so a site overrides any template by name.  Template
variables are listed in docs/themes.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
from markupsafe import Markup

from bridge.config import SiteConfig
from bridge.site import comment_cards, comment_pages, opengraph, template_errors
from bridge.site.comment_pages import CommentPages
from bridge.site.image_size import ImageSizes
from bridge.site.posts import MenuItem, Page, Post, tag_slug
from bridge.site.template_refs import TemplateRefs
from bridge.site.threads import Reactions, Thread

TEMPLATES = (
    "base.html",
    "index.html",
    "post.html",
    "page.html",
    "tag.html",
    "archive.html",
    "404.html",
    "comments.html",
)
_READ: dict[tuple[str, str], frozenset[str] | None] = {}
"""(template, its digest) -> ``Renderer.variables_read``, once per process."""


def _human_date(value: dt.datetime) -> str:
    return f"{value.day} {value.strftime('%B %Y')}"


def _iso(value: dt.datetime) -> str:
    """ISO 8601; a fraction of a second keeps at most 3 digits, as HTML's ``datetime``
    attribute allows (servers send microseconds, which the Nu Html Checker rejects)."""
    if value.microsecond:
        return value.isoformat(timespec="milliseconds")
    return value.isoformat()


def _sanitize(value: str) -> Markup:
    from bridge.site.sanitize import sanitize_html

    # Comment content: custom emoji images (only the site's stored files) may stay.
    return Markup(sanitize_html(value, limit=None, emoji=True))  # noqa: S704 - nh3, allow-list


def _safe_url(value: str) -> str:
    """Only absolute http(s) URLs reach an href/src; anything else becomes empty."""
    from bridge.site.sanitize import http_url

    return http_url(value)


class Renderer:
    """Renders every page of a site from one compiled environment."""

    def __init__(
        self, config: SiteConfig, *, live_reload: bool = False, pages: Sequence[Page] = ()
    ) -> None:
        self.config = config
        self.live_reload = live_reload
        self.menu = menu(config, pages)
        loader = jinja2.FileSystemLoader([str(p) for p in config.theme_dirs])
        self.env = jinja2.Environment(
            loader=loader,
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
            bytecode_cache=_bytecode_cache(config),
        )
        self.env.filters["human_date"] = _human_date
        self.env.filters["iso"] = _iso
        self.env.filters["tag_slug"] = tag_slug
        # Comment files are data from strangers: cleaned again at render time, so a page
        # never depends on how a file got there (a backup, a merge, a hand edit).
        self.env.filters["sanitize"] = _sanitize
        self.env.filters["safe_url"] = _safe_url
        self.env.globals["site"] = self._site_vars()
        self.env.globals["live_reload"] = live_reload
        self.env.globals["menu"] = self.menu
        self._templates: dict[str, jinja2.Template] = {}
        self._digests: dict[str, str] = {}
        self._refs = TemplateRefs(config.cache_dir / "template-refs.json")
        self._cards: comment_cards.Cards | None = None
        self.image_sizes = ImageSizes(config)

    def _site_vars(self) -> dict[str, Any]:
        c = self.config
        return {
            "title": c.title,
            "description": c.description,
            "language": c.language,
            "base_url": c.base_url,
            "handle": c.handle,
            "actor_id": c.actor_id,
            "webmention_url": c.webmention_url,
            "interact_url": c.federation_url + "/interact",  # remote follow/reply/like form
            "author": c.author,
            "avatar": (
                c.author.avatar
                if c.author.avatar.startswith(("http://", "https://"))
                else (c.base_url + "/" + c.author.avatar.lstrip("/") if c.author.avatar else "")
            ),
            "also_known_as": c.also_known_as,
            "preview_of": c.preview_of,  # the real base_url when this is a local preview
        }

    def template(self, name: str) -> jinja2.Template:
        tpl = self._templates.get(name)
        if tpl is None:
            with template_errors.reported(self.config, name):
                tpl = self._templates[name] = self.env.get_template(name)
        return tpl

    def template_names(self, name: str) -> list[str] | None:
        """``name`` and every template it extends, includes or imports, transitively,
        sorted; None when one of them names a template by a variable (it could be any)."""
        names: set[str] = set()
        stack = [name]
        while stack:
            current = stack.pop()
            if current in names:
                continue
            names.add(current)
            try:
                source, filename, _ = self.env.loader.get_source(self.env, current)  # type: ignore[union-attr]
            except jinja2.TemplateNotFound:
                continue  # rendering will say so; its absence is part of the digest
            for ref in self._refs.refs(
                current, source, partial(self._parse, current, source, filename)
            ):
                if ref is None:
                    return None
                stack.append(ref)
        return sorted(names)

    def _parse(self, name: str, source: str, filename: str | None) -> jinja2.nodes.Template:
        # Parsed with its name, so a syntax error reads as it would when rendering.
        with template_errors.reported(self.config, name):
            return self.env.parse(source, name=name, filename=filename)

    def template_digest(self, name: str) -> str:
        """Hash of the templates in effect for ``name`` (itself, what it extends and
        includes): a change to one re-renders only the pages that use it."""
        digest = self._digests.get(name)
        if digest is None:
            names = self.template_names(name)
            if names is None:
                digest = self.theme_digest()
            else:
                h = hashlib.sha256()
                for dep in names:
                    try:
                        source, _, _ = self.env.loader.get_source(self.env, dep)  # type: ignore[union-attr]
                    except jinja2.TemplateNotFound:
                        source = "\0missing"
                    h.update(dep.encode() + b"\0" + source.encode() + b"\0")
                digest = h.hexdigest()
            self._digests[name] = digest
        return digest

    def theme_digest(self) -> str:
        """Hash of every template file in effect: a change re-renders pages using it."""
        h = hashlib.sha256()
        for name in sorted(self.env.list_templates()):
            source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
            h.update(name.encode() + b"\0" + source.encode() + b"\0")
        return h.hexdigest()

    def render(self, name: str, **context: Any) -> str:
        template = self._prepared(name, context)
        with template_errors.reported(self.config, name):
            return template.render(**context)

    def render_utf8(self, name: str, **context: Any) -> bytes:
        """``render``'s text as UTF-8, encoded piece by piece as the template yields it, so
        the page is never one string as well as its bytes.  For a post with 10,000
        replies (an 8.8 MB page) that string was 17.5 MB: a str holding one character
        beyond Latin-1 takes two or four bytes for every character."""
        template = self._prepared(name, context)
        with template_errors.reported(self.config, name):
            return b"".join([piece.encode() for piece in template.generate(**context)])

    def _prepared(self, name: str, context: dict[str, Any]) -> jinja2.Template:
        """The template ``name``, with the link previews' values added to ``context``."""
        if "opengraph" not in context and "canonical" in context:
            context["opengraph"] = opengraph.page_meta(
                self.config,
                title=context["page_title"],
                url=context["canonical"],
                post=context.get("post"),
                page=context.get("page"),
                sizes=self.image_sizes,
            )
        return self.template(name)

    # ---- page kinds ---------------------------------------------------------------

    def post(
        self,
        post: Post,
        *,
        threads: Sequence[Thread],
        reactions: Reactions,
        pages: CommentPages,
        newer: Post | None,
        older: Post | None,
        ap_id: str | None = None,
    ) -> bytes:
        """The post's page, UTF-8 (``render_utf8``: a post's comment section can be
        megabytes), showing ``threads``, the newest page of its replies
        (``comment_pages``).  ``ap_id``: the post's current ActivityStreams id (default:
        its first)."""
        c = self.config
        cards = comment_cards.PostCards(self.cards, post.slug)
        page = self.render_utf8(
            "post.html",
            post=post,
            content=Markup(post.html),  # noqa: S704 - our own Markdown output
            url=c.post_url(post.slug),
            ap_id=ap_id or c.post_ap_id(post.slug),
            threads=threads,
            reactions=reactions,
            comment_pages=pages,
            newer=newer,
            older=older,
            page_title=post.title or note_title(post),
            canonical=c.post_url(post.slug),
            **cards.functions(),
        )
        cards.save()
        return page

    def comments(
        self, post: Post, threads: Sequence[Thread], pages: CommentPages, ap_id: str
    ) -> bytes:
        """An older page of the post's replies (``comment_pages``), UTF-8; its cards are
        kept apart from the post page's (``PostCards``'s rows ``<slug>#<n>``)."""
        c = self.config
        cards = comment_cards.PostCards(
            self.cards, f"{post.slug}#{pages.number}", moved_from=post.slug
        )
        page = self.render_utf8(
            "comments.html",
            post=post,
            url=c.post_url(post.slug),
            ap_id=ap_id,
            threads=threads,
            comment_pages=pages,
            post_title=(title := post.title or note_title(post)),
            page_title=f"Replies to {title}, page {pages.number}",
            canonical=comment_pages.page_url(c, post.slug, pages.number),
            **cards.functions(),
        )
        cards.save()
        return page

    def variables_read(self, name: str) -> frozenset[str] | None:
        """The context variables ``name`` and every template it uses read
        (``jinja2.meta.find_undeclared_variables``), once per process and version of the
        templates; None when that cannot be known: a template named by a variable, or one
        missing or broken (rendering says what is wrong)."""
        key = (name, self.template_digest(name))
        if key not in _READ:
            _READ[key] = self._variables_read(name)
        return _READ[key]

    def _variables_read(self, name: str) -> frozenset[str] | None:
        names = self.template_names(name)
        if names is None:
            return None
        read: set[str] = set()
        for dep in names:
            try:
                source, _, _ = self.env.loader.get_source(self.env, dep)  # type: ignore[union-attr]
                read |= jinja2.meta.find_undeclared_variables(self.env.parse(source))
            except (jinja2.TemplateNotFound, jinja2.TemplateSyntaxError):
                return None
        return frozenset(read)

    def shows(self, name: str, variable: str) -> bool:
        """Whether ``name`` or a template it uses reads ``variable``; False when that
        cannot be known (``variables_read``)."""
        read = self.variables_read(name)
        return read is not None and variable in read

    def cards(self) -> comment_cards.Cards:
        """Rendered comment cards kept between builds (``comment_cards``)."""
        if self._cards is None:
            g = self.env.globals
            site_vars = repr((g["site"], g["menu"], g["live_reload"]))
            self._cards = comment_cards.Cards(
                self.env,
                comment_cards.card_file(self.config.cache_dir),
                self.template_digest,
                self.variables_read,
                site_vars,
                code=(__file__, str(Path(__file__).with_name("sanitize.py"))),
            )
        return self._cards

    def index(
        self,
        posts: Sequence[Post],
        *,
        number: int,
        pages: int,
        url: str,
        prev_url: str | None,
        next_url: str | None,
    ) -> str:
        return self.render(
            "index.html",
            posts=posts,
            number=number,
            pages=pages,
            prev_url=prev_url,
            next_url=next_url,
            page_title=self.config.title if number == 1 else f"{self.config.title} – page {number}",
            canonical=url,
        )

    def tag(self, tag: str, posts: Sequence[Post], url: str) -> str:
        return self.render("tag.html", tag=tag, posts=posts, page_title=f"#{tag}", canonical=url)

    def archive(self, posts: Sequence[Post], url: str) -> str:
        years: dict[int, list[Post]] = {}
        for p in posts:
            years.setdefault(p.date.year, []).append(p)
        return self.render(
            "archive.html",
            years=sorted(years.items(), reverse=True),
            posts=posts,
            page_title="Archive",
            canonical=url,
        )

    def not_found(self) -> str:
        return self.render(
            "404.html", page_title="Page not found", canonical=f"{self.config.base_url}/404.html"
        )

    def page(self, page: Page, url: str) -> str:
        return self.render(
            "page.html",
            page=page,
            content=Markup(page.html),  # noqa: S704 - our own Markdown output
            page_title=page.title,
            canonical=url,
        )


def menu(config: SiteConfig, pages: Sequence[Page]) -> tuple[MenuItem, ...]:
    """The pages marked ``menu: true``, lighter ``weight`` first, then by title."""
    listed = sorted((p for p in pages if p.menu), key=lambda p: (p.weight, p.title.casefold()))
    return tuple(MenuItem(p.title, f"{config.base_url}/{p.slug}/") for p in listed)


def _bytecode_cache(config: SiteConfig) -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs (keyed by each template's source): compiling
    the theme took 0.1 s of every rebuild."""
    folder = config.cache_dir / "jinja"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


def note_title(post: Post) -> str:
    import html as _html
    import re

    text = _html.unescape(re.sub(r"<[^>]+>", " ", post.html))
    text = " ".join(text.split())
    return text[:60].rsplit(" ", 1)[0] + "…" if len(text) > 60 else text or "Note"
