"""Command-line commands for conversations: comments, sent webmentions, webmention tools.

``commands`` lists the click commands for the main CLI to register with
``main.add_command``: the ``comments`` group (``list``, ``approve``, ``reject``,
``delete``), the ``conversations`` group (``backfill``) and the ``webmentions`` group
(``sent``, ``discover``, ``send``); the old ``webmention`` group is a hidden alias of
the tools.  User mistakes become one-line messages and heavy modules are imported inside
the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from bridge.cli._common import friendly, load_config, open_context, open_db, site_option

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from bridge.config import SiteConfig
    from bridge.federation.fetch import SafeFetcher

T = TypeVar("T")


def _snippet(html: str, width: int = 60) -> str:
    import html as html_lib
    import re

    text = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", html)).split())
    return text if len(text) <= width else text[: width - 1] + "…"


# ---- comments ---------------------------------------------------------------------------


@click.group()
def comments() -> None:
    """List and moderate comments (fediverse replies, likes, boosts and webmentions).

    `comments_policy` in site.toml decides whether new comments appear at once (open),
    only from accepted followers (followers) or after `comments approve` (manual).
    Private mentions (not public replies) are listed with status `private`; they never
    appear on the site.
    """


@comments.command("list")
@site_option
@click.option("--pending", is_flag=True, help="Only comments waiting for approval.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def comments_list(site_dir: Path, pending: bool, as_json: bool) -> None:
    """List comments oldest first: id, status, type, post, author and the start of the text."""
    from bridge.conversations import moderation

    with open_context(site_dir) as ctx:
        entries = moderation.list_comments(ctx, pending_only=pending)
    if as_json:
        click.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo("No pending comments." if pending else "No comments yet.")
    for e in entries:
        who = e["author"]["handle"] or e["author"]["name"]
        text = _snippet(e["content"]) or e["source"]
        click.echo(f"{e['id']}  {e['status']:8} {e['type']:8} {e['post'] or '-':24} {who}: {text}")


def _moderate(site_dir: Path, action: str, cid: str, wait: bool) -> None:
    """Change one comment, then update the pages: the running daemon rebuilds them, or
    this command does (``site_changes.settle``)."""
    from bridge.conversations import moderation
    from bridge.daemon import site_changes

    with open_context(site_dir) as ctx:
        before = ctx.comments.get(cid)  # a quote's approval is withdrawn with it (FEP-044f)
        if action == "approve":
            c = moderation.approve(ctx, cid)
            click.echo(f"Approved {c.type} {cid} by {c.author.name} on {c.target}")
        elif action == "reject":
            c = moderation.reject(ctx, cid)
            click.echo(f"Rejected {c.type} {cid} by {c.author.name}; it will not come back")
        else:
            kind = moderation.delete(ctx, cid)
            click.echo(f"Deleted {kind} {cid}")
            if kind == "private mention":
                return  # never on the site
        if action != "approve" and before is not None and before[1].type == "quote":
            from bridge.conversations import quotes

            if quotes.revoke_quote(ctx, before[1].object_id):
                click.echo("Withdrew that quote's approval: Delete of its stamp queued")
    click.echo(site_changes.settle(ctx.config, ctx.db, wait=wait))


# Pages are always updated now. The old --build stays, hidden, for one release: it rebuilds
# in this process and returns when the pages are written, even with a daemon running.
_build_option = click.option("--build", is_flag=True, hidden=True)


@comments.command("approve")
@click.argument("comment_id")
@site_option
@_build_option
@friendly
def comments_approve(comment_id: str, site_dir: Path, build: bool) -> None:
    """Show a pending comment on the site."""
    _moderate(site_dir, "approve", comment_id, build)


@comments.command("reject")
@click.argument("comment_id")
@site_option
@_build_option
@friendly
def comments_reject(comment_id: str, site_dir: Path, build: bool) -> None:
    """Delete a comment and refuse it if it is delivered or sent again."""
    _moderate(site_dir, "reject", comment_id, build)


@comments.command("delete")
@click.argument("comment_id")
@site_option
@_build_option
@friendly
def comments_delete(comment_id: str, site_dir: Path, build: bool) -> None:
    """Delete a comment or a private mention."""
    _moderate(site_dir, "delete", comment_id, build)


# ---- conversations: whole threads ---------------------------------------------------------


@click.group("conversations")
def conversations_group() -> None:
    """Whole threads: fetch replies the blog has not received."""


@conversations_group.command("backfill")
@click.argument("post")
@site_option
@click.option("--max-items", default=200, show_default=True, help="Remote objects to fetch.")
@click.option("--max-depth", default=3, show_default=True, help="Levels of replies to follow.")
@click.option("--max-pages", default=5, show_default=True, help="Pages per replies collection.")
@click.option("--time-budget", default=60.0, show_default=True, help="Seconds for the whole walk.")
@friendly
def conversations_backfill(
    post: str, site_dir: Path, max_items: int, max_depth: int, max_pages: int, time_budget: float
) -> None:
    """Fetch remote replies to the fediverse replies of POST (a slug or the post's URL).

    Walks the `replies` collection of each fediverse reply the post has (signed GETs,
    bounded by the options), stores replies-to-replies it did not receive as comments,
    under blocks and `comments_policy` as if they had been delivered, then updates the
    pages (the running daemon rebuilds them, or this command does).
    """
    import asyncio

    from bridge import keys
    from bridge.conversations import backfill
    from bridge.daemon import services, site_changes

    if min(max_items, max_depth, max_pages) < 1 or time_budget <= 0:
        raise click.UsageError(
            "--max-items, --max-depth, --max-pages and --time-budget must be > 0"
        )
    limits = backfill.Limits(
        max_items=max_items, max_depth=max_depth, max_pages=max_pages, seconds=time_budget
    )
    config, db = open_db(site_dir)
    ctx = services.build_context(config, db, keys.load_or_generate(config.state_dir))
    slug = ctx.post_slug(post) if "/" in post else post
    if slug is None or ctx.post_slug(config.post_url(slug)) is None:
        raise click.ClickException(
            f"{post}: not a built post of this site (give its slug or URL; build first)"
        )

    async def run(slug: str) -> backfill.BackfillReport:
        try:
            return await backfill.backfill(ctx, slug, limits)
        finally:
            await ctx.fetcher.aclose()

    report = asyncio.run(run(slug))
    line = report.summary()
    if report.stored:  # the running daemon rebuilds the post, or this command does
        line += " " + site_changes.settle(config, db)
    click.echo(line)


# ---- webmentions: what was sent, and the tools --------------------------------------------


def _list_sent(site_dir: Path, as_json: bool) -> None:
    from bridge.conversations import webmentions
    from bridge.db import Database

    config = load_config(site_dir)
    rows = webmentions.list_sent(Database(config.db_path))
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("No webmentions sent yet.")
    for r in rows:
        state = f"HTTP {r['status']}" if r["status"] is not None else "-"
        line = f"{r['sent']}  {state:8} {r['source']} -> {r['target']}"
        if r["error"]:
            line += f"  ({r['error']})"
        click.echo(line)


@click.group("webmentions", invoke_without_command=True)
@site_option
@click.option("--json", "as_json", is_flag=True, hidden=True)
@click.pass_context
@friendly
def webmentions_group(ctx: click.Context, site_dir: Path, as_json: bool) -> None:
    """Webmentions: what this site sent (`sent`), and `discover` / `send` by hand.

    `indiebridge webmentions` alone still lists what was sent, and the old
    `indiebridge webmention discover|send` still work, for one more release.
    """
    if ctx.invoked_subcommand is None:
        _list_sent(site_dir, as_json)


@webmentions_group.command("sent")
@site_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def webmentions_sent(site_dir: Path, as_json: bool) -> None:
    """Show the webmentions this site sent: target, endpoint and the answer."""
    _list_sent(site_dir, as_json)


# ---- webmention tools -----------------------------------------------------------------------


def _fetcher(site_dir: Path) -> tuple[SafeFetcher, SiteConfig | None]:
    """A fetcher with the site's settings (private addresses, user agent) when there is a
    site.toml, else the safe defaults."""
    from bridge import config as config_mod
    from bridge.federation.context import user_agent
    from bridge.federation.fetch import SafeFetcher

    if not (site_dir / config_mod.CONFIG_NAME).is_file():
        return SafeFetcher(), None
    config = load_config(site_dir)
    fetcher = SafeFetcher(
        allow_private=config.allow_private_addresses, user_agent=user_agent(config)
    )
    return fetcher, config


def _await(fetcher: SafeFetcher, work: Awaitable[T]) -> T:
    import asyncio

    async def main() -> T:
        try:
            return await work
        finally:
            await fetcher.aclose()

    return asyncio.run(main())


@webmentions_group.command("discover")
@click.argument("url")
@site_option
@friendly
def webmention_discover(url: str, site_dir: Path) -> None:
    """Print the Webmention endpoint of URL (exit 1 with the reason when there is none)."""
    from bridge.conversations.webmention_client import discover_endpoint

    fetcher, _ = _fetcher(site_dir)
    endpoint = _await(fetcher, discover_endpoint(fetcher, url))
    if endpoint is None:
        raise click.ClickException(f"{url}: no Webmention endpoint (no Link header or link)")
    click.echo(endpoint)


@webmentions_group.command("send")
@click.argument("source")
@click.argument("target")
@site_option
@friendly
def webmention_send(source: str, target: str, site_dir: Path) -> None:
    """Tell TARGET's endpoint that SOURCE links to it; print the endpoint's answer."""
    from bridge.conversations.webmention_client import send_webmention

    fetcher, config = _fetcher(site_dir)
    result = _await(fetcher, send_webmention(fetcher, source, target))
    if config is not None:
        from bridge.conversations import webmentions
        from bridge.db import Database

        webmentions.record_sent(Database(config.db_path), source, result)
    if not result.ok:
        raise click.ClickException(f"{target}: {result.error or 'failed'}")
    line = f"{result.endpoint}: HTTP {result.status}"
    if result.location:
        line += f" (status page: {result.location})"
    click.echo(line)


# The old name of the tools, hidden, for one more release.
webmention_alias = click.Group(
    "webmention",
    commands={"discover": webmention_discover, "send": webmention_send},
    hidden=True,
    help="Old name of `webmentions discover|send`.",
)

commands: list[click.Command] = [
    comments,
    conversations_group,
    webmentions_group,
    webmention_alias,
]
"""For the main group: ``for command in commands: main.add_command(command)``."""
