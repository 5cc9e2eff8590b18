"""``indiebridge deliveries``: the delivery queue, row by row."""

from __future__ import annotations

from pathlib import Path

import click

from bridge.cli._common import friendly, open_db, site_option


@click.command()
@site_option
@click.option("--failed", is_flag=True, help="Only deliveries that failed or were gone.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def deliveries(site_dir: Path, failed: bool, as_json: bool) -> None:
    """Show the delivery queue: state, tries, next attempt and last error per inbox."""
    import datetime as dt
    import json

    from bridge.federation import delivery

    _, db = open_db(site_dir)
    rows = delivery.list_deliveries(db, failed_only=failed)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("No deliveries.")
    for r in rows:
        when = dt.datetime.fromtimestamp(r["next_try"], dt.UTC).strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{r['state']:8} tries={r['tries']:<2} next={when} {r['type']:7} -> {r['inbox']}"
            + (f"  ({r['last_error']})" if r["last_error"] else "")
        )


commands: list[click.Command] = [deliveries]
