"""Commands that write content: ``indiebridge new`` and ``indiebridge import``.

``commands`` is added to the main group by ``bridge/cli/__init__.py``; the library work is
in ``bridge.site.importer``, imported inside the command so ``--help`` stays fast.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bridge.cli._common import friendly, load_config, site_option

if TYPE_CHECKING:
    from bridge.config import SiteConfig
    from bridge.site.importer import ImportReport


def new_post_file(
    posts_dir: Path, title: str, *, note: bool, draft: bool, moment: dt.datetime
) -> tuple[Path, str]:
    """Where a new post goes (``<date>-<slug>.md``, never over an existing file) and its
    text: front matter, then the note's text or an empty body."""
    from bridge.site.posts import slugify

    if note:
        words = " ".join(title.split()[:6])
        slug = slugify(words) if words else f"note-{moment:%H%M}"
        meta = []
    else:
        slug = slugify(title)
        meta = [f"title: {json.dumps(title, ensure_ascii=False)}"]
    meta.append(f"date: {moment:%Y-%m-%dT%H:%M:%SZ}")
    if not note:
        meta += ["tags: []", 'summary: ""']
    if draft:
        meta.append("draft: true")
    body = (title.strip() if note else "") + "\n"
    stem = f"{moment:%Y-%m-%d}-{slug}"
    path = posts_dir / f"{stem}.md"
    n = 1
    while path.exists():
        n += 1
        path = posts_dir / f"{stem}-{n}.md"
    return path, "---\n" + "\n".join(meta) + "\n---\n" + body


@click.command()
@click.argument("title", default="")
@site_option
@click.option("--note", is_flag=True, help="A note: no title; TITLE, if given, is its text.")
@click.option(
    "--draft/--no-draft",
    default=True,
    show_default=True,
    help="Mark it draft: true (shown by serve/watch --drafts, never published).",
)
@friendly
def new(title: str, site_dir: Path, note: bool, draft: bool) -> None:
    """Write a new post in content/posts/ with its front matter and print its path.

    `indiebridge new "Why I left"` starts an article; `indiebridge new --note "Hello"`
    a note. New posts are drafts until you remove `draft: true` (or pass --no-draft).
    """
    config = load_config(site_dir)
    if not note and not title.strip():
        raise click.ClickException('expected a title: indiebridge new "My post" (or --note)')
    posts_dir = config.content_dir / "posts"
    posts_dir.mkdir(parents=True, exist_ok=True)
    moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
    path, text = new_post_file(posts_dir, title, note=note, draft=draft, moment=moment)
    with path.open("x", encoding="utf-8") as fh:  # never overwrite, even in a race
        fh.write(text)
    click.echo(path.relative_to(config.site_dir).as_posix())
    if draft:  # the path alone on stdout, for `$EDITOR "$(indiebridge new ...)"`
        click.echo(
            "a draft: `serve --watch --drafts` shows it; remove `draft: true` to publish it",
            err=True,
        )


@click.command("import")
@click.argument("source")
@site_option
@click.option(
    "--no-fetch-pages",
    is_flag=True,
    help="Do not fetch the full text of summary-only entries (they become drafts).",
)
@friendly
def import_(source: str, site_dir: Path, no_fetch_pages: bool) -> None:
    """Import posts from SOURCE: an RSS or Atom feed or a WordPress export (file or URL),
    or a Hugo or Jekyll site folder (its Markdown sources).

    Posts go to content/posts/ (slug from the old URL, original_url kept), WordPress
    pages to content/pages/, WordPress comments to content/comments/. Only published
    entries without a password are public: drafts, scheduled, pending, private and
    password-protected ones become drafts (such pages go to content/drafts/pages/).
    Summary-only feeds (Hugo, Pelican RSS) are completed from each post's page, else
    imported as drafts with a warning. Nothing is ever overwritten: importing again
    changes nothing. URLs are fetched safely: private addresses are refused unless
    allow_private_addresses.
    """
    import asyncio

    from bridge.site import importer

    config = load_config(site_dir)
    report = asyncio.run(_import(config, source, fetch_pages=not no_fetch_pages))
    for line in importer.messages(report):
        click.echo(line)
    click.echo(report.summary())
    if report.written:
        click.echo(
            "Run 'indiebridge build' to see them. 'indiebridge publish' puts them in the "
            "outbox but announces none older than federate_since."
        )


async def _import(config: SiteConfig, source: str, *, fetch_pages: bool) -> ImportReport:
    """Run an import with fetchers built on SafeFetcher (SSRF-safe, size and time bound)."""
    import email.utils

    from bridge.errors import FetchError
    from bridge.federation.context import user_agent
    from bridge.federation.fetch import SafeFetcher
    from bridge.site import importer

    async with SafeFetcher.from_config(
        config,
        max_bytes=importer.MAX_EXPORT_BYTES,
        timeout=120.0,
        user_agent=user_agent(config),
    ) as fetcher:

        async def fetch_source(url: str) -> importer.Fetched:
            page = await fetcher.get(url, accept=importer.FEED_ACCEPT)
            if not page.ok:
                raise FetchError(f"{url}: HTTP {page.status}", page.status)
            modified = None
            try:
                header = page.headers.get("last-modified")
                modified = email.utils.parsedate_to_datetime(header) if header else None
            except (TypeError, ValueError):
                modified = None
            return importer.Fetched(page.body, page.url, modified)

        async def fetch_page(url: str) -> str:
            page = await fetcher.get(url, accept="text/html, application/xhtml+xml;q=0.9")
            if not page.ok:
                raise FetchError(f"{url}: HTTP {page.status}", page.status)
            return page.text

        return await importer.import_feed_async(
            config,
            source,
            fetch_source=fetch_source,
            fetch_page=fetch_page if fetch_pages else None,
        )


commands: list[click.Command] = [new, import_]
