"""The ``indiebridge`` command line: thin click commands over library functions.

User mistakes (``BridgeError``) become one-line messages and a non-zero exit, never a
traceback.  Heavy modules are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bridge import __version__

if TYPE_CHECKING:
    from bridge.config import SiteConfig

F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn BridgeError into a one-line ClickException."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from bridge.errors import BridgeError

        try:
            return fn(*args, **kwargs)
        except BridgeError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


site_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--site",
    "site_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Folder holding site.toml.",
)


def load_config(site_dir: Path, **overrides: Any) -> SiteConfig:
    from bridge import config

    return config.load(site_dir, {k: v for k, v in overrides.items() if v is not None})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="indiebridge")
def main() -> None:
    """Own your fediverse presence from a static blog.

    `build` turns content/ into a blog that is also an ActivityPub actor; `serve` runs the
    site with its inbox and delivery worker; `publish` sends new, edited and deleted posts
    to followers and webmentions to the pages they link.
    """


# ---- init ---------------------------------------------------------------------------

SITE_TOML = """\
title = "{title}"
description = "A blog that is also a fediverse account."
language = "en"
base_url = "{base_url}"
username = "{username}"
posts_per_page = 10
# fediverse_format = "article"   # or "note": how titled posts look on Mastodon
# federation_url = ""           # where the daemon's inbox lives; defaults to base_url
# also_known_as = []            # previous fediverse accounts, to Move followers here
# comments_policy = "open"      # open | followers | manual

[author]
name = "{author}"
url = "{base_url}/"
avatar = ""
bio = ""
fields = []
"""

FIRST_POST = """\
---
title: Hello, fediverse
date: {date}
tags: [meta]
summary: This blog can now be followed from Mastodon and every other fediverse server.
---
This is the first post. Edit `content/posts/hello.md`, run `indiebridge build`, and
follow **@{username}@{host}** from any fediverse account once the site is live.
"""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--title", default="My blog", show_default=True, help="Site title.")
@click.option(
    "--base-url", default="https://blog.example", show_default=True, help="Public URL of the blog."
)
@click.option("--username", default="blog", show_default=True, help="Actor username.")
@click.option("--author", default="Blog Author", show_default=True, help="Author name.")
@friendly
def init(directory: Path, title: str, base_url: str, username: str, author: str) -> None:
    """Create a new site in DIRECTORY: site.toml, a first post and the actor's keys.

    Private keys are written with mode 0600 under .indiebridge/ (git-ignored), never
    under the output folder.
    """
    import datetime as dt

    from bridge import keys

    directory.mkdir(parents=True, exist_ok=True)
    toml = directory / "site.toml"
    if toml.exists():
        click.echo(f"{toml}: exists, left as it is")
    else:
        toml.write_text(
            SITE_TOML.format(
                title=title.replace('"', '\\"'),
                base_url=base_url.rstrip("/"),
                username=username,
                author=author.replace('"', '\\"'),
            ),
            encoding="utf-8",
        )
        click.echo(f"wrote {toml}")
    posts = directory / "content" / "posts"
    posts.mkdir(parents=True, exist_ok=True)
    (directory / "content" / "pages").mkdir(exist_ok=True)
    first = posts / "hello.md"
    if not any(posts.glob("*.md")):
        from urllib.parse import urlsplit

        first.write_text(
            FIRST_POST.format(
                date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                username=username,
                host=urlsplit(base_url).netloc,
            ),
            encoding="utf-8",
        )
        click.echo(f"wrote {first}")
    ignore = directory / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    wanted = [".indiebridge/", "public/"]
    missing = [w for w in wanted if w not in lines]
    if missing:
        ignore.write_text("\n".join([*lines, *missing]) + "\n", encoding="utf-8")
    state = directory / ".indiebridge"
    if (state / "keys").exists():
        click.echo(f"{state / 'keys'}: keys exist, kept")
    else:
        keys.generate(state)
        click.echo(f"created RSA-2048 and Ed25519 keys in {state / 'keys'} (mode 0600)")


# ---- build ----------------------------------------------------------------------------


@main.command()
@site_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: public/ in the site folder).",
)
@click.option("--drafts", is_flag=True, help="Include posts marked draft: true.")
@friendly
def build(site_dir: Path, out_dir: Path | None, drafts: bool) -> None:
    """Build the static site: HTML, feeds, ActivityPub and WebFinger documents.

    The output is written to a temporary folder and swapped in; on any error the previous
    output stays as it was and the command exits non-zero.
    """
    from bridge import keys

    config = load_config(site_dir)
    keys.load_or_generate(config.state_dir)
    result = _build_with_progress(config, out_dir, drafts)
    click.echo(result.summary())


def _build_with_progress(config: SiteConfig, out_dir: Path | None, drafts: bool) -> Any:
    from bridge.site import build as site

    if sys.stderr.isatty():
        bar: Any = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None and total > 200:
                bar = click.progressbar(length=total, label="Writing", file=sys.stderr)
                bar.__enter__()
            if bar is not None:
                bar.update(1)

        try:
            return site.build(config, out_dir=out_dir, drafts=drafts, progress=progress)
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
    return site.build(config, out_dir=out_dir, drafts=drafts)


# ---- keys -----------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """The actor's key pairs."""


