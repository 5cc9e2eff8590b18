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


site_option = click.option(
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
    from bridge import keys, site

    config = load_config(site_dir)
    keys.load_or_generate(config.state_dir)
    result = _build_with_progress(config, out_dir, drafts)
    click.echo(result.summary())


def _build_with_progress(config: SiteConfig, out_dir: Path | None, drafts: bool) -> Any:
    from bridge import site

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
