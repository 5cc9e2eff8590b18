"""What every command module shares: friendly errors, ``--site``, settings, the database.

No command module imports the ``main`` group or ``bridge.cli`` itself: each module lists
its commands in ``commands`` and ``bridge/cli/__init__.py`` registers them, so the
modules import this one and the library, never each other.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from bridge.config import SiteConfig
    from bridge.db import Database
    from bridge.federation.context import Context
    from bridge.site.build import BuildResult

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


SITE_ENV = "INDIEBRIDGE_SITE"
_SITE_META = "indiebridge.site"


def remember_site(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """``indiebridge --site blog build``: the group's ``--site`` for every subcommand."""
    if value is not None:
        ctx.meta[_SITE_META] = value


def _resolve_site(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    """The command's ``--site``, else the one given before the command, else
    ``$INDIEBRIDGE_SITE``, else the current folder."""
    if value is not None:
        return value
    before = ctx.meta.get(_SITE_META)
    if isinstance(before, Path):
        return before
    from_env = os.environ.get(SITE_ENV, "").strip()
    return Path(from_env) if from_env else Path(".")


SITE_HELP = (
    "Folder holding site.toml; may also come before the command or from "
    f"${SITE_ENV} (default: the current folder)."
)

site_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--site",
    "site_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    callback=_resolve_site,
    help=SITE_HELP,
)


def load_config(site_dir: Path, **overrides: Any) -> SiteConfig:
    from bridge import config

    return config.load(site_dir, {k: v for k, v in overrides.items() if v is not None})


def open_db(site_dir: Path) -> tuple[SiteConfig, Database]:
    """The site's settings and its state database."""
    from bridge.db import Database

    config = load_config(site_dir)
    return config, Database(config.db_path)


@contextmanager
def open_context(site_dir: Path) -> Iterator[Context]:
    """The services of the site for one command; the fetcher is closed afterwards."""
    import asyncio

    from bridge import keys
    from bridge.daemon import services

    config, db = open_db(site_dir)
    ctx = services.build_context(config, db, keys.load_or_generate(config.state_dir))
    try:
        yield ctx
    finally:
        asyncio.run(ctx.fetcher.aclose())


def build_with_progress(
    config: SiteConfig,
    out_dir: Path | None = None,
    drafts: bool = False,
    *,
    strict: bool = False,
    live_reload: bool = False,
    freeze: bool = False,
) -> BuildResult:
    """``site.build`` with a progress bar on a terminal, then one line per warning; a
    command's build, which stops early when nothing changed (``site.build_stamp``),
    before it imports the build (a tenth of a second of the command).

    ``freeze``: for a process that exits after the build, whatever is alive once the
    build is imported (the modules) is left out of the collector's full passes, which
    were a tenth of a one-post rebuild's CPU time."""
    from bridge.site import build_stamp

    with build_stamp.for_command():
        where = (out_dir or config.output_dir).resolve()
        stamp = build_stamp.Stamp(
            config, where, _build, drafts=drafts, strict=strict, live_reload=live_reload
        )
        if stamp.unchanged is not None:
            result: BuildResult = stamp.unchanged
        else:
            from bridge.site import build as site

            if freeze:
                gc.freeze()
            result = _with_progress_bar(
                functools.partial(
                    site.build,
                    config,
                    out_dir=out_dir,
                    drafts=drafts,
                    strict=strict,
                    live_reload=live_reload,
                    stamp=stamp,
                )
            )
    if result.warnings:  # one write: a site with thousands of warnings paid one echo each
        click.echo("".join(f"warning: {w}\n" for w in result.warnings), err=True, nl=False)
    return result


def _build(*args: Any, **kwargs: Any) -> BuildResult:
    from bridge.site import build as site

    return site.build(*args, **kwargs)


def _with_progress_bar(run: Callable[..., BuildResult]) -> BuildResult:
    if not sys.stderr.isatty():
        return run()
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None and total > 200:
            bar = click.progressbar(length=total, label="Writing", file=sys.stderr)
            bar.__enter__()
        if bar is not None:
            bar.update(1)

    try:
        return run(progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
