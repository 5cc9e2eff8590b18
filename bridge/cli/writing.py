"""Commands that write content: ``indiebridge import``.

``commands`` is added to the main group by ``bridge/cli/__init__.py``; the library work is
in ``bridge.site.importer``, imported inside the command so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from bridge.cli._common import friendly, load_config, site_option

if TYPE_CHECKING:
    from bridge.config import SiteConfig
    from bridge.site.importer import ImportReport


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
    """Import posts from SOURCE: an RSS or Atom feed or a WordPress export, file or URL.

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


commands: list[click.Command] = [import_]
