"""Sending to followers: ``publish`` (new, edited, deleted posts) and ``move``."""

from __future__ import annotations

from pathlib import Path

import click

from bridge.cli._common import build_with_progress, friendly, load_config, open_db, site_option


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
    import asyncio

    from bridge import keys
    from bridge.daemon import services

    config = load_config(site_dir)
    keys.ensure(config.state_dir)
    built = build_with_progress(config)
    changed, unresolved = asyncio.run(services.resolve_mentions(config, list(built.built_posts)))
    if changed:  # newly resolved mentions become links: build again (from the cache)
        built = build_with_progress(config)
    click.echo(built.summary())
    for line in unresolved:
        click.echo(f"warning: {line}", err=True)
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
        click.echo("A daemon is running: it delivers the queue.")
        return
    click.echo(
        f"Delivered {stats.delivered}, retrying later {stats.retrying}, "
        f"failed {stats.failed}, gone {stats.gone}"
    )


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
