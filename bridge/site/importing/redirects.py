"""Old permalinks -> new ones, so links to the old blog keep working after an import.

Pure: from each post's ``original_url`` and its new URL, a map of old path (with its
query, for WordPress's ``/?p=123``) to new URL, and that map written for three servers:

* Netlify / Cloudflare Pages ``_redirects``: ``/old /new 301`` lines
  (docs.netlify.com/routing/redirects/; a query in the source must be written as
  ``/ p=123``-style parameters, so query URLs are listed as comments there);
* an nginx ``map`` on ``$request_uri`` (nginx.org/en/docs/http/ngx_http_map_module.html),
  used with ``if ($indiebridge_redirect) { return 301 $indiebridge_redirect; }``;
* Caddy ``redir`` lines, with a ``query`` matcher for query URLs
  (caddyserver.com/docs/caddyfile/directives/redir).

When the old site lived on the same host as the new one, the targets are paths; when it
lived elsewhere, they are absolute URLs (the old host's server needs the map then).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit

from bridge.site.posts import Post


def _old_path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def redirect_map(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """(original URL, new URL) pairs -> {old path: new path or URL}, unchanged ones left
    out, sorted by old path."""
    out: dict[str, str] = {}
    for original, new in pairs:
        old, target = urlsplit(original), urlsplit(new)
        if not old.scheme.startswith("http") or not old.netloc:
            continue
        same_host = old.netloc.lower() == target.netloc.lower()
        destination = target.path if same_host else new
        source = _old_path(original)
        if same_host and source == destination:
            continue
        out.setdefault(source, destination)
    return dict(sorted(out.items()))


def post_pairs(posts: Iterable[Post], post_url: Mapping[str, str]) -> list[tuple[str, str]]:
    """(original_url, new URL) for every post that has an ``original_url``;
    ``post_url`` maps slug -> the post's URL on the new site."""
    return [
        (p.extra["original_url"], post_url[p.slug])
        for p in posts
        if p.extra.get("original_url") and p.slug in post_url
    ]


QUERY_RULE = "# needs a query rule: "
"""Netlify cannot match a query in ``_redirects`` this way, so such lines are comments."""


def read_netlify(text: str) -> dict[str, str]:
    """The permanent redirects (``/old /new 301``) of a ``_redirects`` file, as written by
    :func:`netlify`, query ones included: the daemon answers them as a static host would.
    Other comments, other statuses (the 410 rules of deleted posts) and malformed lines
    are skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.removeprefix(QUERY_RULE).split()
        if len(fields) == 3 and fields[2] == "301" and fields[0].startswith("/"):
            out.setdefault(fields[0], fields[1])
    return out


def netlify(redirects: Mapping[str, str]) -> str:
    lines = []
    for old, new in redirects.items():
        prefix = QUERY_RULE if "?" in old else ""
        lines.append(f"{prefix}{old} {new} 301")
    return "\n".join(lines) + ("\n" if lines else "")


def nginx(redirects: Mapping[str, str]) -> str:
    rows = "".join(f"    {old} {new};\n" for old, new in redirects.items())
    return 'map $request_uri $indiebridge_redirect {\n    default "";\n' + rows + "}\n"


def caddy(redirects: Mapping[str, str]) -> str:
    lines = []
    for n, (old, new) in enumerate(redirects.items(), 1):
        path, _, query = old.partition("?")
        if not query:
            lines.append(f"redir {path} {new} 301")
            continue
        pairs = " ".join(f"{k}={v}" for k, v in parse_qsl(query, keep_blank_values=True))
        lines.append(f"@old{n} {{\n    path {path}\n    query {pairs}\n}}")
        lines.append(f"redir @old{n} {new} 301")
    return "\n".join(lines) + ("\n" if lines else "")


FILES = {"_redirects": netlify, "nginx-redirects.conf": nginx, "caddy-redirects": caddy}
"""File name -> writer: what a build can put in its output folder for the web server."""


def redirect_files(redirects: Mapping[str, str]) -> dict[str, str]:
    """Every redirect file's name and text; empty when there is nothing to redirect."""
    if not redirects:
        return {}
    return {name: write(redirects) for name, write in FILES.items()}