@keys.command("show")
@site_option
@friendly
def keys_show(site_dir: Path) -> None:
    """Print the public keys and their ids (never the private keys)."""
    from bridge import keys as keymod

    config = load_config(site_dir)
    actor_keys = keymod.load(config.state_dir)
    click.echo(f"RSA key id:     {config.key_id}")
    click.echo(actor_keys.public_pem.rstrip())
    click.echo(f"Ed25519 key id: {config.ed25519_key_id}")
    click.echo(f"publicKeyMultibase: {actor_keys.ed25519_multibase}")


# ---- daemon side ------------------------------------------------------------------


def _open(site_dir: Path) -> tuple[SiteConfig, Any]:
    from bridge.db import Database

    config = load_config(site_dir)
    return config, Database(config.db_path)


@main.command()
@site_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option("--no-build", is_flag=True, help="Serve the existing output without building.")
@click.option(
    "--watch", is_flag=True, help="Rebuild on save and reload open pages (while writing)."
)
@friendly
def serve(site_dir: Path, host: str, port: int, no_build: bool, watch: bool) -> None:
    """Build, then serve the site with its inbox, WebFinger and delivery worker.

    One process: static files (with ActivityPub content negotiation), the actor and
    shared inboxes, the Webmention endpoint, and the background workers that deliver
    activities, process the inbox and rebuild pages when comments arrive. With --watch,
    saving a post, template or site.toml rebuilds what changed and open tabs reload.
    """
    import uvicorn

    from bridge import keys
    from bridge.daemon import app as daemon

    config = load_config(site_dir)
    keys.load_or_generate(config.state_dir)
    if not no_build:
        click.echo(_build_with_progress(config, None, False).summary())
    app = daemon.create_app(config, watch=watch)
    click.echo(f"Serving {config.base_url} on http://{host}:{port} (Ctrl+C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=True)


@main.command()
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

    Creates go out for posts newer than `federate_since`, Updates for federated posts that
    changed, Deletes for federated posts that were removed; webmentions go to every link
    of a new or changed post and to links an edit removed. With a daemon running, the
    daemon delivers the queue; otherwise this command delivers it and exits when only
    retries scheduled for later remain. When nothing changed it says so.
    """
    import asyncio

    from bridge import keys
    from bridge.daemon import app as daemon
    from bridge.federation import delivery, outbox
    from bridge.federation.context import make_context

    config, db = _open(site_dir)
    actor_keys = keys.load_or_generate(config.state_dir)
    built = _build_with_progress(config, None, False)
    click.echo(built.summary())
    posts = list(built.built_posts)  # parsed once, by the build
    running = daemon.DaemonLock.held(daemon.lock_path(config))

    async def run() -> None:
        ctx = make_context(config, db, actor_keys)
        try:
            from bridge.conversations.post_mentions import PostWebmentions

            mentions = None if no_webmentions or dry_run else PostWebmentions(ctx)
            report = await outbox.publish(ctx, posts, webmentions=mentions, dry_run=dry_run)
            for planned in report.planned if dry_run else []:
                click.echo(f"would send {planned.describe()}")
            click.echo(report.summary())
            if dry_run:
                return
            for result in report.webmentions:
                state = f"HTTP {result.status}" if result.status else (result.error or "failed")
                click.echo(f"webmention {result.target}: {state}")
            if running:
                click.echo("A daemon is running: it delivers the queue.")
                return
            worker = delivery.DeliveryWorker(
                db,
                private_key=actor_keys.rsa,
                key_id=config.key_id,
                scheme=config.signature_scheme,  # type: ignore[arg-type]
                allow_private=config.allow_private_addresses,
                base_url=config.base_url,
                on_gone=lambda inbox_url: _gone(db, inbox_url),
            )
            worker.recover()
            stats = await worker.run_until_idle()
            click.echo(
                f"Delivered {stats.delivered}, retrying later {stats.retrying}, "
                f"failed {stats.failed}, gone {stats.gone}"
            )
        finally:
            await ctx.fetcher.aclose()

    asyncio.run(run())


def _gone(db: Any, inbox_url: str) -> None:
    from bridge.federation import followers

    followers.remove_by_inbox(db, inbox_url)


@main.group()
def followers() -> None:
    """List, approve and remove followers."""


@followers.command("list")
@site_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--pending", is_flag=True, help="Only follow requests waiting for approval.")
@friendly
def followers_list(site_dir: Path, as_json: bool, pending: bool) -> None:
    """List followers (handle, actor URL, state)."""
    import json

    from bridge.federation import followers as fmod

    _, db = _open(site_dir)
    rows = fmod.all_followers(db, "pending" if pending else None)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "actor": f.actor,
                        "handle": f.handle,
                        "inbox": f.inbox,
                        "shared_inbox": f.shared_inbox,
                        "state": f.state,
                    }
                    for f in rows
                ],
                indent=2,
            )
        )
        return
    if not rows:
        click.echo("No followers yet.")
    for f in rows:
        click.echo(f"{f.handle or '-':40} {f.state:9} {f.actor}")


def _account(db: Any, account: str) -> Any:
    from bridge.federation import followers as fmod

    found = fmod.find(db, account)
    if found is None:
        raise click.ClickException(f"{account}: not a follower (see 'indiebridge followers list')")
    return found


@followers.command("approve")
@click.argument("account")
@site_option
@friendly
def followers_approve(account: str, site_dir: Path) -> None:
    """Approve a pending follower (handle or actor URL) and send the Accept."""
    import asyncio

    from bridge import keys
    from bridge.federation import delivery, inbox

    config, db = _open(site_dir)
    follower = _account(db, account)
    actor_keys = keys.load(config.state_dir)
    queued: list[tuple[dict[str, Any], list[str]]] = []

    from bridge.federation.context import make_context

    ctx = make_context(config, db, actor_keys)
    ctx.enqueue = lambda activity, inboxes: queued.append((activity, inboxes))
    inbox.accept_pending(ctx, follower.actor)
    for activity, inboxes in queued:
        delivery.enqueue(db, activity, inboxes)
    asyncio.run(ctx.fetcher.aclose())
    click.echo(f"Approved {follower.handle or follower.actor}; the Accept is queued.")


@followers.command("remove")
@click.argument("account")
@site_option
@friendly
def followers_remove(account: str, site_dir: Path) -> None:
    """Remove a follower (handle or actor URL)."""
    from bridge.federation import followers as fmod

    _, db = _open(site_dir)
    follower = _account(db, account)
    fmod.remove(db, follower.actor)
    click.echo(f"Removed {follower.handle or follower.actor}")


@main.command()
@click.argument("pattern")
@site_option
@friendly
def block(pattern: str, site_dir: Path) -> None:
    """Block a domain (example.com) or an account (@user@host or actor URL).

    Blocked follows are rejected, a blocked follower is removed, and the blocked
    author's comments are deleted from the site.
    """
    from bridge.federation import followers as fmod

    config, db = _open(site_dir)
    stored = fmod.block(db, pattern)
    removed = 0
    for f in fmod.all_followers(db):
        if fmod.is_blocked(db, f.actor, f.handle):
            fmod.remove(db, f.actor)
            removed += 1
    click.echo(f"Blocked {stored}; removed {removed} follower(s).")
    import asyncio

    from bridge import keys
    from bridge.conversations import moderation
    from bridge.federation.context import make_context

    ctx = make_context(config, db, keys.load(config.state_dir))
    try:
        deleted = moderation.apply_blocks(ctx)
    finally:
        asyncio.run(ctx.fetcher.aclose())
    if deleted:
        click.echo(
            f"Deleted {len(deleted)} comment(s) by blocked authors; "
            "run 'indiebridge build' (or let the daemon rebuild) to update pages."
        )


@main.command()
@click.argument("pattern")
@site_option
@friendly
def unblock(pattern: str, site_dir: Path) -> None:
    """Lift a block."""
    from bridge.federation import followers as fmod

    _, db = _open(site_dir)
    if fmod.unblock(db, pattern):
        click.echo(f"Unblocked {pattern}")
    else:
        raise click.ClickException(f"{pattern}: not blocked")


@main.command()
@site_option
@click.option("--failed", is_flag=True, help="Only deliveries that failed or were gone.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def deliveries(site_dir: Path, failed: bool, as_json: bool) -> None:
    """Show the delivery queue: state, tries, next attempt and last error per inbox."""
    import datetime as dt
    import json

    from bridge.federation import delivery

    _, db = _open(site_dir)
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


@main.command()
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
    from bridge.federation import moving
    from bridge.federation.context import make_context

    if undo == bool(new_account):
        raise click.UsageError("give either NEW_ACCOUNT or --undo")
    config, db = _open(site_dir)
    actor_keys = keys.load(config.state_dir)
    if undo:
        moving.record(db, None)
        _build_with_progress(config, None, False)
        click.echo("Move forgotten; run 'indiebridge publish' to update followers' servers.")
        return

    async def run() -> None:
        ctx = make_context(config, db, actor_keys)
        try:
            target = str(new_account)
            if not target.startswith(("http://", "https://")):
                target = await _resolve_handle(ctx, target)
            n = await moving.move(ctx, target)
            _build_with_progress(config, None, False)  # the actor now carries movedTo
            click.echo(
                f"Move to {target} queued for {n} inbox(es); "
                "run 'indiebridge publish' or the daemon to deliver."
            )
        finally:
            await ctx.fetcher.aclose()

    asyncio.run(run())


async def _resolve_handle(ctx: Any, handle: str) -> str:
    """WebFinger ``@user@host`` to its actor id."""
    import json

    from bridge.errors import FetchError

    user, _, host = handle.lstrip("@").partition("@")
    if not user or not host:
        raise click.ClickException(f"{handle}: expected @user@host or an actor URL")
    scheme = (
        "http"
        if ctx.config.allow_private_addresses and host.startswith(("127.", "localhost"))
        else "https"
    )
    url = f"{scheme}://{host}/.well-known/webfinger?resource=acct:{user}@{host}"
    page = await ctx.fetcher.get(url, accept="application/jrd+json, application/json")
    if page.status != 200:
        raise FetchError(f"{url}: HTTP {page.status}")
    for link in json.loads(page.body).get("links", []):
        if link.get("rel") == "self" and isinstance(link.get("href"), str):
            return str(link["href"])
    raise FetchError(f"{url}: no ActivityPub actor link")


# Commands defined beside the features they drive (they import the helpers above, so
# they are registered last).
from bridge.cli.conversations import commands as _conversation_commands  # noqa: E402
from bridge.cli.writing import commands as _writing_commands  # noqa: E402

for _command in [*_conversation_commands, *_writing_commands]:
    main.add_command(_command)
