"""The writing-loop commands: ``indiebridge watch`` and ``indiebridge import``.

``commands`` is added to the main group by ``bridge/cli.py``; the library work is in
``bridge.watch`` and ``bridge.importer``, imported inside the commands so ``--help`` stays
fast.
"""

from __future__ import annotations

import threading
from pathlib import Path

import click

from bridge.cli import friendly, load_config, site_option


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
    click.echo(
        f"Production build for {config.base_url}; for a preview at a local address, "
        "run `indiebridge serve --watch`"
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


commands: list[click.Command] = [watch, import_]
