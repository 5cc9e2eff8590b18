"""``build(config)``: content -> pages + activities -> site files, atomically.

The pipeline, in one place::

    posts, pages = content.load(config)          # parse each file once (Markdown cached)
    comments     = CommentStore(...).by_post()   # content/comments/<slug>/*.json
    outputs      = html + feeds + activitypub + well-known + static  (lazy, keyed)
    write(outputs)                               # staged, then renamed into place

Every output has a *key*: a hash of everything it is made from (its inputs, the
templates it uses, the settings).  When the key matches the previous build's manifest the
page is not rendered again; when the rendered bytes match the old file, it is not written,
so unchanged files keep their bytes and their mtime.  The first build writes a new tree
beside the folder and swaps it in; later builds stage each changed file beside its target
and rename them all into place once every output is rendered: a broken build or a full
disk leaves the previous output untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, overload

from markupsafe import Markup

from bridge import __version__, keys
from bridge.config import SiteConfig
from bridge.errors import BuildError
from bridge.site import activities, feeds, gone, webfinger
from bridge.site.comments import CommentStore
from bridge.site.content import MarkdownRenderer
from bridge.site.content import load as load_content
from bridge.site.ledger import Ledger
from bridge.site.ledger import read_file as read_ledger
from bridge.site.pages import Renderer
from bridge.site.posts import Comment, Page, Post, tag_slug

Progress = Callable[[int, int], None]


@dataclass
class Output:
    path: str  # relative, POSIX
    key: str
    render: Callable[[], bytes]


@dataclass
class BuildResult:
    out_dir: Path
    posts: int
    pages: int
    files: int
    written: int
    rendered: int
    seconds: float
    changed: list[str] = field(default_factory=list)
    built_posts: tuple[Post, ...] = ()  # the posts as parsed, newest first (for publish)

    def summary(self) -> str:
        return (
            f"Built {self.posts} posts, {self.pages} pages: {self.files} files "
            f"({self.written} changed) in {self.seconds:.2f}s -> {self.out_dir}"
        )


def _h(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode()


class Plan:
    """Builds the list of outputs for a site; nothing is rendered until asked."""

    def __init__(
        self,
        config: SiteConfig,
        posts: list[Post],
        pages: list[Any],
        comments: dict[str, list[Comment]],
        comment_digests: dict[str, str],
        actor_keys: keys.ActorKeys,
        renderer: Renderer,
        followers_count: int,
        ledger: Ledger | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger or Ledger()
        self.posts = posts
        self.pages = pages
        self.comments = comments
        self.comment_digests = comment_digests
        self.keys = actor_keys
        self.renderer = renderer
        self.followers_count = followers_count
        # Keyed on the loaded settings (not the file's bytes), so overrides re-render too.
        settings = repr(dataclasses.replace(config, site_dir=Path(".")))
        moved = json.dumps(self.ledger.moved_to)  # a move changes the actor and every page
        self.base_key = _h(
            __version__, settings, actor_keys.public_pem, str(renderer.live_reload), moved
        )
        renderer.env.globals["moved_to"] = self.ledger.moved_to
        # A --drafts preview shows drafts as pages but never federates them.
        self.federated = [p for p in posts if not p.draft]
        self.theme = renderer.theme_digest()  # every template: for html() only
        # Signed documents kept between the outputs that embed them (see ``_remember``).
        self._objects: dict[str, dict[str, Any]] = {}
        self._creates: dict[str, dict[str, Any]] = {}

    # ---- helpers ----------------------------------------------------------------

    def sign(self, obj: dict[str, Any], created: dt.datetime) -> dict[str, Any]:
        from bridge.site import proofs

        return proofs.sign_object(obj, self.keys.ed25519, self.config.ed25519_key_id, created)

    def object_id(self, post: Post) -> str:
        """The post's current ActivityStreams id (a new generation after a Delete)."""
        return self.ledger.object_id(self.config, post.slug)

    def _object_rel(self, post: Post) -> str:
        return (self.config.local_path(self.object_id(post)) or "").lstrip("/")

    def post_object(self, post: Post) -> dict[str, Any]:
        obj = self._objects.get(post.slug)
        if obj is None:
            object_id = self.object_id(post)
            obj = activities.post_object(self.config, post, object_id=object_id)
            obj = self.sign(obj, post.last_modified)
            _remember(self._objects, post.slug, obj)
        return obj

    def create(self, post: Post) -> dict[str, Any]:
        doc = self._creates.get(post.slug)
        if doc is None:
            doc = self.sign(activities.create(self.config, self.post_object(post)), post.date)
            self._objects.pop(post.slug, None)
            _remember(self._creates, post.slug, doc)
        return doc

    def outbox_page(self, n: int) -> Output:
        """Page ``n`` of the outbox: keyed on the posts it lists, not on the whole site."""
        fed, size = self.federated, activities.OUTBOX_PAGE_SIZE
        chunk = fed[(n - 1) * size : n * size]
        ids = [*_ids(chunk), *(self.object_id(p) for p in chunk)]
        key = _h(self.base_key, "outbox-page", str(n), str(len(fed)), *ids)
        return Output(f"ap/outbox/page-{n}.json", key, lambda: _json(self._outbox_doc(n, chunk)))

    def _outbox_doc(self, n: int, chunk: list[Post]) -> dict[str, Any]:
        creates = _OnePage(len(self.federated), n, [self.create(p) for p in chunk])
        for _, doc in itertools.islice(activities.outbox_pages(self.config, creates), n, None):
            return doc
        raise AssertionError(f"outbox has no page {n}")  # pragma: no cover

    def actor_doc(self) -> dict[str, Any]:
        published = min(
            (p.date for p in self.federated), default=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        )
        doc = activities.actor(
            self.config,
            public_key_pem=self.keys.public_pem,
            ed25519_multibase=self.keys.ed25519_multibase,
            published=published,
            moved_to=self.ledger.moved_to["id"] if self.ledger.moved_to else None,
        )
        return self.sign(doc, published)

    # ---- the outputs --------------------------------------------------------------

    # ---- renderers of one output (bound to their inputs with functools.partial) -------

    def _post_page(self, post: Post, newer: Post | None, older: Post | None) -> bytes:
        comments = self.comments.get(post.slug, [])
        return self.renderer.post(
            post, comments=comments, newer=newer, older=older, ap_id=self.object_id(post)
        ).encode()

    def _object_json(self, post: Post) -> bytes:
        return _json(self.post_object(post))

    def _create_json(self, post: Post) -> bytes:
        return _json(self.create(post))

    def _collection_json(self, post: Post, name: str) -> bytes:
        comments = self.comments.get(post.slug, [])
        return _json(activities.comment_collections(self.config, post, comments)[name])

    def _tag_page(self, tag: str, tagged: list[Post], slug: str) -> bytes:
        return self.renderer.tag(tag, tagged, self.config.tag_url(slug)).encode()

    def _page(self, page: Page) -> bytes:
        return self.renderer.page(page, f"{self.config.base_url}/{page.slug}/").encode()

    def _gone_page(self) -> bytes:
        page = SimpleNamespace(title=gone.GONE_TITLE, lang=self.config.language)
        return self.renderer.render(
            "page.html",
            page=page,
            content=Markup(gone.GONE_TEXT),  # noqa: S704 - a constant of ours
            page_title=gone.GONE_TITLE,
            canonical=f"{self.config.base_url}/",
        ).encode()

    def _nodeinfo_json(self, posts: int, version: str) -> bytes:
        return _json(webfinger.nodeinfo(self.config, posts=posts, version=version))

    def outputs(self) -> Iterator[Output]:
        c, r = self.config, self.renderer
        posts = self.posts

        # Post pages and their ActivityStreams documents; each outbox page comes right after
        # the posts it lists, so it reuses the Creates just signed for their create.json.
        fed_seen = 0
        for i, post in enumerate(posts):
            newer = posts[i - 1] if i > 0 else None
            older = posts[i + 1] if i + 1 < len(posts) else None
            cdig = self.comment_digests.get(post.slug, "")
            nav = (
                f"{newer.slug}:{newer.title}" if newer else "",
                (f"{older.slug}:{older.title}" if older else ""),
            )
            object_id = self.object_id(post)
            key = _h(
                self.base_key, r.template_digest("post.html"), post.digest, cdig, object_id, *nav
            )
            yield Output(
                f"posts/{post.slug}/index.html",
                key,
                partial(self._post_page, post, newer, older),
            )
            if post.draft:
                continue
            okey = _h(self.base_key, "as", post.digest, object_id)
            rel = self._object_rel(post)
            yield Output(rel, okey, partial(self._object_json, post))
            yield Output(
                rel.removesuffix(".json") + "/create.json",
                okey,
                partial(self._create_json, post),
            )
            ckey = _h(self.base_key, "coll", post.slug, cdig)
            for name in ("replies", "likes", "shares"):
                yield Output(
                    f"ap/posts/{post.slug}/{name}.json",
                    ckey,
                    partial(self._collection_json, post, name),
                )
            fed_seen += 1
            if fed_seen % activities.OUTBOX_PAGE_SIZE == 0 or fed_seen == len(self.federated):
                yield self.outbox_page(-(-fed_seen // activities.OUTBOX_PAGE_SIZE))

        # Home pages.
        per = c.posts_per_page
        total_pages = max(1, -(-len(posts) // per))

        def home_url(n: int) -> str:
            return f"{c.base_url}/" if n == 1 else f"{c.base_url}/page/{n}/"

        def home_page(chunk: list[Post], n: int) -> bytes:
            return r.index(
                chunk,
                number=n,
                pages=total_pages,
                url=home_url(n),
                prev_url=home_url(n - 1) if n > 1 else None,
                next_url=home_url(n + 1) if n < total_pages else None,
            ).encode()

        for n in range(1, total_pages + 1):
            chunk = posts[(n - 1) * per : n * per]
            path = "index.html" if n == 1 else f"page/{n}/index.html"
            key = _h(
                self.base_key,
                r.template_digest("index.html"),
                str(n),
                str(total_pages),
                *(p.digest for p in chunk),
            )
            yield Output(
                path,
                key,
                partial(home_page, chunk, n),
            )

        # Tag pages and the archive.
        tags: dict[str, tuple[str, list[Post]]] = {}
        for post in posts:
            for tag in post.tags:
                tags.setdefault(tag_slug(tag), (tag, []))[1].append(post)
        for slug, (tag, tagged) in sorted(tags.items()):
            key = _h(
                self.base_key, r.template_digest("tag.html"), slug, *(p.digest for p in tagged)
            )
            yield Output(
                f"tags/{slug}/index.html",
                key,
                partial(self._tag_page, tag, tagged, slug),
            )
        yield Output(
            "archive/index.html",
            # What the archive shows of each post: an edit to a titled post's body
            # does not change it (an untitled note shows the start of its text).
            _h(
                self.base_key,
                r.template_digest("archive.html"),
                "archive",
                *(f"{p.slug}:{p.date.isoformat()}:{p.title or p.digest}" for p in posts),
            ),
            lambda: r.archive(posts, f"{c.base_url}/archive/").encode(),
        )
        for page in self.pages:
            yield Output(
                f"{page.slug}/index.html",
                _h(self.base_key, r.template_digest("page.html"), page.digest),
                partial(self._page, page),
            )

        # Feeds.
        recent = posts[: feeds.FEED_SIZE]
        fkey = _h(self.base_key, "feed", *(p.digest for p in recent))
        yield Output("feed.xml", fkey, lambda: feeds.atom(c, posts).encode())
        yield Output("feed.json", fkey, lambda: feeds.json_feed(c, posts).encode())

        # ActivityPub: actor, outbox, collections.
        fed = self.federated
        # The actor shows the date of the first federated post, nothing else of them.
        first = min((p.date for p in fed), default=None)
        yield Output(
            "ap/actor.json",
            _h(self.base_key, "actor", first.isoformat() if first else ""),
            lambda: _json(self.actor_doc()),
        )
        if not fed:
            yield self.outbox_page(1)
        yield Output(
            "ap/outbox.json",
            _h(self.base_key, "outbox", str(len(fed))),
            lambda: _json(next(iter(activities.outbox_pages(c, _OnePage(len(fed), 0, []))))[1]),
        )
        yield Output(
            "ap/followers.json",
            _h(self.base_key, str(self.followers_count)),
            lambda: _json(activities.followers_collection(c, self.followers_count)),
        )
        yield Output(
            "ap/following.json",
            _h(self.base_key, "following"),
            lambda: _json(activities.ordered_collection(c.following_url, [])),
        )

        # Discovery documents.
        yield Output(
            ".well-known/webfinger", _h(self.base_key, "wf"), lambda: _json(webfinger.jrd(c))
        )
        yield Output(
            ".well-known/host-meta",
            _h(self.base_key, "hm"),
            lambda: webfinger.host_meta(c).encode(),
        )
        yield Output(
            ".well-known/nodeinfo",
            _h(self.base_key, "ni"),
            lambda: _json(webfinger.nodeinfo_links(c)),
        )
        for version in ("2.1", "2.0"):
            yield Output(
                f"nodeinfo/{version}",
                _h(self.base_key, "nodeinfo", version, str(len(posts))),
                partial(self._nodeinfo_json, len(fed), version),
            )
        yield Output("_headers", _h(self.base_key, "headers"), lambda: HEADERS_FILE.encode())
        # Deleted posts: their page and 410 rules for static hosts (bridge.site.gone).
        yield Output(
            gone.PAGE, _h(self.base_key, r.template_digest("page.html"), "gone"), self._gone_page
        )
        for rel, text in gone.files(c, self.ledger, {p.slug for p in posts}):
            yield Output(rel, _h(self.base_key, "gone", rel, text), partial(str.encode, text))

        # Static files of the theme, overridable by the site's own static/.
        static: dict[str, Path] = {}
        for folder in c.static_dirs:
            if folder.is_dir():
                for file in folder.rglob("*"):
                    if file.is_file() and not file.name.startswith("."):
                        static["static/" + file.relative_to(folder).as_posix()] = file
        for rel, src in sorted(static.items()):
            data = src.read_bytes()
            yield Output(rel, _h("static", data), partial(bytes, data))


def _ids(posts: list[Post]) -> Iterator[str]:
    return (f"{p.slug}:{p.digest}" for p in posts)


def _remember(cache: dict[str, dict[str, Any]], slug: str, doc: dict[str, Any]) -> None:
    """Keep a signed document for the next outputs that embed it (its Create, its outbox
    page), so each is signed once per build; a few pages' worth at most, so memory stays
    flat however many posts there are."""
    if len(cache) >= 4 * activities.OUTBOX_PAGE_SIZE:
        cache.clear()
    cache[slug] = doc


class _OnePage(Sequence[dict[str, Any]]):
    """The outbox's Creates as ``activities.outbox_pages`` slices them, holding only page
    ``n``'s: the slices of other pages are empty, which the page asked for never sees."""

    def __init__(self, total: int, n: int, chunk: list[dict[str, Any]]) -> None:
        self.total, self.start, self.chunk = total, (n - 1) * activities.OUTBOX_PAGE_SIZE, chunk

    def __len__(self) -> int:
        return self.total

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return self.chunk if index.start == self.start else []
        raise TypeError("only slices of one outbox page are available")


HEADERS_FILE = """\
# Netlify / Cloudflare Pages style headers: Mastodon refuses an actor served as
# application/json, so every ActivityPub document is served as activity+json.
/ap/*
  Content-Type: application/activity+json
  Access-Control-Allow-Origin: *
/.well-known/webfinger
  Content-Type: application/jrd+json
  Access-Control-Allow-Origin: *
/.well-known/host-meta
  Content-Type: application/xrd+xml
/.well-known/nodeinfo
  Content-Type: application/json
/nodeinfo/*
  Content-Type: application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"
"""


# ---- writing --------------------------------------------------------------------


def _manifest_path(config: SiteConfig, out_dir: Path) -> Path:
    name = hashlib.sha256(str(out_dir).encode()).hexdigest()[:12]
    return config.state_dir / f"manifest-{name}.json"


def _safe_join(root: Path, rel: str) -> Path:
    _check_rel(root, rel)
    return root / rel


def _check_rel(root: Path, rel: str) -> None:
    if rel.startswith("/") or ".." in rel.split("/") or "\\" in rel:
        raise BuildError(f"refusing to write {rel!r}: it would land outside {root}")


def write_outputs(
    config: SiteConfig,
    out_dir: Path,
    outputs: Iterator[Output],
    progress: Progress | None,
    total: int,
) -> tuple[int, int, int, list[str]]:
    """Write outputs; returns (files, written, rendered, changed paths).

    With no previous output (or no manifest for it) the site is written into a fresh tree
    that is swapped in.  Otherwise only changed files are written, in two phases: each is
    first written into a staging folder beside the output folder (any failure removes it,
    leaving the previous output untouched), then all are renamed into place and the files
    of outputs that are gone are deleted.  Nothing temporary is ever inside the output, so
    a build killed half-way leaves nothing there that would be served or deployed; the
    staging folders of killed builds are removed by the next build.  (Copying every
    unchanged file into a new tree and deleting the old one cost seconds per thousand
    posts on ordinary disks.)
    """
    manifest_path = _manifest_path(config, out_dir)
    try:
        old: dict[str, list[str]] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        old = {}
    if recover_output(config, out_dir):
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            old = {}
    _remove_stale_siblings(out_dir)
    if not old or not out_dir.is_dir():
        return _write_fresh_tree(config, out_dir, outputs, progress, total, {})
    manifest: dict[str, list[str]] = {}
    files = written = rendered = 0
    changed: list[str] = []
    staged: list[tuple[Path, Path]] = []
    made_dirs: list[Path] = []
    known_dirs: set[Path] = set()
    stage = out_dir.with_name(f".{out_dir.name}.stage-{os.getpid()}")
    root = str(out_dir)
    try:
        for out in outputs:
            # Strings and os.path here: most outputs are unchanged, and pathlib's overhead
            # for tens of thousands of them was most of a no-op rebuild.
            _check_rel(out_dir, out.path)
            previous = old.get(out.path)
            files += 1
            if progress:
                progress(files, total)
            if previous and previous[0] == out.key and os.path.isfile(f"{root}/{out.path}"):
                manifest[out.path] = previous
                continue
            target = out_dir / out.path
            data = out.render()
            rendered += 1
            digest = hashlib.sha256(data).hexdigest()
            manifest[out.path] = [out.key, digest]
            if previous and previous[1] == digest and target.is_file():
                continue
            parent = target.parent
            if parent not in known_dirs:
                missing = [d for d in (parent, *parent.parents) if not d.exists()]
                for folder in reversed(missing):
                    folder.mkdir()
                    made_dirs.append(folder)
                known_dirs.add(parent)
            if not staged:
                stage.mkdir()
            tmp = stage / str(len(staged))
            staged.append((tmp, target))
            tmp.write_bytes(data)
            written += 1
            changed.append(out.path)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in reversed(made_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError):
            raise BuildError(
                f"{out_dir}: could not write the site ({exc.strerror or exc}); "
                "the previous output is untouched"
            ) from None
        raise
    removed = [p for p in old if p not in manifest]
    changed.extend(removed)
    if not staged and not removed and manifest == old:
        return files, written, rendered, changed  # nothing changed: the manifest stands
    try:
        # The switch is journaled: the list of moves is written (atomically) before the
        # first rename, so a build killed while renaming is completed by the next build or
        # daemon start (roll-forward) instead of leaving old and new pages side by side.
        journal = _journal_path(out_dir)
        _write_manifest(
            journal,
            {
                "stage": str(stage),
                "moves": [[str(tmp), str(target.relative_to(out_dir))] for tmp, target in staged],
                "removed": removed,
                "manifest": manifest,
            },
        )
        _apply_journal(config, out_dir, journal)
    except OSError as exc:
        raise BuildError(
            f"{out_dir}: could not write the site ({exc.strerror or exc}); "
            "build again to complete it"
        ) from None
    return files, written, rendered, changed


@contextlib.contextmanager
def _build_lock(config: SiteConfig, out_dir: Path) -> Iterator[None]:
    """An exclusive lock (flock) on the output folder's lock file, held while writing."""
    import fcntl

    path = _manifest_path(config, out_dir).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for a build in progress to finish
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _journal_path(out_dir: Path) -> Path:
    return out_dir.with_name(f".{out_dir.name}.journal")


def _apply_journal(config: SiteConfig, out_dir: Path, journal: Path) -> None:
    """Carry out a journaled switch; idempotent, so it can be re-run after a crash."""
    data = json.loads(journal.read_text())
    manifest_path = _manifest_path(config, out_dir)
    manifest_path.unlink(missing_ok=True)
    for tmp, rel in data["moves"]:
        target = _safe_join(out_dir, rel)
        if os.path.exists(tmp):  # already moved when a crash interrupted an earlier run
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
    for rel in data["removed"]:
        path = _safe_join(out_dir, rel)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        for folder in path.parents:
            if folder == out_dir or not folder.is_relative_to(out_dir):
                break
            try:
                folder.rmdir()
            except OSError:
                break  # not empty
    _write_manifest(manifest_path, data["manifest"])
    shutil.rmtree(data["stage"], ignore_errors=True)
    journal.unlink()


def recover_output(config: SiteConfig, out_dir: Path | None = None) -> bool:
    """Complete a switch a killed build left half done; True when there was one.

    Called by every build before it starts and by the daemon at start-up, so after a crash
    the served site is the complete new tree (or, for a fresh tree whose swap was cut
    between its two renames, the old tree put back).
    """
    out_dir = (out_dir or config.output_dir).resolve()
    journal = _journal_path(out_dir)
    recovered = False
    if journal.is_file():
        try:
            _apply_journal(config, out_dir, journal)
        except (OSError, ValueError, KeyError, TypeError):
            journal.unlink(missing_ok=True)  # unreadable: the next build starts afresh
            _manifest_path(config, out_dir).unlink(missing_ok=True)
        recovered = True
    if not out_dir.exists():
        for aside in sorted(out_dir.parent.glob(f".{out_dir.name}.old-*")):
            if aside.is_dir():
                os.rename(aside, out_dir)  # the old tree, moved aside by a killed swap
                recovered = True
                break
    return recovered


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False if the
    system cannot, in which case the caller falls back to two renames."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(result == 0)


def _remove_stale_siblings(out_dir: Path) -> None:
    """Remove the staging and new-tree folders that killed builds left beside the output."""
    try:
        siblings = list(out_dir.parent.iterdir())
    except OSError:
        return
    for path in siblings:
        name = path.name
        if not name.startswith(f".{out_dir.name}.") or "-" not in name:
            continue
        kind, _, pid = name[len(out_dir.name) + 2 :].rpartition("-")
        if kind not in ("stage", "new", "old") or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that build is still running
        except ProcessLookupError:
            pass
        except OSError:
            continue  # someone else's process: leave its folder alone
        shutil.rmtree(path, ignore_errors=True)


def _write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(manifest, sort_keys=True))
    os.replace(tmp, path)


def _write_fresh_tree(
    config: SiteConfig,
    out_dir: Path,
    outputs: Iterator[Output],
    progress: Progress | None,
    total: int,
    old: dict[str, list[str]],
) -> tuple[int, int, int, list[str]]:
    """Write outputs into a fresh tree and swap it in (first build, or no usable manifest)."""
    manifest_path = _manifest_path(config, out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    new_dir = out_dir.with_name(f".{out_dir.name}.new-{os.getpid()}")
    if new_dir.exists():
        shutil.rmtree(new_dir)
    new_dir.mkdir()
    manifest: dict[str, list[str]] = {}
    files = written = rendered = 0
    changed: list[str] = []
    made_dirs: set[Path] = set()
    try:
        for out in outputs:
            target = _safe_join(new_dir, out.path)
            parent = target.parent
            if parent not in made_dirs:
                parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(parent)
            previous = old.get(out.path)
            old_file = out_dir / out.path
            digest: str | None = None
            if previous and previous[0] == out.key and old_file.is_file():
                digest = previous[1]
            else:
                data = out.render()
                rendered += 1
                digest = hashlib.sha256(data).hexdigest()
                if not (previous and previous[1] == digest and old_file.is_file()):
                    target.write_bytes(data)
                    written += 1
                    changed.append(out.path)
                    digest = digest
                    manifest[out.path] = [out.key, digest]
                    files += 1
                    if progress:
                        progress(files, total)
                    continue
            try:
                os.link(old_file, target)
            except OSError:
                shutil.copy2(old_file, target)
            manifest[out.path] = [out.key, digest]
            files += 1
            if progress:
                progress(files, total)
        removed = [p for p in old if p not in manifest]
        changed.extend(removed)
        # Swap in one atomic step where the system can (RENAME_EXCHANGE); otherwise the old
        # tree is moved aside and put back if the second rename fails.
        aside = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        if out_dir.exists() and _exchange(new_dir, out_dir):
            os.rename(new_dir, aside)  # new_dir now holds the old tree
        else:
            if out_dir.exists():
                os.replace(out_dir, aside)
            try:
                os.replace(new_dir, out_dir)
            except OSError:
                if aside.exists() and not out_dir.exists():
                    os.replace(aside, out_dir)
                raise
        if aside.exists():
            shutil.rmtree(aside, ignore_errors=True)
        _write_manifest(manifest_path, manifest)
    except BaseException as exc:
        shutil.rmtree(new_dir, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BuildError(
                f"{out_dir}: could not write the site ({exc.strerror or exc}); "
                "the previous output is untouched"
            ) from None
        raise
    return files, written, rendered, changed


def followers_count(config: SiteConfig) -> int:
    """Accepted followers from the daemon's store, 0 when there is none yet."""
    if not config.db_path.exists():
        return 0
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{config.db_path}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT count(*) FROM followers WHERE state = 'accepted'").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def _check_output_dir(config: SiteConfig, out_dir: Path) -> None:
    """The output folder is replaced whole on every build: it must not hold the site."""
    site = config.site_dir.resolve()
    sources = [
        config.content_dir.resolve(),
        config.state_dir.resolve(),
        (site / "templates").resolve(),
        (site / "static").resolve(),
    ]
    for folder in [site, *sources]:
        if out_dir == folder or folder.is_relative_to(out_dir):
            raise BuildError(
                f"{out_dir}: the output folder would replace {folder}; "
                "choose a separate folder such as public/"
            )
    for folder in sources:
        if out_dir.is_relative_to(folder):
            raise BuildError(
                f"{out_dir}: the output folder must not be inside {folder}; "
                "choose a separate folder such as public/"
            )
    if (
        out_dir.is_dir()
        and any(out_dir.iterdir())
        and not _manifest_path(config, out_dir).exists()
        and not (out_dir / "ap" / "actor.json").is_file()
    ):
        raise BuildError(
            f"{out_dir}: exists and does not hold a site built by indiebridge; "
            "refusing to replace it (empty it or choose another folder)"
        )


def build(
    config: SiteConfig,
    *,
    out_dir: Path | None = None,
    drafts: bool = False,
    progress: Progress | None = None,
    live_reload: bool = False,
) -> BuildResult:
    """Build the whole site; unchanged outputs are neither rendered nor rewritten.

    Raises:
        ContentError: a post or page is broken (nothing is written).
        KeyFileError: the actor keys are missing.
        BuildError: the output could not be written (the old output stays).
    """
    started = time.perf_counter()
    out_dir = (out_dir or config.output_dir).resolve()
    _check_output_dir(config, out_dir)
    renderer_md = MarkdownRenderer(config.cache_dir)
    try:
        posts, pages = load_content(config, drafts=drafts, renderer=renderer_md)
    finally:
        renderer_md.close()
    store = CommentStore(config.content_dir)
    comments = store.by_post()
    digests = {slug: store.digest(slug) for slug in comments}
    actor_keys = keys.load(config.state_dir)
    plan = Plan(
        config,
        posts,
        pages,
        comments,
        digests,
        actor_keys,
        Renderer(config, live_reload=live_reload),
        followers_count(config),
        read_ledger(config),
    )
    outputs = list(plan.outputs())
    # One writer at a time per output folder: the daemon's rebuilds and a `publish` or
    # `build` from the command line otherwise race on the manifest and the switch.
    with _build_lock(config, out_dir):
        files, written, rendered, changed = write_outputs(
            config, out_dir, iter(outputs), progress, len(outputs)
        )
    return BuildResult(
        out_dir=out_dir,
        posts=len(posts),
        pages=len(pages),
        files=files,
        written=written,
        rendered=rendered,
        seconds=time.perf_counter() - started,
        changed=changed,
        built_posts=tuple(posts),
    )
