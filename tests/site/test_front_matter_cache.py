"""A front matter block parsed once is read from the cache by its text, without PyYAML.

A body edit is the usual edit: its front matter is the text the last build parsed, so
``indiebridge build`` needs no YAML parser (importing PyYAML was 13 ms of the command).
The mapping from the cache must equal the parsed one, dates and nested lists included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.errors import ContentError
from bridge.site import build as site_build
from bridge.site import frontmatter
from bridge.site.content import make_post
from bridge.site.markdown_render import MarkdownRenderer
from tests.fresh import run_json
from tests.site.test_incremental import ARTICLE, _edit

# A fresh interpreter builds, as the command does, and says whether it imported PyYAML.
BUILD = """
import json, sys
from pathlib import Path
from bridge import config
from bridge.site.build import build
result = build(config.load(Path(sys.argv[1])))
print(json.dumps({"yaml": "yaml" in sys.modules, "changed": result.changed}))
"""


def _fresh_build(site: Path) -> dict[str, object]:
    return run_json(BUILD, str(site))


def test_a_body_edit_is_built_without_pyyaml(site: Path) -> None:
    assert _fresh_build(site)["yaml"] is True  # every post parsed once
    _edit(site, ARTICLE, "This is the **first**", "This is the **edited**")
    after_body_edit = _fresh_build(site)
    assert after_body_edit["yaml"] is False
    assert "posts/first-article/index.html" in after_body_edit["changed"]  # type: ignore[operator]
    page = (site / "public" / "posts" / "first-article" / "index.html").read_text("utf-8")
    assert "<strong>edited</strong>" in page
    _edit(site, ARTICLE, "title: The first article", "title: A retitled one")
    after_title_edit = _fresh_build(site)
    assert after_title_edit["yaml"] is True  # new front matter text: parsed
    page = (site / "public" / "posts" / "first-article" / "index.html").read_text("utf-8")
    assert "A retitled one" in page


def test_the_cached_mapping_equals_the_parsed_one(site: Path) -> None:
    config = config_mod.load(site)
    folder = site / "content" / "posts"
    renderer = MarkdownRenderer(config.cache_dir)
    try:
        for path in sorted(folder.glob("*.md")):
            rel = f"content/posts/{path.name}"
            parsed = make_post(path, rel, config, renderer.render)
            first = make_post(path, rel, config, renderer.render, renderer.yaml)
            again = make_post(path, rel, config, renderer.render, renderer.yaml)
            assert first == parsed == again, path.name
    finally:
        renderer.close()
    text = "---\ndate: 2026-01-10T09:30:00+01:00\nday: 2026-01-10\nn: [1, {a: b}]\n---\n"
    renderer = MarkdownRenderer(config.cache_dir)
    try:
        made, _, _ = frontmatter.split_front_matter(text, "x.md", renderer.yaml)
        kept, _, _ = frontmatter.split_front_matter(text, "x.md", renderer.yaml)
    finally:
        renderer.close()
    assert kept == made == frontmatter.split_front_matter(text, "x.md")[0]
    assert kept["date"].utcoffset().total_seconds() == 3600


def test_another_loader_version_parses_again(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_mod.load(site)
    site_build.build(config)
    parsed: list[str] = []
    real = frontmatter._mapping

    def recording(raw: str, rel: str) -> dict[str, object]:
        parsed.append(rel)
        return real(raw, rel)

    monkeypatch.setattr(frontmatter, "_mapping", recording)
    renderer = MarkdownRenderer(config.cache_dir)
    try:
        path = site / ARTICLE
        make_post(path, ARTICLE, config, renderer.render, renderer.yaml)
        assert parsed == []
        monkeypatch.setattr(frontmatter, "yaml_version", lambda: "another PyYAML")
        make_post(path, ARTICLE, config, renderer.render, renderer.yaml)
        assert parsed == [ARTICLE]
    finally:
        renderer.close()


def test_a_broken_block_is_never_cached(site: Path) -> None:
    config = config_mod.load(site)
    renderer = MarkdownRenderer(config.cache_dir)
    broken = "---\ntitle: [unclosed\n---\nBody.\n"
    try:
        for _ in range(2):
            with pytest.raises(ContentError, match=r"x\.md:3: invalid YAML front matter"):
                frontmatter.split_front_matter(broken, "x.md", renderer.yaml)
    finally:
        renderer.close()


def test_a_cold_build_in_workers_fills_the_cache(
    make_site: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first build of many posts parses them in forked workers: they add each
    mapping too, so the first body edit after it needs no YAML parser either."""
    from bridge.site import parse_pool

    site = make_site()  # type: ignore[operator]
    folder = site / "content" / "posts"
    for n in range(parse_pool.PARALLEL_MIN + 6):
        (folder / f"2025-01-{n % 28 + 1:02d}-many-{n}.md").write_text(
            f"---\ntitle: Post {n}\ndate: 2025-01-{n % 28 + 1:02d}T10:00:00Z\n"
            f"tags: [many]\n---\nBody {n}.\n",
            encoding="utf-8",
        )
    forks: list[int] = []
    real = parse_pool.parse

    def counting(*args: object) -> object:
        result = real(*args)  # type: ignore[arg-type]
        forks.append(0 if result is None else len(result))
        return result

    monkeypatch.setattr(parse_pool, "parse", counting)
    site_build.build(config_mod.load(site))
    if not forks or not forks[0]:
        pytest.skip("no worker pool on this machine (one core)")
    edited = folder / "2025-01-03-many-2.md"
    edited.write_text(edited.read_text("utf-8") + "An edit.\n", encoding="utf-8")
    assert _fresh_build(site)["yaml"] is False


def test_a_mapping_too_deep_to_pickle_is_parsed_each_time(site: Path) -> None:
    """YAML parses a list nested 500 deep, which ``pickle`` refuses (RecursionError): the
    build says what is wrong with the post, as without the cache, never a traceback."""
    from bridge.site.parse_pool import _NewYaml

    deep = "[" * 500 + "]" * 500
    text = f"---\ntitle: Deep\ndate: 2026-01-01T00:00:00Z\ntags: {deep}\n---\nBody.\n"
    config = config_mod.load(site)
    renderer = MarkdownRenderer(config.cache_dir)
    try:
        for _ in range(2):
            meta, _, _ = frontmatter.split_front_matter(text, "x.md", renderer.yaml)
            assert meta["title"] == "Deep"
            assert renderer.yaml.get(text.split("---\n")[1].rstrip("\n")) is None
    finally:
        renderer.close()
    workers = _NewYaml()
    frontmatter.split_front_matter(text, "x.md", workers)
    assert workers.rows == []
    (site / "content" / "posts" / "2026-01-01-deep.md").write_text(text, encoding="utf-8")
    with pytest.raises(ContentError, match=r"2026-01-01-deep\.md:\d+: .*tags"):
        site_build.build(config_mod.load(site))
