"""The ``indiebridge`` command line: thin click commands over library functions.

Each command group lives in its own module (``site``, ``publishing``, ``followers``,
``deliveries``, ``keys``, ``conversations``, ``writing``, ``doctor``, ``state``) and lists
its commands in ``commands``; this module creates the group and registers them.  The shared helpers
(friendly errors, ``--site``, settings, the database and the ``Context``) are in
``bridge.cli._common``, so no command module imports this one.

User mistakes (``BridgeError``) become one-line messages and a non-zero exit, never a
traceback.  Heavy modules are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from bridge import __version__
from bridge.cli import (
    conversations,
    deliveries,
    doctor,
    followers,
    keys,
    publishing,
    site,
    state,
    writing,
)
from bridge.cli._common import SITE_HELP, remember_site


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="indiebridge")
@click.option(
    "--site",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    expose_value=False,
    callback=remember_site,
    help=SITE_HELP,
)
def main() -> None:
    """Own your fediverse presence from a static blog.

    `build` turns content/ into a blog that is also an ActivityPub actor; `serve` runs the
    site with its inbox and delivery worker; `publish` sends new, edited and deleted posts
    to followers and webmentions to the pages they link.
    """


for _module in (
    site,
    keys,
    publishing,
    followers,
    deliveries,
    conversations,
    writing,
    doctor,
    state,
):
    for _command in _module.commands:
        main.add_command(_command)
