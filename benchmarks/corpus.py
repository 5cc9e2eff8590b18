"""A deterministic corpus of realistic blog posts, written for indiebridge, Pelican and Hugo.

``posts(n)`` always yields the same ``n`` posts (seeded): YAML-style front matter (title,
date, tags from a pool, summary) and a 300-1500 word Markdown body with headings, lists,
links, fenced code, block quotes and images.  Each ``write_*`` function lays the same
posts out in one generator's own format, with a configuration that renders comparable
pages: one page per post, paginated home (10 per page), one page per tag, an Atom feed.
"""

from __future__ import annotations

import atexit
import datetime as dt
import random
import shutil
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SEED = 20260301


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


BASE_URL = "https://blog.example"
PER_PAGE = 10

WORDS = _words(
    "actor activity inbox outbox follower server protocol federation signature key digest "
    "static site generator template markdown feed atom json request response header cache "
    "build render page post tag archive reply like boost mention thread conversation note "
    "article summary content link image quote code list heading paragraph sentence word the a "
    "of to and in is it that for on with as was by at be this from or are an but not which "
    "have had were one all their there been has when who will more no if out so said what up "
    "its about into than them can only other new some could time these two may then do first "
    "any my now such like our over man me even most made after also did many before must "
    "through back years where much your way well down should because each just those people "
    "how too little state good very make world still own see men work long get here between "
    "both life being under never day same another know while last might us great old "
)
TAG_POOL = _words(
    "python fediverse activitypub indieweb webmention static-sites jinja markdown rust go "
    "privacy security performance databases sqlite http cryptography writing photography "
    "travel cooking music books film hiking cycling gardening linux open-source design "
    "accessibility css javascript testing devops networking history science notes "
)
LANGS = ("python", "bash", "toml", "json", "javascript")


@dataclass(frozen=True)
class Post:
    slug: str
    title: str
    date: dt.datetime
    tags: tuple[str, ...]
    summary: str
    body: str


def _sentence(rng: random.Random, lo: int = 6, hi: int = 18) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def _paragraph(rng: random.Random) -> str:
    text = " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))
    if rng.random() < 0.5:  # an inline link
        words = text.split(" ")
        i = rng.randrange(1, len(words) - 1)
        words[i] = f"[{words[i]}](https://example.org/{rng.choice(WORDS)}/{rng.randint(1, 999)})"
        text = " ".join(words)
    if rng.random() < 0.3:
        words = text.split(" ")
        i = rng.randrange(1, len(words) - 1)
        words[i] = f"*{words[i]}*" if rng.random() < 0.5 else f"`{words[i]}`"
        text = " ".join(words)
    return text


def _code(rng: random.Random) -> str:
    lang = rng.choice(LANGS)
    lines = []
    for i in range(rng.randint(3, 12)):
        a, b = rng.choice(WORDS), rng.choice(WORDS)
        lines.append(f"{'    ' * (i % 3)}{a}_{b} = {rng.randint(0, 9999)}  # {rng.choice(WORDS)}")
    return f"```{lang}\n" + "\n".join(lines) + "\n```"


def _body(rng: random.Random, target_words: int) -> str:
    blocks: list[str] = []
    words = 0
    section = 0
    while words < target_words:
        roll = rng.random()
        if roll < 0.12 or not blocks:
            section += 1
            heading = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))).capitalize()
            blocks.append(f"{'##' if section % 3 else '###'} {heading}")
            continue
        if roll < 0.55:
            block = _paragraph(rng)
        elif roll < 0.68:
            marker = "-" if rng.random() < 0.6 else "1."
            items = [f"{marker} {_sentence(rng, 3, 10)}" for _ in range(rng.randint(3, 7))]
            block = "\n".join(items)
        elif roll < 0.78:
            block = _code(rng)
        elif roll < 0.87:
            block = "\n".join("> " + line for line in textwrap.wrap(_paragraph(rng), 80))
        elif roll < 0.94:
            name = f"{rng.choice(WORDS)}-{rng.randint(1, 500)}.jpg"
            block = f"![{_sentence(rng, 3, 8)[:-1]}](/static/img/{name})"
        else:
            block = _paragraph(rng) + "\n" + _paragraph(rng)
        blocks.append(block)
        words += len(block.split())
    return "\n\n".join(blocks) + "\n"


def posts(n: int, seed: int = SEED) -> Iterator[Post]:
    """The first ``n`` posts of the corpus, oldest first; identical for equal ``n``/seed."""
    rng = random.Random(seed)
    start = dt.datetime(2015, 1, 1, 9, 0, tzinfo=dt.UTC)
    for i in range(n):
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))).capitalize()
        tags = tuple(sorted(set(rng.sample(TAG_POOL, rng.randint(1, 4)))))
        summary = _sentence(rng, 10, 24)
        body = _body(rng, rng.randint(300, 1500))
        date = start + dt.timedelta(hours=7 * i, minutes=rng.randint(0, 59))
        yield Post(f"post-{i:05d}", title, date, tags, summary, body)


