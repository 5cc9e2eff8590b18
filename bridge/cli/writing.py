"""The writing-loop commands: ``indiebridge watch`` and ``indiebridge import``.

``commands`` is added to the main group by ``bridge/cli.py``; the library work is in
``bridge.watch`` and ``bridge.importer``, imported inside the commands so ``--help`` stays
fast.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bridge.cli import friendly, load_config, site_option

if TYPE_CHECKING:
    from bridge.config import SiteConfig
    from bridge.site.importer import ImportReport


@click.command()
@site_option
@click.option("--drafts", is_flag=True, help="Include posts marked draft: true.")
@click.option(
    "--stop-after",
    type=float,
    default=None,
    hidden=True,
    help="Stop after this many seconds (for scripts and tests).",
)
@friendly
def watch(site_dir: Path, drafts: bool, stop_after: float | None) -> None:
    """Rebuild the site whenever you save a post, page, template, static file or site.toml.

    Build only: serve public/ with anything you like, or use `indiebridge serve --watch` to
    serve it too and have open pages reload by themselves. A burst of saves is one
    rebuild, and only the pages that changed are rewritten. A broken file prints one
    line naming it, and the last good output stays in place. With `auto_publish = true`
    in site.toml, each rebuild that changed something is also published.
    """
    from bridge import keys
    from bridge.daemon.watch import SiteWatcher, cli_publisher, terminal_reporter

    config = load_config(site_dir)
    keys.load_or_generate(config.state_dir)
    watcher = SiteWatcher(
        config,
        terminal_reporter(None, click.echo, config),
        on_publish=cli_publisher(config, click.echo),
        live_reload=False,
        drafts=drafts,
    )
    click.echo(
        f"Watching {config.site_dir}: content/, templates/, static/, the theme and "
        f"site.toml; output in {config.output_dir} (Ctrl+C to stop)"
    )
    watcher.start()
    try:
        threading.Event().wait(stop_after)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
    click.echo("Stopped watching.")


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


commands: list[click.Command] = [watch, import_]
