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
* ``_gone.nginx``: ``location`` blocks answering 410 (the page with ``_gone.html``), to
  ``include`` in the ``server`` block;
* ``_gone.caddy``: matchers answering 410 (the page with ``_gone.html``), to ``import`` in
  the site block.

A deleted post's page is a folder: everything under it is gone with it (its older comment
pages, ``posts/<slug>/comments/<n>/``, and whatever a theme writes there), so the rules
name the folder as a prefix.  Its ActivityStreams ids are named one by one: a post written
again under the same slug has new ids under ``/ap/posts/<slug>/`` beside the old, gone one.

The nginx and Caddy files are read when the server (re)loads its configuration: reload it
after a publish that deleted a post (docs/deploy.md).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from bridge.config import SiteConfig
from bridge.site.ledger import Ledger, create_id, read_file

PAGE = "_gone.html"


@dataclass(frozen=True)
class GonePaths:
    """What answers 410: ``exact`` local paths (ids, their Creates) and ``folders``
    (``/posts/<slug>/``: that path, everything below it, and ``/posts/<slug>``)."""

    exact: list[str]
    folders: list[str]


def gone_paths(config: SiteConfig, ledger: Ledger, live: set[str]) -> GonePaths:
    """Local paths that answer 410: each deleted id, its Create, and deleted posts' folders.

    ``live``: the slugs of the posts this build writes.
    """
    exact: set[str] = set()
    for object_id in ledger.gone_ids(config, live):
        for url in (object_id, create_id(object_id)):
            local = config.local_path(url)
            if local is not None:
                exact.add(local)
    folders = [config.local_path(config.post_url(slug)) for slug in ledger.gone_slugs(live)]
    return GonePaths(sorted(exact), sorted(f for f in folders if f is not None))


def live_slugs(config: SiteConfig) -> set[str]:
    """The slugs of the posts the built output has now (its post folders): what the
    daemon serves, and so what is not gone."""
    posts = config.output_dir / "posts"
    return {p.name for p in posts.iterdir() if p.is_dir()} if posts.is_dir() else set()


def sample(config: SiteConfig) -> tuple[str, ...]:
    """URLs that a correct deployment answers 410, for ``indiebridge doctor``: the first
    deleted post's page and a path below it (what an exact-path rule misses), and the
    first gone id (of that post, or of a post written again under its slug); () when no
    published post was deleted."""
    gone = gone_paths(config, read_file(config), live_slugs(config))
    pages = [config.base_url + folder for folder in gone.folders[:1]]
    below = [page + "comments/1/" for page in pages]
    return (*pages, *below, *(config.base_url + path for path in gone.exact[:1]))


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


def netlify_redirects(gone: GonePaths) -> str:
    """``/posts/x/*`` is Netlify's splat; ``/posts/x/`` is written too, as the splat's
    match of the folder itself is not documented."""
    paths = [*gone.exact]
    for folder in gone.folders:
        paths += [folder.rstrip("/"), folder, folder + "*"]
    head = "# Deleted posts answer 410 Gone (written by indiebridge build).\n"
    return head + "".join(f"{p}  /{PAGE}  410\n" for p in paths)


def nginx_rules(gone: GonePaths) -> str:
    """``location =`` for each path; ``^~`` makes a folder's prefix win over the server's
    regular-expression locations.  ``error_page`` shows ``_gone.html`` with the 410."""
    head = (
        "# Deleted posts answer 410 Gone (written by indiebridge build).\n"
        "# include this file in the server block; reload nginx after publishing a deletion.\n"
    )
    page = f"error_page 410 /{PAGE}; return 410;"
    rules = [f"location = {p} {{ return 410; }}\n" for p in gone.exact]
    for folder in gone.folders:
        rules.append(f"location = {folder.rstrip('/')} {{ {page} }}\n")
        rules.append(f"location ^~ {folder} {{ {page} }}\n")
    return head + "".join(rules)


def caddy_rules(gone: GonePaths) -> str:
    """``respond`` for ids; a deleted post's folder is served ``_gone.html`` with a 410
    (``file_server``'s ``status``), in a ``handle`` that runs before the site's own."""
    head = (
        "# Deleted posts answer 410 Gone (written by indiebridge build).\n"
        "# import this file in the site block; reload Caddy after publishing a deletion.\n"
    )
    out = head
    if gone.exact:
        out += f"@gone path {' '.join(gone.exact)}\nrespond @gone 410\n"
    if gone.folders:
        paths = [p for folder in gone.folders for p in (folder.rstrip("/"), folder + "*")]
        out += (
            f"@gone_pages path {' '.join(paths)}\n"
            "handle @gone_pages {\n"
            f"\trewrite * /{PAGE}\n"
            "\tfile_server {\n\t\tstatus 410\n\t}\n"
            "}\n"
        )
    return out


def files(config: SiteConfig, ledger: Ledger, live: set[str]) -> list[tuple[str, str]]:
    """(output path, text) of the three rule files."""
    paths = gone_paths(config, ledger, live)
    return [
        ("_redirects", netlify_redirects(paths)),
        ("_gone.nginx", nginx_rules(paths)),
        ("_gone.caddy", caddy_rules(paths)),
    ]
