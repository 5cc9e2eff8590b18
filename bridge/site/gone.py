"""Deleted posts answer 410 Gone on static hosts too: the build writes the rules.

A deleted post's HTML URL and each ActivityStreams id it had (``bridge.site.ledger``) must
answer ``410 Gone``, not 404.  ActivityPub (W3C Recommendation, section 6.4 "Delete
Activity"): a deleted object's id SHOULD answer 410 Gone with a ``Tombstone``.  Webmention
(W3C Recommendation, section 3.2.2 "Webmention Verification"): when the source answers 410
the receiver SHOULD delete the mention; a 404 reads as a passing error, and stale copies
stay.  The daemon answers it itself (``bridge.federation.published.gone``); for static
hosts the build writes, into the output folder:

* ``_gone.html``: the page a deleted post's URL shows (the theme's ``page.html``);
* ``_redirects``: Netlify rules, ``<path> /_gone.html 410`` (Netlify serves a rewrite with
  the status given; Cloudflare Pages' ``_redirects`` only redirects, so it cannot);
* ``_gone.nginx``: ``location = <path> { return 410; }`` blocks to ``include`` in the
  ``server`` block;
* ``_gone.caddy``: a ``@gone`` matcher and ``respond @gone 410``, to ``import`` in the
  site block.

The nginx and Caddy files are read when the server (re)loads its configuration: reload it
after a publish that deleted a post (docs/deploy.md).
"""

from __future__ import annotations

import html

from bridge.config import SiteConfig
from bridge.site.ledger import Ledger, create_id

PAGE = "_gone.html"


def gone_paths(config: SiteConfig, ledger: Ledger, live: set[str]) -> list[str]:
    """Local paths that answer 410: each deleted id, its Create, and deleted posts' pages.

    ``live``: the slugs of the posts this build writes.
    """
    paths: set[str] = set()
    for object_id in ledger.gone_ids(config, live):
        for url in (object_id, create_id(object_id)):
            local = config.local_path(url)
            if local is not None:
                paths.add(local)
    for slug in ledger.gone_slugs(live):
        local = config.local_path(config.post_url(slug))
        if local is not None:
            paths.update({local, local.rstrip("/")})  # /posts/x/ and /posts/x
    return sorted(paths)


GONE_TITLE = "Deleted"
GONE_TEXT = "<p>This post was deleted.</p>"


def gone_page(config: SiteConfig) -> str:
    """A deleted post's page when the built one (themed ``_gone.html``) is missing."""
    title = html.escape(config.title)
    home = html.escape(config.base_url + "/")
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Deleted – {title}</title>\n</head>\n"
        f'<body>\n<p>This post was deleted. <a href="{home}">{title}</a></p>\n</body>\n</html>\n'
    )


def netlify_redirects(paths: list[str]) -> str:
    head = "# Deleted posts answer 410 Gone (written by indiebridge build).\n"
    return head + "".join(f"{p}  /{PAGE}  410\n" for p in paths)


def nginx_rules(paths: list[str]) -> str:
    head = (
        "# Deleted posts answer 410 Gone (written by indiebridge build).\n"
        "# include this file in the server block; reload nginx after publishing a deletion.\n"
    )
    return head + "".join(f"location = {p} {{ return 410; }}\n" for p in paths)


def caddy_rules(paths: list[str]) -> str:
    head = (
        "# Deleted posts answer 410 Gone (written by indiebridge build).\n"
        "# import this file in the site block; reload Caddy after publishing a deletion.\n"
    )
    if not paths:
        return head
    return head + f"@gone path {' '.join(paths)}\nrespond @gone 410\n"


def files(config: SiteConfig, ledger: Ledger, live: set[str]) -> list[tuple[str, str]]:
    """(output path, text) of the three rule files."""
    paths = gone_paths(config, ledger, live)
    return [
        ("_redirects", netlify_redirects(paths)),
        ("_gone.nginx", nginx_rules(paths)),
        ("_gone.caddy", caddy_rules(paths)),
    ]
