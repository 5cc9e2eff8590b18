"""Commands that write content: ``indiebridge import``.

``commands`` is added to the main group by ``bridge/cli/__init__.py``; the library work is
in ``bridge.site.importer``, imported inside the command so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from bridge.cli._common import friendly, load_config, site_option


@click.command("import")
@click.argument("source")
@site_option
@friendly
def import_(source: str, site_dir: Path) -> None:
    """Import posts from SOURCE: an RSS or Atom feed or a WordPress export, file or URL.

    Each entry becomes content/posts/<date>-<slug>.md with its title, dates, tags,
    summary and original_url; unpublished WordPress posts become drafts, WordPress pages
    go to content/pages/. Existing files are never overwritten: entries already imported
    (same original_url) are skipped with a message, so importing again changes nothing.
    URLs are fetched safely: private addresses are refused unless allow_private_addresses.
    """
    from bridge.site import importer

    config = load_config(site_dir)
    report = importer.import_feed(config, source)
    for line in importer.messages(report):
        click.echo(line)
    click.echo(report.summary())
    if report.written:
        click.echo(
            "Run 'indiebridge build' to see them. 'indiebridge publish' puts them in the "
            "outbox but announces none older than federate_since."
        )


commands: list[click.Command] = [import_]