# ---- formats -----------------------------------------------------------------------------


def _yaml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def yaml_front_matter(post: Post, *, hugo: bool = False) -> str:
    lines = [
        "---",
        f"title: {_yaml_str(post.title)}",
        f"date: {post.date.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        f"tags: [{', '.join(post.tags)}]",
        f"summary: {_yaml_str(post.summary)}",
    ]
    if hugo:
        lines.append(f"slug: {post.slug}")
    lines.append("---")
    return "\n".join(lines) + "\n"


def indiebridge_post(post: Post) -> str:
    return yaml_front_matter(post) + post.body


def pelican_post(post: Post) -> str:
    head = [
        f"Title: {post.title}",
        f"Date: {post.date.strftime('%Y-%m-%d %H:%M')}",
        f"Tags: {', '.join(post.tags)}",
        f"Slug: {post.slug}",
        f"Summary: {post.summary}",
    ]
    return "\n".join(head) + "\n\n" + post.body


def hugo_post(post: Post) -> str:
    return yaml_front_matter(post, hugo=True) + post.body


_trash: Path | None = None  # set by ``defer_deletes``


def defer_deletes(trash: Path) -> None:
    """From now on, a corpus written over an old one moves the old tree into ``trash``,
    which is deleted when the process exits.

    On a file system without a journal (this machine's ext4), Linux does not reuse an
    inode freed in the last minute while a fresh one is free: each new file first skips
    every recently freed inode of its block group (``find_inode_bit``/``recently_deleted``
    in fs/ext4/ialloc.c).  Deleting a 1,000-post site and its output just before a cold
    build made every file the build (or Pelican, or Hugo) created pay a scan of thousands
    of inodes: seconds of system time that measured the deletion, not the generator."""
    global _trash
    if _trash is None:
        atexit.register(shutil.rmtree, trash, True)
    _trash = trash


def _fresh(folder: Path) -> Path:
    if folder.exists():
        if _trash is None:
            shutil.rmtree(folder)
        else:
            _trash.mkdir(parents=True, exist_ok=True)
            folder.rename(_trash / f"{folder.parent.name}-{folder.name}-{time.time_ns()}")
    folder.mkdir(parents=True)
    return folder


def write_indiebridge(root: Path, items: list[Post]) -> Path:
    """``site.toml`` as ``indiebridge init`` writes it, actor keys, ``content/posts/*.md``."""
    from bridge import keys
    from bridge.cli.site import SITE_TOML

    site = _fresh(root)
    (site / "site.toml").write_text(
        SITE_TOML.format(
            title="Benchmark blog", base_url=BASE_URL, username="blog", author="Bench Author"
        ),
        encoding="utf-8",
    )
    keys.generate(site / ".indiebridge")
    folder = site / "content" / "posts"
    folder.mkdir(parents=True)
    (site / "content" / "pages").mkdir()
    for post in items:
        (folder / f"{post.slug}.md").write_text(indiebridge_post(post), encoding="utf-8")
    return site


PELICANCONF = f"""\
AUTHOR = "Bench Author"
SITENAME = "Benchmark blog"
SITEURL = "{BASE_URL}"
PATH = "content"
ARTICLE_PATHS = ["posts"]
PAGE_PATHS = ["pages"]
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
DEFAULT_PAGINATION = {PER_PAGE}
FEED_ALL_ATOM = "feed.xml"
CATEGORY_FEED_ATOM = None
TRANSLATION_FEED_ATOM = None
AUTHOR_FEED_ATOM = None
AUTHOR_FEED_RSS = None
ARTICLE_URL = "posts/{{slug}}/"
ARTICLE_SAVE_AS = "posts/{{slug}}/index.html"
TAG_URL = "tags/{{slug}}/"
TAG_SAVE_AS = "tags/{{slug}}/index.html"
LOAD_CONTENT_CACHE = False
CACHE_CONTENT = False
MARKDOWN = {{
    "extension_configs": {{
        "markdown.extensions.extra": {{}},
        "markdown.extensions.sane_lists": {{}},
        "markdown.extensions.smarty": {{}},
    }},
    "output_format": "html5",
}}
"""


def write_pelican(root: Path, items: list[Post]) -> Path:
    """``pelicanconf.py`` (default theme, same Markdown extensions) + ``content/posts``."""
    site = _fresh(root)
    (site / "pelicanconf.py").write_text(PELICANCONF, encoding="utf-8")
    folder = site / "content" / "posts"
    folder.mkdir(parents=True)
    (site / "content" / "pages").mkdir()
    for post in items:
        (folder / f"{post.slug}.md").write_text(pelican_post(post), encoding="utf-8")
    return site


HUGO_CONFIG = f"""\
baseURL = "{BASE_URL}/"
languageCode = "en"
title = "Benchmark blog"
paginate = {PER_PAGE}
disableKinds = ["section"]
[taxonomies]
  tag = "tags"
[permalinks]
  posts = "/posts/:slug/"
[outputs]
  home = ["HTML", "RSS"]
  taxonomy = ["HTML"]
  term = ["HTML"]
"""

