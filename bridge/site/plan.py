"""The output plan: every file of the site as a key and a way to render it, in order.

``Plan.outputs()`` is a chain of named steps, one per kind of output (as pelican names
each generator's output); nothing is rendered until the writer asks.  Each output's *key*
hashes everything it is made from (its inputs, the templates it uses, the settings): when
it matches the previous build's manifest, the output is neither rendered nor written.
The ActivityStreams documents (each post's object and Create, the actor, the outbox and
the collections: signed, kept and keyed) are ``plan_documents``'; the list pages' keys
``plan_lists``'.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from markupsafe import Markup

from bridge import __version__, keys
from bridge.config import SiteConfig
from bridge.site import collections, comment_pages, feeds, gone, plan_lists, webfinger
from bridge.site.importing import redirects
from bridge.site.kept import kept_block, remember_block
from bridge.site.ledger import Ledger
from bridge.site.output import Kept, Output
from bridge.site.pages import Renderer, note_title
from bridge.site.plan_documents import Documents, json_bytes
from bridge.site.plan_keys import key_of, shown_in_list, stock_templates, whole_post
from bridge.site.posts import Comment, Page, Post
from bridge.site.preview import notice
from bridge.site.static_headers import HEADERS_FILE
from bridge.site.threads import Reactions, Thread, thread


class PostComments(Protocol):
    """Each post's comments, their digest and their files' hashes
    (``comments.BuildComments``).  The plan asks for a post's when it reaches that post,
    so a build whose outputs are written as they are planned reads each post's comments
    just before rendering its page."""

    def get(self, slug: str) -> list[Comment]: ...

    def digest(self, slug: str) -> str: ...

    def file_hashes(self, slug: str) -> dict[str, bytes]: ...


class Plan:
    """Builds the list of outputs for a site; nothing is rendered until asked."""

    def __init__(
        self,
        config: SiteConfig,
        posts: list[Post],
        pages: list[Any],
        comments: PostComments,
        actor_keys: keys.ActorKeys,
        renderer: Renderer,
        followers_count: int,
        ledger: Ledger | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger or Ledger()  # what was federated: ids, gone ids, a move
        self.posts = posts
        self.pages = pages
        self.comments = comments
        self.keys = actor_keys
        self.renderer = renderer
        self.followers_count = followers_count
        # Keyed on the loaded settings (not the file's bytes), so overrides re-render too.
        settings = repr(dataclasses.replace(config, site_dir=Path(".")))
        moved = json.dumps(self.ledger.moved_to)  # a move changes the actor and every page
        self.base_key = key_of(
            __version__,
            settings,
            actor_keys.fingerprint,  # the files' bytes: parsed only to sign
            str(renderer.live_reload),
            moved,
            repr(renderer.menu),  # on every page
        )
        renderer.env.globals["moved_to"] = self.ledger.moved_to
        # A --drafts preview shows drafts as pages but never federates them.
        self.federated = [p for p in posts if not p.draft]
        # The ActivityStreams documents: posts' objects and Creates, the actor, the outbox.
        self.documents = Documents(config, actor_keys, self.ledger, self.federated, self.base_key)
        self._stock: dict[str, bool] = {}  # template -> only the default theme's in effect
        self._list_pages: plan_lists.Lists | None = None
        self._per_page: int | None = None  # comments_per_page, for this theme

    def outputs(self) -> Iterator[Output | Kept]:
        """Every output of the site, in the order the writer takes them."""
        yield from self._post_outputs()
        yield from self._home_outputs()
        yield from self._tag_outputs()
        yield from self._feed_outputs()
        yield from self.documents.outputs(self.followers_count)  # actor, outbox, collections
        yield from self._discovery_outputs()
        yield from self._static_outputs()

    # ---- posts: the page, its AS2 documents, and the outbox pages ----------------------

    def _post_outputs(self) -> Iterator[Output | Kept]:
        """Post pages and their ActivityStreams documents; each outbox page comes right
        after the posts it lists, so it reuses the Creates just signed for their
        create.json.  A post's block made of what it was at this process's last build
        is one ``Kept`` (``bridge.site.kept``)."""
        posts, template = self.posts, self.renderer.template_digest("post.html")
        labels = ["", *(f"{p.slug}:{p.title}" for p in posts), ""]  # as a neighbour
        federated_seen = 0
        for i, post in enumerate(posts):
            newer = posts[i - 1] if i > 0 else None
            older = posts[i + 1] if i + 1 < len(posts) else None
            made_of = (
                self.base_key,
                template,
                post.slug,
                post.digest,
                "draft" if post.draft else "",
                self.comments.digest(post.slug),  # read now: see ``PostComments``
                self.documents.object_id(post),
                labels[i],
                labels[i + 2],
            )
            block = partial(self._post_block, post, newer, older, made_of)
            kept = kept_block(post.slug, made_of, block)
            if kept is not None:
                yield kept
            else:
                yield from remember_block(post.slug, made_of, list(block()))
            if post.draft:
                continue
            federated_seen += 1
            size = collections.OUTBOX_PAGE_SIZE
            if federated_seen % size == 0 or federated_seen == len(self.federated):
                yield self.documents.outbox_page(-(-federated_seen // size))

    def _post_block(
        self, post: Post, newer: Post | None, older: Post | None, made_of: tuple[str, ...]
    ) -> Iterator[Output]:
        """The outputs of one post; their keys are made only of ``made_of``."""
        base_key, template, _, digest, _, comments_digest, object_id, *neighbours = made_of
        page_key = key_of(base_key, template, digest, comments_digest, object_id, *neighbours)
        comments = self.comments.get(post.slug)
        if not self._paged(comments):  # one page: threaded only if it is rendered
            page = partial(self._whole_post_page, post, newer, older, comments)
            older_pages: list[Output] = []
        else:
            threads, reactions = thread(comments)
            pages = comment_pages.split(threads, self._comments_per_page())
            places = comment_pages.places(self.config, post.slug, pages)
            page = partial(self._post_page, post, newer, older, pages[-1], reactions, places[-1])
            older_pages = list(self._comment_pages(post, pages[:-1], places[:-1]))
        # Older pages first: one that opens takes its cards from the post page's rows
        # before the post page's render drops the rows it no longer prints.
        yield from older_pages
        # parallel workers part posts only after an outbox page
        yield Output(f"posts/{post.slug}/index.html", page_key, page, cut=False)
        if post.draft:
            return
        docs = self.documents
        object_key = docs.object_key(post)
        yield Output(docs.object_rel(post), object_key, partial(self._object_json, post), cut=False)
        create = partial(self._create_json, post)
        yield Output(docs.create_rel(post), object_key, create, cut=False)
        # replies, context (FEP-7888, paged), likes, shares: only those with items;
        # the empty ones are answered without a file (collections.empty_document).
        collections_key = key_of(base_key, "coll", post.slug, comments_digest)
        for rel, doc in collections.post_documents(self.config, post.slug, comments):
            yield Output(rel, collections_key, partial(json_bytes, doc), cut=False)

    def _paged(self, comments: list[Comment]) -> bool:
        """Whether a post with ``comments`` may need more than one page of replies: more
        approved replies than a page holds (counted without threading them)."""
        per_page = self.config.comments_per_page
        if not per_page or len(comments) <= per_page:
            return False
        replies = sum(1 for c in comments if c.type == "reply" and c.status == "approved")
        return replies > per_page and self._comments_per_page() > 0

    def _comments_per_page(self) -> int:
        """``comments_per_page``, or 0 (one page) when the theme's post page never prints
        ``comment_pages``: it would show no way to the older pages (``comment_pages``)."""
        if self._per_page is None:
            shown = self.renderer.shows("post.html", "comment_pages")
            self._per_page = self.config.comments_per_page if shown else 0
        return self._per_page

    def _comment_pages(
        self,
        post: Post,
        pages: list[tuple[Thread, ...]],
        places: list[comment_pages.CommentPages],
    ) -> Iterator[Output]:
        """The post's older comment pages, each keyed on its own replies' files only."""
        hashes = self.comments.file_hashes(post.slug)
        template = self.renderer.template_digest("comments.html")
        made_of = (self.base_key, template, post.slug, post.title or note_title(post))
        ap_id = self.documents.object_id(post)
        for threads, place in zip(pages, places, strict=True):
            key = key_of(*made_of, ap_id, repr(place), comment_pages.page_digest(threads, hashes))
            render = partial(self.renderer.comments, post, threads, place, ap_id)
            yield Output(comment_pages.page_rel(post.slug, place.number), key, render, cut=False)

    def _whole_post_page(
        self, post: Post, newer: Post | None, older: Post | None, comments: list[Comment]
    ) -> bytes:
        threads, reactions = thread(comments)
        (place,) = comment_pages.places(self.config, post.slug, [threads])
        return self._post_page(post, newer, older, tuple(threads), reactions, place)

    def _post_page(
        self,
        post: Post,
        newer: Post | None,
        older: Post | None,
        threads: tuple[Thread, ...],
        reactions: Reactions,
        place: comment_pages.CommentPages,
    ) -> bytes:
        return self.renderer.post(
            post,
            threads=threads,
            reactions=reactions,
            pages=place,
            newer=newer,
            older=older,
            ap_id=self.documents.object_id(post),
        )

    def _object_json(self, post: Post) -> bytes:
        return json_bytes(self.documents.post_object(post))

    def _create_json(self, post: Post) -> bytes:
        return self.documents.create_json(post)

    # ---- home pages ------------------------------------------------------------------

    def _home_outputs(self) -> Iterator[Output]:
        home = self._lists().home
        for n, (path, key, chunk) in enumerate(home, start=1):
            yield Output(path, key, partial(self._home_page, chunk, n, len(home)))

    def _lists(self) -> plan_lists.Lists:
        """The list pages' keys and posts, made once a build (``plan_lists``)."""
        if self._list_pages is None:
            digest = self.renderer.template_digest
            self._list_pages = plan_lists.lists(
                self.posts,
                self.base_key,
                (digest("index.html"), digest("tag.html"), digest("archive.html")),
                (self._entry_key("index.html"), self._entry_key("tag.html")),
                self.config.posts_per_page,
            )
        return self._list_pages

    def _home_url(self, n: int) -> str:
        base_url = self.config.base_url
        return f"{base_url}/" if n == 1 else f"{base_url}/page/{n}/"

    def _home_page(self, chunk: list[Post], n: int, total_pages: int) -> bytes:
        return self.renderer.index(
            chunk,
            number=n,
            pages=total_pages,
            url=self._home_url(n),
            prev_url=self._home_url(n - 1) if n > 1 else None,
            next_url=self._home_url(n + 1) if n < total_pages else None,
        ).encode()

    # ---- tag pages, the archive and the standalone pages ---------------------------------

    def _tag_outputs(self) -> Iterator[Output]:
        renderer, lists = self.renderer, self._lists()
        for slug, tag, key, tagged in lists.tags:
            yield Output(f"tags/{slug}/index.html", key, partial(self._tag_page, tag, tagged, slug))
        yield Output(
            "archive/index.html",
            # What the archive shows of each post (``plan_lists.archive_entry``): an edit
            # to a titled post's body does not change it.
            lists.archive,
            lambda: renderer.archive(self.posts, f"{self.config.base_url}/archive/").encode(),
        )
        for page in self.pages:
            yield Output(
                f"{page.slug}/index.html",
                key_of(self.base_key, renderer.template_digest("page.html"), page.digest),
                partial(self._page, page),
            )
        yield Output(
            "404.html",
            key_of(self.base_key, renderer.template_digest("404.html"), "404"),
            lambda: renderer.not_found().encode(),
        )

    def _entry_key(self, name: str) -> Callable[[Post], str]:
        """What a list page (``name``: the home or a tag page) is made from of each post.

        The default theme's ``_entry.html`` shows a titled post's summary, not its body:
        with only the default templates in effect, a body edit to a post with a summary
        leaves its tag pages alone (rendering a tag page of 500 posts took 0.3 s).  A
        site's own templates may show anything of a post: then the whole post counts."""
        stock = self._stock.get(name)
        if stock is None:
            stock = self._stock[name] = stock_templates(self.renderer, name)
        return shown_in_list if stock else whole_post

    def _tag_page(self, tag: str, tagged: list[Post], slug: str) -> bytes:
        return self.renderer.tag(tag, tagged, self.config.tag_url(slug)).encode()

    def _page(self, page: Page) -> bytes:
        return self.renderer.page(page, f"{self.config.base_url}/{page.slug}/").encode()

    # ---- feeds -------------------------------------------------------------------------

    def _feed_outputs(self) -> Iterator[Output]:
        config, posts = self.config, self.posts
        feed_key = key_of(self.base_key, "feed", *(p.digest for p in posts[: feeds.FEED_SIZE]))
        yield Output("feed.xml", feed_key, lambda: feeds.atom(config, posts).encode())
        yield Output("feed.json", feed_key, lambda: feeds.json_feed(config, posts).encode())

    # ---- discovery: WebFinger, host-meta, NodeInfo, headers -------------------------------

    def _discovery_outputs(self) -> Iterator[Output]:
        config, base_key = self.config, self.base_key
        yield Output(
            ".well-known/webfinger",
            key_of(base_key, "wf"),
            lambda: json_bytes(webfinger.jrd(config)),
        )
        yield Output(
            ".well-known/host-meta",
            key_of(base_key, "hm"),
            lambda: webfinger.host_meta(config).encode(),
        )
        yield Output(
            ".well-known/nodeinfo",
            key_of(base_key, "ni"),
            lambda: json_bytes(webfinger.nodeinfo_links(config)),
        )
        for version in ("2.1", "2.0"):
            yield Output(
                f"nodeinfo/{version}",
                key_of(base_key, "nodeinfo", version, str(len(self.posts))),
                partial(self._nodeinfo_json, len(self.federated), version),
            )
        yield Output("_headers", key_of(base_key, "headers"), lambda: HEADERS_FILE.encode())
        # Deleted posts: their page and 410 rules for static hosts (bridge.site.gone).
        yield Output(
            gone.PAGE,
            key_of(base_key, self.renderer.template_digest("page.html"), "gone"),
            self._gone_page,
        )
        for rel, text in self._server_rules().items():
            yield Output(rel, key_of(base_key, "rules", rel, text), partial(str.encode, text))

    def _server_rules(self) -> dict[str, str]:
        """Files for web servers: 301s from imported posts' old URLs to their new ones
        (``bridge.site.importing.redirects``), then 410s for deleted posts
        (``bridge.site.gone``); both write Netlify's ``_redirects``, where the first
        matching line wins."""
        urls = {p.slug: self.config.post_url(p.slug) for p in self.posts}
        moved = redirects.redirect_map(redirects.post_pairs(self.posts, urls))
        rules = redirects.redirect_files(moved)
        for rel, text in gone.files(self.config, self.ledger, {p.slug for p in self.posts}):
            rules[rel] = rules.get(rel, "") + text
        rules["_redirects"] += collections.static_rewrites()  # after the 410s: they win
        return rules

    def _gone_page(self) -> bytes:
        page = SimpleNamespace(
            title=gone.GONE_TITLE, lang=self.config.language, html=gone.GONE_TEXT, slug="gone"
        )
        return self.renderer.render(
            "page.html",
            page=page,
            content=Markup(gone.GONE_TEXT),  # noqa: S704 - a constant of ours
            page_title=gone.GONE_TITLE,
            canonical=f"{self.config.base_url}/",
        ).encode()

    def _nodeinfo_json(self, posts: int, version: str) -> bytes:
        doc = webfinger.nodeinfo(self.config, posts=posts, version=version)
        if self.config.preview_of:
            doc["metadata"]["preview"] = notice(self.config)
        return json_bytes(doc)

    # ---- static files ------------------------------------------------------------------

    def _static_outputs(self) -> Iterator[Output]:
        """The theme's static files, overridable by the site's own static/."""
        static: dict[str, Path] = {}
        for folder in self.config.static_dirs:
            if folder.is_dir():
                for file in folder.rglob("*"):
                    if file.is_file() and not file.name.startswith("."):
                        static["static/" + file.relative_to(folder).as_posix()] = file
        for rel, source in sorted(static.items()):
            data = source.read_bytes()
            yield Output(rel, key_of("static", data), partial(bytes, data))
