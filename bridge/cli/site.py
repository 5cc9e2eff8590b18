"""The site's life cycle: ``init``, ``build``, ``serve`` and ``watch``."""

from __future__ import annotations

import errno
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bridge.cli._common import build_with_progress, friendly, load_config, site_option

if TYPE_CHECKING:
    import socket

    from bridge.config import SiteConfig

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
# comments_per_page = 50        # replies on a post's page; older ones get pages of their own

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


@click.command()
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

    from bridge import keys, settings

    problems = [
        (option, value, problem)
        for option, value, problem in (
            ("--base-url", base_url, settings.base_url_problem(base_url)),
            ("--username", username, settings.username_problem(username)),
        )
        if problem
    ]
    if problems:
        option, value, problem = problems[0]
        raise click.ClickException(f"{option} {value!r}: {problem}")
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
    click.echo(next_steps(directory))


def next_steps(directory: Path) -> str:
    """The three commands that follow ``init`` (``new`` writes a draft, which the preview
    shows only with ``--drafts``)."""
    import shlex

    site = "" if directory == Path(".") else f" --site {shlex.quote(str(directory))}"
    rows = [
        (f'indiebridge new "My first post"{site}', "write a post"),
        (
            f"indiebridge serve --watch --drafts{site}",
            "preview on http://127.0.0.1:8000 with drafts, rebuilt on save",
        ),
        (f"indiebridge publish{site}", "send posts to followers once the site is live"),
    ]
    width = max(len(command) for command, _ in rows)
    return "Next:\n" + "\n".join(f"  {cmd:{width}}  # {why}" for cmd, why in rows)


@click.command()
@site_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: public/ in the site folder).",
)
@click.option("--drafts", is_flag=True, help="Include posts marked draft: true.")
@click.option(
    "--strict", is_flag=True, help="Stop on warnings too (a Markdown image that is missing)."
)
@friendly
def build(site_dir: Path, out_dir: Path | None, drafts: bool, strict: bool) -> None:
    """Build the static site: HTML, feeds, ActivityPub and WebFinger documents.

    The output is written to a temporary folder and swapped in; on any error the previous
    output stays as it was and the command exits non-zero.
    """
    from bridge import keys

    config = load_config(site_dir)
    keys.ensure(config.state_dir)
    result = build_with_progress(config, out_dir, drafts, strict=strict, freeze=True)
    click.echo(result.summary())


@click.command()
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
@click.option("--drafts", is_flag=True, help="Include posts marked draft: true (never published).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per event (follow, comment, webmention, rebuild, delivery given up).",
)
@click.option(
    "--preview/--production",
    "preview_flag",
    default=None,
    help="Preview: build for the address served here, into .indiebridge/preview/, and never "
    "federate. Production: serve public/ as base_url, with inbox and delivery. Default: "
    "production only when listening at base_url's own host and port.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="HTTP worker processes on the one port (default: one per core, at most 4; "
    "--watch uses 1).",
)
@friendly
def serve(
    site_dir: Path,
    host: str,
    port: int,
    no_build: bool,
    watch: bool,
    drafts: bool,
    log_format: str,
    preview_flag: bool | None,
    workers: int | None,
) -> None:
    """Build, then serve the site with its inbox, WebFinger and delivery worker.

    HTTP worker processes share the port and answer requests: static files (with
    ActivityPub content negotiation), the actor and shared inboxes, the Webmention
    endpoint. One background process delivers activities and processes the inbox, and
    one rebuild process rebuilds pages when comments arrive. With --workers 1 (and with
    --watch) one process does all of it. With --watch, saving a post, template or
    site.toml rebuilds what changed and open tabs reload.

    On a laptop, where the address served is not base_url, it runs a preview instead: the
    site is built for that address (styles, images, links and feeds all work there) and
    nothing federates. Behind a reverse proxy, run it with --production.
    """
    import socket  # (not at the top: a one-post `build` does not need it)

    from bridge.daemon import preload, processes

    preload.keep_out_unused()  # before uvicorn and httpx are imported
    import uvicorn

    from bridge import keys
    from bridge.daemon import app as daemon
    from bridge.daemon import events
    from bridge.federation import limits
    from bridge.site import preview

    config = load_config(site_dir)
    keys.load_or_generate(config.state_dir)
    # Bind first: a port in use is one line, before any "Serving" line or build output.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = (
            "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
        )
        raise click.ClickException(
            f"{host}:{port} {reason}; stop the other server or pass --port"
        ) from None
    if preview_flag is None:
        preview_flag = preview.mode(config, host, port) == "preview"
    if preview_flag:
        _serve_preview(config, sock, host, port, no_build=no_build, watch=watch, drafts=drafts)
        return
    click.echo(f"Production: serving {config.base_url} with its inbox and delivery")
    if not no_build:
        click.echo(build_with_progress(config, drafts=drafts).summary())
    events.configure(log_format)
    workers = 1 if watch else (workers or processes.default_workers())
    listen = f"http://{host}:{port}"
    where = listen if config.base_url.rstrip("/") == listen else f"{config.base_url} on {listen}"
    if workers > 1:
        click.echo(
            f"Serving {where} with {workers} HTTP workers, a background and a rebuild "
            "process (Ctrl+C to stop)"
        )
        raise SystemExit(processes.serve(config, sock, workers=workers, drafts=drafts))
    # What one client may hold open or send (bridge.federation.limits; SECURITY.md).
    app = limits.HTTPLimits(daemon.create_app(config, watch=watch, drafts=drafts))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            proxy_headers=True,
            host=host,
            port=port,
            **limits.uvicorn_options(),
        )
    )
    click.echo(f"Serving {where} (Ctrl+C to stop)")
    server.run(sockets=[sock])


def _serve_preview(
    config: SiteConfig,
    sock: socket.socket,
    host: str,
    port: int,
    *,
    no_build: bool,
    watch: bool,
    drafts: bool,
) -> None:
    """`serve` in preview mode: build for the local address, serve it, never federate."""
    import uvicorn

    from bridge.daemon.preview import create_preview_app
    from bridge.site import preview

    url = preview.listen_url(host, port)
    local = preview.preview_config(config, url)
    click.echo(
        f"Preview of {config.base_url} at {url}: built in {local.output_dir}, "
        "not federating (--production to serve as the blog)"
    )
    warned: list[str] = []
    if not no_build:
        result = build_with_progress(local, drafts=drafts, live_reload=watch)
        click.echo(result.summary())
        warned = result.warnings
    app = create_preview_app(local, watch=watch, drafts=drafts, echo=click.echo, warned=warned)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", host=host, port=port))
    click.echo(f"Serving the preview on {url} (Ctrl+C to stop)")
    server.run(sockets=[sock])


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
    from bridge.daemon.autopublish import cli_publisher
    from bridge.daemon.build_report import terminal_reporter
    from bridge.daemon.watch import SiteWatcher

    config = load_config(site_dir)
    keys.ensure(config.state_dir)
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


commands: list[click.Command] = [init, build, serve, watch]
