"""Sending to followers: ``publish`` (new, edited, deleted posts) and ``move``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from bridge.cli._common import build_with_progress, friendly, load_config, open_db, site_option

if TYPE_CHECKING:
    from bridge.config import SiteConfig
    from bridge.site.build import BuildResult
    from bridge.site.build_stamp import PostFacts


@click.command()
@site_option
@click.option("--no-webmentions", is_flag=True, help="Do not send webmentions.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Build, then print each activity that would be sent and to how many inboxes; "
    "queue, record and send nothing.",
)
@friendly
def publish(site_dir: Path, no_webmentions: bool, dry_run: bool) -> None:
    """Build, then send new, edited and deleted posts to followers.

    Mentions of `@user@host` in a post's text are resolved with WebFinger first (and
    cached), so they link to the account, and its Create, Update and Delete reach that
    account's inbox too. Creates go out for posts newer than `federate_since`, Updates
    for federated posts that changed, Deletes for federated posts that were removed;
    webmentions go to every link of a new or changed post and to links an edit removed.
    With a daemon running, the daemon delivers the queue; otherwise this command
    delivers it and exits when only retries scheduled for later remain. When nothing
    changed it says so.
    """
    from bridge import keys

    config = load_config(site_dir)
    keys.ensure(config.state_dir)
    built = build_with_progress(config)
    lookups, quiet = _pending(config, _facts(built), dry_run=dry_run)
    unresolved: list[str] = []
    if lookups:
        import asyncio

        from bridge.daemon import services

        posts = list(built.built_posts)
        changed, unresolved = asyncio.run(services.resolve_mentions(config, posts))
        if changed:  # newly resolved mentions become links: build again (from the cache)
            built = build_with_progress(config)
        quiet = False
    click.echo(built.summary())
    for line in unresolved:
        click.echo(f"warning: {line}", err=True)
    if quiet:  # nothing to queue, record or deliver: the HTTP stack and keys stay unloaded
        from bridge.federation.publish_report import PublishReport

        click.echo(PublishReport(dry_run=dry_run).summary())
        if not dry_run:
            click.echo(_DAEMON if _daemon_running(config) else _delivered(0, 0, 0, 0))
        return
    import asyncio

    from bridge.daemon import services

    posts = list(built.built_posts)  # parsed once, by the build
    outcome = asyncio.run(
        services.publish_and_deliver(
            config, posts, send_webmentions=not no_webmentions, dry_run=dry_run
        )
    )
    report, stats = outcome.report, outcome.stats
    for planned in report.planned if dry_run else []:
        click.echo(f"would send {planned.describe()}")
    click.echo(report.summary())
    if dry_run:
        return
    for result in report.webmentions:
        state = f"HTTP {result.status}" if result.status else (result.error or "failed")
        click.echo(f"webmention {result.target}: {state}")
    if stats is None:
        click.echo(_DAEMON)
        return
    click.echo(_delivered(stats.delivered, stats.retrying, stats.failed, stats.gone))


_DAEMON = "A daemon is running: it delivers the queue."


def _delivered(delivered: int, retrying: int, failed: int, gone: int) -> str:
    return f"Delivered {delivered}, retrying later {retrying}, failed {failed}, gone {gone}"


def _daemon_running(config: SiteConfig) -> bool:
    from bridge.daemon.lock import DaemonLock, lock_path

    return DaemonLock.held(lock_path(config))


def _facts(built: BuildResult) -> PostFacts:
    """What ``pending`` asks of the posts: kept by the stamp when the build found nothing
    changed (its posts are then not loaded unless a publish is due)."""
    from bridge.site.build_stamp import PostFacts, Unchanged

    return built.facts if isinstance(built, Unchanged) else PostFacts.of(built.built_posts)


def _pending(config: SiteConfig, facts: PostFacts, *, dry_run: bool) -> tuple[bool, bool]:
    """(handles or quoted posts to look up, nothing at all to do): read from the state
    database and the built files (``bridge.federation.pending``), before anything that
    sending needs is loaded."""
    from bridge.db import Database
    from bridge.federation import pending

    db = Database(config.db_path)
    try:
        if pending.lookups_due(config, db, facts):
            return True, False
        if pending.publish_due(config, db, facts):
            return False, False
        return False, dry_run or _daemon_running(config) or not pending.deliveries_due(db)
    finally:
        db.close()


@click.command()
@click.argument("new_account", required=False)
@click.option("--undo", is_flag=True, help="Forget a move made by mistake (see below).")
@site_option
@friendly
def move(new_account: str | None, undo: bool, site_dir: Path) -> None:
    """Send Move to every follower, pointing them at NEW_ACCOUNT (actor URL or @user@host).

    NEW_ACCOUNT must list this blog's actor in its alsoKnownAs first (on Mastodon:
    Preferences > Account > Moving from a different account); the move is refused
    otherwise. Afterwards the actor carries movedTo and every page says the blog has
    moved. `move --undo` removes both; the next publish tells followers' servers, but
    followers who already followed the new account stay there.
    """
    import asyncio

    from bridge import keys
    from bridge.daemon import services
    from bridge.federation import moving
    from bridge.federation.webfinger_client import resolve_handle

    if undo == bool(new_account):
        raise click.UsageError("give either NEW_ACCOUNT or --undo")
    config, db = open_db(site_dir)
    actor_keys = keys.load(config.state_dir)
    if undo:
        moving.record(db, None)
        build_with_progress(config)
        click.echo("Move forgotten; run 'indiebridge publish' to update followers' servers.")
        return

    async def run() -> None:
        ctx = services.build_context(config, db, actor_keys)
        try:
            target = str(new_account)
            if not target.startswith(("http://", "https://")):
                target = await resolve_handle(
                    ctx.fetcher, target, allow_private=config.allow_private_addresses
                )
            n = await moving.move(ctx, target)
            build_with_progress(config)  # the actor now carries movedTo
            click.echo(
                f"Move to {target} queued for {n} inbox(es); "
                "run 'indiebridge publish' or the daemon to deliver."
            )
        finally:
            await ctx.fetcher.aclose()

    asyncio.run(run())


commands: list[click.Command] = [publish, move]
