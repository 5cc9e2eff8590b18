"""``indiebridge vacuum``: the state database kept small (the inbox is a queue, not an
archive; ``bridge.federation.inbox.retention`` says what is kept and for how long)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from bridge.cli._common import friendly, open_db, site_option


@click.command()
@site_option
@friendly
def vacuum(site_dir: Path) -> None:
    """Prune what the retention rules no longer keep, compact the state database and print
    its size before and after.

    The daemon prunes by itself once an hour; this also gives the space back to the disk
    (SQLite VACUUM). Safe while the daemon runs.
    """
    from bridge.federation.inbox import retention

    _, db = open_db(site_dir)
    try:
        click.echo(retention.maintenance(db, time.time()).summary())
    finally:
        db.close()


commands: list[click.Command] = [vacuum]