# A minimal theme shaped like indiebridge's: base layout, post page with tags and prev/next,
# paginated home of summaries, tag pages, an archive list.
HUGO_LAYOUTS = {
    "_default/baseof.html": """<!DOCTYPE html>
<html lang="{{ site.LanguageCode }}"><head><meta charset="utf-8">
<title>{{ .Title }} · {{ site.Title }}</title>
<link rel="canonical" href="{{ .Permalink }}">
<link rel="alternate" type="application/rss+xml" href="{{ "index.xml" | absURL }}">
</head><body>
<header><a href="{{ "/" | absURL }}">{{ site.Title }}</a></header>
<main>{{ block "main" . }}{{ end }}</main>
<footer><p>Follow on the fediverse: @blog@blog.example</p></footer>
</body></html>
""",
    "_default/single.html": """{{ define "main" }}
<article class="h-entry"><h1 class="p-name">{{ .Title }}</h1>
<p><time class="dt-published" datetime="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">
{{ .Date.Format "2 January 2006" }}</time></p>
<p class="p-summary">{{ .Params.summary }}</p>
<div class="e-content">{{ .Content }}</div>
<footer>{{ range .Params.tags }}
<a class="p-category" href="{{ "tags/" | absURL }}{{ . | urlize }}/">#{{ . }}</a>
{{ end }}</footer>
</article>
<nav>{{ with .NextInSection }}<a rel="prev" href="{{ .Permalink }}">{{ .Title }}</a>{{ end }}
{{ with .PrevInSection }}<a rel="next" href="{{ .Permalink }}">{{ .Title }}</a>{{ end }}</nav>
{{ end }}
""",
    "_default/list.html": """{{ define "main" }}
<section class="h-feed"><h1>#{{ .Title }}</h1>
{{ range .Pages }}{{ partial "entry.html" . }}{{ end }}
</section>
{{ end }}
""",
    "_default/terms.html": """{{ define "main" }}
<ul>{{ range .Data.Terms.Alphabetical }}
<li><a href="{{ .Page.Permalink }}">{{ .Page.Title }}</a></li>
{{ end }}</ul>
{{ end }}
""",
    "index.html": """{{ define "main" }}
<section class="h-feed">
{{ $paginator := .Paginate (where site.RegularPages "Section" "posts") }}
{{ range $paginator.Pages }}{{ partial "entry.html" . }}{{ end }}
</section>
<nav>{{ if $paginator.HasPrev }}<a rel="prev" href="{{ $paginator.Prev.URL }}">Newer</a>{{ end }}
<span>Page {{ $paginator.PageNumber }} of {{ $paginator.TotalPages }}</span>
{{ if $paginator.HasNext }}<a rel="next" href="{{ $paginator.Next.URL }}">Older</a>{{ end }}</nav>
{{ end }}
""",
    "partials/entry.html": """<article class="h-entry">
<h2><a class="p-name u-url" href="{{ .Permalink }}">{{ .Title }}</a></h2>
<p class="p-summary">{{ .Params.summary }}</p>
<footer><time datetime="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">
{{ .Date.Format "2 January 2006" }}</time>
{{ range .Params.tags }}
<a class="p-category" href="{{ "tags/" | absURL }}{{ . | urlize }}/">#{{ . }}</a>
{{ end }}</footer>
</article>
""",
    "archive/single.html": """{{ define "main" }}
<section class="h-feed archive"><h1>Archive</h1>
{{ range (where site.RegularPages "Section" "posts").GroupByDate "2006" }}
<h2>{{ .Key }}</h2><ul>{{ range .Pages }}
<li><time>{{ .Date.Format "02 Jan" }}</time> <a href="{{ .Permalink }}">{{ .Title }}</a></li>
{{ end }}</ul>
{{ end }}
</section>
{{ end }}
""",
}


def write_hugo(root: Path, items: list[Post]) -> Path:
    """``hugo.toml``, the layouts above and ``content/posts/*.md`` with YAML front matter."""
    site = _fresh(root)
    (site / "hugo.toml").write_text(HUGO_CONFIG, encoding="utf-8")
    for rel, text in HUGO_LAYOUTS.items():
        path = site / "layouts" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    folder = site / "content" / "posts"
    folder.mkdir(parents=True)
    (site / "content" / "archive.md").write_text(
        '---\ntitle: "Archive"\ntype: archive\nlayout: single\n---\n', encoding="utf-8"
    )
    for post in items:
        (folder / f"{post.slug}.md").write_text(hugo_post(post), encoding="utf-8")
    return site


def edit_post(path: Path, stamp: int) -> None:
    """Change one post's body (what an author does), keeping its front matter valid."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text + f"\nEdited for the benchmark, revision {stamp}.\n", encoding="utf-8")
