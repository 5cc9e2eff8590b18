"""Who follows and who may not: ``followers list|approve|remove``, ``block``, ``unblock``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bridge.cli._common import friendly, open_context, open_db, site_option

if TYPE_CHECKING:
    from bridge.db import Database
    from bridge.federation.followers import Follower


@click.group("followers")
def followers_group() -> None:
    """List, approve and remove followers."""


@followers_group.command("list")
@site_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--pending", is_flag=True, help="Only follow requests waiting for approval.")
@friendly
def followers_list(site_dir: Path, as_json: bool, pending: bool) -> None:
    """List followers (handle, actor URL, state)."""
    from bridge.federation import followers

    _, db = open_db(site_dir)
    rows = followers.all_followers(db, "pending" if pending else None)
    if as_json:
        fields = ("actor", "handle", "inbox", "shared_inbox", "state")
        click.echo(json.dumps([{k: getattr(f, k) for k in fields} for f in rows], indent=2))
        return
    if not rows:
        click.echo("No followers yet.")
    for f in rows:
        click.echo(f"{f.handle or '-':40} {f.state:9} {f.actor}")


def _account(db: Database, account: str) -> Follower:
    from bridge.federation import followers

    found = followers.find(db, account)
    if found is None:
        raise click.ClickException(f"{account}: not a follower (see 'indiebridge followers list')")
    return found


@followers_group.command("approve")
@click.argument("account")
@site_option
@friendly
def followers_approve(account: str, site_dir: Path) -> None:
    """Approve a pending follower (handle or actor URL) and send the Accept."""
    from bridge.federation import inbox

    with open_context(site_dir) as ctx:
        follower = _account(ctx.db, account)
        inbox.accept_pending(ctx, follower.actor)  # queues the Accept
    click.echo(f"Approved {follower.handle or follower.actor}; the Accept is queued.")


@followers_group.command("remove")
@click.argument("account")
@site_option
@friendly
def followers_remove(account: str, site_dir: Path) -> None:
    """Remove a follower (handle or actor URL)."""
    from bridge.daemon import site_changes
    from bridge.federation import followers

    config, db = open_db(site_dir)
    follower = _account(db, account)
    followers.remove(db, follower.actor)
    click.echo(f"Removed {follower.handle or follower.actor}")
    click.echo(site_changes.settle(config, db))


@click.command()
@click.argument("pattern")
@site_option
@friendly
def block(pattern: str, site_dir: Path) -> None:
    """Block a domain (example.com) or an account (@user@host or actor URL).

    Blocked follows are rejected, a blocked follower is removed, and the blocked
    author's comments are deleted from the site.
    """
    from bridge.daemon import site_changes

    with open_context(site_dir) as ctx:
        result = site_changes.block(ctx, pattern)
    click.echo(f"Blocked {result.pattern}; removed {result.followers_removed} follower(s).")
    if result.comments_deleted:
        click.echo(f"Deleted {len(result.comments_deleted)} comment(s) by blocked authors.")
    if result.followers_removed or result.comments_deleted:
        click.echo(site_changes.settle(ctx.config, ctx.db))


@click.command()
@click.argument("pattern")
@site_option
@friendly
def unblock(pattern: str, site_dir: Path) -> None:
    """Lift a block."""
    from bridge.federation import followers

    _, db = open_db(site_dir)
    if followers.unblock(db, pattern):
        click.echo(f"Unblocked {pattern}")
    else:
        raise click.ClickException(f"{pattern}: not blocked")


@click.group("blocks")
def blocks_group() -> None:
    """What is blocked (see `block` and `unblock`)."""


@blocks_group.command("list")
@site_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def blocks_list(site_dir: Path, as_json: bool) -> None:
    """List blocked domains and accounts, one per line."""
    from bridge.federation import followers

    _, db = open_db(site_dir)
    patterns = followers.blocks(db)
    if as_json:
        click.echo(json.dumps(patterns, indent=2))
        return
    if not patterns:
        click.echo("Nothing is blocked.")
    for pattern in patterns:
        click.echo(pattern)


commands: list[click.Command] = [followers_group, block, unblock, blocks_group]
