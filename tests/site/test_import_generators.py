"""Importing what real generators write: Hugo 0.111 (Debian's ``hugo``) and Pelican 4.x
(PyPI ``pelican[markdown]``) build a small blog, a loopback server serves it, and
``indiebridge import`` reads its feed, completing summary-only entries from the pages.
Skipped, never faked, where a generator is not installed (``benchmarks/setup.sh``
installs both)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge.cli import main
from bridge.site import content
from bridge.site.posts import Post
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = pytest.mark.slow

CODE = 'def greet(name):\n    """Hello."""\n\n\n    return f"Hi {name}"'
WORDS = " ".join(f"word{n}" for n in range(90))  # longer than any automatic summary
POST = f"""Intro paragraph with H<sub>2</sub>O and {WORDS}.

## Setup steps

```python
{CODE}
```

1. First
    - nested one
    - nested two
2. Second

1986\\. was a year, and this has a note.[^1]

[^1]: The note.
"""


def serve(web: WebServer, folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            rel = path.relative_to(folder).as_posix()
            web.route(f"/{rel}", body=path.read_bytes(), content_type=None)
            if path.name == "index.html":
                web.route(f"/{rel.removesuffix('index.html')}", body=path.read_bytes())


def run_import(site: Path, url: str) -> tuple[str, dict[str, Post]]:
    for path in (site / "content").glob("p*/*.md"):  # posts/ and pages/
        path.unlink()
    toml = site / "site.toml"
    toml.write_text("allow_private_addresses = true\n" + toml.read_text(encoding="utf-8"))
    result = CliRunner().invoke(main, ["import", url, "--site", str(site)])
    assert result.exit_code == 0, result.output
    posts, _ = content.load(config_mod.load(site), drafts=True)
    return result.output, {p.slug: p for p in posts}


def check_post(post: Post) -> None:
    assert not post.draft
    assert f"```python\n{CODE}\n```" in post.body  # byte for byte, blank lines too
    assert "1. First\n    - nested one\n    - nested two\n2. Second" in post.body
    assert "1986\\. was a year" in post.body
    assert "[^1]: The note." in post.body and "note.[^1]" in post.body
    assert "<sub>2</sub>" in post.body
    assert "<li>nested one</li>" in post.html  # the nesting renders
    assert post.summary and "def greet" not in post.summary and " ." not in post.summary


@pytest.mark.skipif(shutil.which("hugo") is None, reason="hugo is not installed")
def test_hugo_rss_is_summary_only_and_completed_from_pages(
    site: Path, web: WebServer, tmp_path: Path
) -> None:
    blog = tmp_path / "hugo"
    (blog / "content" / "posts").mkdir(parents=True)
    (blog / "layouts" / "_default").mkdir(parents=True)
    (blog / "config.toml").write_text(
        f'baseURL = "{web.url("/")}"\ntitle = "Hugo blog"\n'
        "[markup.goldmark.renderer]\nunsafe = true\n"
    )
    layout = '<html><body><main>{{ block "main" . }}{{ end }}</main></body></html>'
    (blog / "layouts" / "_default" / "baseof.html").write_text(layout)
    (blog / "layouts" / "_default" / "single.html").write_text(
        '{{ define "main" }}<article class="h-entry"><h1 class="p-name">{{ .Title }}</h1>'
        '<div class="e-content">{{ .Content }}</div></article>{{ end }}'
    )
    (blog / "layouts" / "_default" / "list.html").write_text(
        '{{ define "main" }}{{ range .Pages }}<a href="{{ .Permalink }}">{{ .Title }}</a>'
        "{{ end }}{{ end }}"
    )
    (blog / "content" / "posts" / "code-post.md").write_text(
        f'---\ntitle: "Code post"\ndate: 2024-03-01T10:00:00Z\ntags: ["python"]\n---\n{POST}'
    )
    (blog / "content" / "about.md").write_text('---\ntitle: "About"\n---\nWho writes here.\n')
    subprocess.run(["hugo", "--quiet", "-s", str(blog)], check=True, timeout=120)
    feed = (blog / "public" / "index.xml").read_text()
    assert "Hugo -- gohugo.io" in feed and "content:encoded" not in feed
    serve(web, blog / "public")

    output, posts = run_import(site, web.url("/index.xml"))
    assert "Imported 1 post(s), 1 page(s)" in output and "0 warning(s)" in output
    about = (site / "content" / "pages" / "about.md").read_text()
    assert "title: About" in about and "Who writes here." in about  # a page, not a post
    post = posts["code-post"]
    check_post(post)
    assert post.extra["original_url"] == web.url("/posts/code-post/")
    assert web.requests_to("/posts/code-post/")  # the page was read for the full text


@pytest.mark.skipif(shutil.which("pelican") is None, reason="pelican is not installed")
@pytest.mark.parametrize("feed", ["feeds/all.rss.xml", "feeds/all.atom.xml"])
def test_pelican_feeds(site: Path, web: WebServer, tmp_path: Path, feed: str) -> None:
    blog = tmp_path / "pelican"
    (blog / "content").mkdir(parents=True)
    (blog / "pelicanconf.py").write_text(
        f'SITEURL = "{web.url("").rstrip("/")}"\nSITENAME = "Pelican blog"\n'
        'TIMEZONE = "UTC"\nDEFAULT_LANG = "en"\nRELATIVE_URLS = False\n'
        'FEED_ALL_RSS = "feeds/all.rss.xml"\nFEED_ALL_ATOM = "feeds/all.atom.xml"\n'
        'MARKDOWN = {"extension_configs": {"markdown.extensions.codehilite": '
        '{"css_class": "highlight"}, "markdown.extensions.extra": {}}}\n'
    )
    (blog / "content" / "code-post.md").write_text(
        f"Title: Code post\nDate: 2024-03-01 10:00\nTags: python\n\n{POST}"
    )
    subprocess.run(
        ["pelican", str(blog / "content"), "-s", str(blog / "pelicanconf.py"),
         "-o", str(blog / "output"), "-q"],
        check=True, timeout=120,
    )  # fmt: skip
    serve(web, blog / "output")

    output, posts = run_import(site, web.url(f"/{feed}"))
    assert "Imported 1 post(s)" in output, output
    post = posts["code-post"]
    assert post.extra["original_url"] == web.url("/code-post.html")
    assert f"{CODE}\n```" in post.body  # codehilite has no language class: Pelican's loss
    assert "1. First\n    - nested one\n    - nested two\n2. Second" in post.body
    assert "[^1]: The note." in post.body
    assert post.summary and "def greet" not in post.summary
    fetched = bool(web.requests_to("/code-post.html"))
    assert fetched == feed.endswith(".rss.xml")  # RSS is summary-only; Atom has it all
