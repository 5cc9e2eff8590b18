"""``build(config)``: content -> pages + activities -> site files, atomically.

The pipeline, in one place::

    posts, pages = content.load(config)          # parse each file once (Markdown cached)
    comments     = CommentStore(...).for_build_lazily()  # comments/<slug>/*.json,
                                                 # a post's read when the plan reaches it
    outputs      = Plan(...).outputs()           # html, feeds, activitypub, well-known,
                                                 # static: lazy and keyed (plan.py)
    write_outputs(outputs)                       # staged, then switched in (output.py)

An output whose key matches the previous build's manifest is not rendered again; one whose
rendered bytes match the old file is not written, so unchanged files keep their bytes and
their mtime.  A broken build or a full disk leaves the previous output untouched.
"""

from __future__ import annotations

import time
from pathlib import Path

from bridge import keys
from bridge.config import SiteConfig
from bridge.site import (
    collections,
    comment_cards,
    comment_pages,
    images,
    kept,
    plan,
    plan_documents,
    plan_keys,
    plan_lists,
    quote_card,
)
from bridge.site.build_result import BuildResult
from bridge.site.build_stamp import Stamp
from bridge.site.comments import CommentStore
from bridge.site.content import load as load_content
from bridge.site.ledger import Ledger
from bridge.site.ledger import read_file as read_ledger
from bridge.site.manifest import forget_manifests
from bridge.site.markdown_render import MarkdownRenderer
from bridge.site.output import (
    Output,
    Progress,
    WriteStats,
    check_output_dir,
    count,
    previous_outputs,
    write_outputs,
)
from bridge.site.output_switch import build_lock, recover_output
from bridge.site.pages import Renderer
from bridge.site.parse_cache import forget_resident as forget_parse_cache
from bridge.site.parse_cache import might_mention
from bridge.site.plan import Plan
from bridge.site.posts import Page, Post

__all__ = [
    "BuildResult",
    "Output",
    "Progress",
    "WriteStats",
    "build",
    "forget_resident_state",
    "recover_output",
    "write_outputs",
]


def build(
    config: SiteConfig,
    *,
    out_dir: Path | None = None,
    drafts: bool = False,
    progress: Progress | None = None,
    live_reload: bool = False,
    strict: bool = False,
    stamp: Stamp | None = None,
) -> BuildResult:
    """Build the whole site; unchanged outputs are neither rendered nor rewritten.

    ``strict`` turns warnings (a Markdown image whose file is missing) into errors.
    ``stamp``: this build's, when the caller looked at it first (``build_stamp``).

    Raises:
        ContentError: a post or page is broken, or a front matter image (with ``strict``,
            any local image) is missing (nothing is written).
        KeyFileError: the actor keys are missing.
        BuildError: the output could not be written (the old output stays).
    """
    started = time.perf_counter()
    out_dir = (out_dir or config.output_dir).resolve()
    check_output_dir(config, out_dir)
    if stamp is None:
        stamp = Stamp(config, out_dir, build, drafts=drafts, strict=strict, live_reload=live_reload)
    if stamp.unchanged is not None:  # nothing read or written changed since the last build
        return stamp.unchanged
    if stamp.wanted:  # a command: the blocks the last command build planned (``kept``)
        kept.load(config.cache_dir, _PLANNING)
    posts, pages = _load_content(config, drafts)
    warnings = images.check(config, posts, pages, strict=strict)
    ledger = read_ledger(config)  # the one read of the state database
    # Cache only, never the network; a preview's handle is the real blog's (config.handle).
    posts, unresolved = _apply_mentions(posts, ledger, own=config.handle)
    warnings += unresolved
    posts = quote_card.apply(posts, ledger.quote_cards, ledger.quote_requests)  # cache only
    comments = CommentStore(config.content_dir).for_build_lazily()
    plan = Plan(
        config,
        posts,
        pages,
        comments,
        keys.open_lazy(config.state_dir),  # parsed only if something must be signed
        Renderer(config, live_reload=live_reload, pages=pages),
        ledger.followers,
        ledger,
    )
    # Unchanged Creates are read back, not signed again (``plan_documents``).
    plan.documents.previous = previous_outputs(config, out_dir)
    # Each output is planned as the writer reaches it, so a post's comments are read just
    # before its page is rendered; a progress bar needs the count first.
    outputs = plan.outputs()
    total = 0
    if progress is not None:
        listed = list(outputs)
        outputs, total = iter(listed), count(listed)
    # One writer at a time per output folder: the daemon's rebuilds and a `publish` or
    # `build` from the command line otherwise race on the manifest and the switch.
    with build_lock(config, out_dir):
        stats = write_outputs(config, out_dir, outputs, progress, total)
    comment_cards.card_file(config.cache_dir).prune(comments.read_with_comments())
    if stamp.wanted:
        kept.save(config.cache_dir, [post.slug for post in posts])
    result = BuildResult(
        out_dir=out_dir,
        posts=len(posts),
        pages=len(pages),
        files=stats.files,
        written=stats.written,
        rendered=stats.rendered,
        seconds=time.perf_counter() - started,
        changed=stats.changed,
        built_posts=tuple(posts),
        warnings=warnings,
    )
    stamp.save(result)
    return result


# The code that turns a post block's inputs into its paths and keys (``kept``).
_PLANNING = tuple(
    str(module.__file__) for module in (plan, plan_documents, plan_keys, collections, comment_pages)
)


def _load_content(config: SiteConfig, drafts: bool) -> tuple[list[Post], list[Page]]:
    markdown = MarkdownRenderer(config.cache_dir)
    try:
        return load_content(config, drafts=drafts, renderer=markdown)
    finally:
        markdown.close()


def _apply_mentions(posts: list[Post], ledger: Ledger, own: str) -> tuple[list[Post], list[str]]:
    """``mentions.apply`` on the posts whose HTML holds an ``@``: the others have none,
    and a cached post's HTML is then not even read (``parse_cache.StoredPost``)."""
    candidates = [post for post in posts if might_mention(post)]
    if not candidates:
        return posts, []
    from bridge.site import mentions  # only for a post with an ``@``

    linked, warnings = mentions.apply(candidates, ledger.mentions, own=own)
    by_id = {id(old): new for old, new in zip(candidates, linked, strict=True)}
    return [by_id.get(id(post), post) for post in posts], warnings


def forget_resident_state() -> None:
    """Drop what this process keeps between builds (the parse cache's rows and items, the
    manifests), so the next build reads everything from disk as a fresh command does."""
    forget_parse_cache()
    forget_manifests()
    kept.forget_blocks()
    plan_lists.forget()
    images.forget_kept()
