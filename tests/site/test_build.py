"""``indiebridge build``: deterministic, incremental, atomic, and confined to its output folder."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge import keys
from bridge.cli import main
from bridge.errors import BuildError, KeyFileError
from bridge.site import build as site_mod
from bridge.site import feeds
from bridge.site.build import BuildResult, Output
from tests.conftest import Built

Build = Callable[..., BuildResult]
Snapshot = Callable[[Path], dict[str, bytes]]

SPOILERS = "content/posts/2026-01-14-spoilers.md"


def edit(site: Path, rel: str, old: str, new: str) -> None:
    path = site / rel
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def stats(root: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.stat().st_ino)
        for p in root.rglob("*")
        if p.is_file()
    }


def leftovers(out: Path) -> list[str]:
    """Temporary trees a build may leave beside the output folder."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


# ---- the output -------------------------------------------------------------------------------


def test_first_build_writes_the_whole_site(site: Path, build_site: Build) -> None:
    result = build_site(site)
    out = site / "public"
    assert result.out_dir == out.resolve()
    assert (result.posts, result.pages) == (4, 1)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert result.files == result.written == len(files)
    assert sorted(result.changed) == sorted(files)
    for rel in [
        "index.html",
        "page/2/index.html",
        "posts/first-article/index.html",
        "posts/quick-note/index.html",
        "tags/python/index.html",
        "tags/indieweb/index.html",
        "archive/index.html",
        "about/index.html",
        "feed.xml",
        "feed.json",
        "ap/actor.json",
        "ap/outbox.json",
        "ap/outbox/page-1.json",
        "ap/followers.json",
        "ap/following.json",
        "ap/posts/first-article.json",
        "ap/posts/first-article/create.json",
        "ap/posts/first-article/replies.json",  # it has a reply; no likes, no shares
        "ap/empty-collection.json",
        ".well-known/webfinger",
        ".well-known/host-meta",
        ".well-known/nodeinfo",
        "nodeinfo/2.1",
        "nodeinfo/2.0",
        "_headers",
        "static/style.css",
        "static/avatar.png",
        "static/images/pool.png",
    ]:
        assert rel in files, rel
    assert not any("draft" in f for f in files)
    assert "ap/posts/first-article/likes.json" not in files  # empty: answered, not written
    assert (out / "static/images/pool.png").read_bytes() == (
        site / "static/images/pool.png"
    ).read_bytes()
    assert leftovers(out) == []


def test_summary_is_one_line(site: Path, build_site: Build) -> None:
    result = build_site(site)
    summary = result.summary()
    assert re.fullmatch(
        rf"Built 4 posts, 1 pages: {result.files} files \({result.files} changed\) "
        rf"in \d+\.\d\ds -> {re.escape(str(result.out_dir))}",
        summary,
    ), summary


def test_headers_file_sets_federation_content_types(built: Built) -> None:
    text = built.text("_headers")
    blocks: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if not line.startswith(" "):
            current = line.strip()
            blocks[current] = []
        else:
            blocks[current].append(line.strip())
    assert "Content-Type: application/activity+json" in blocks["/ap/*"]
    assert "Content-Type: application/jrd+json" in blocks["/.well-known/webfinger"]
    assert "Access-Control-Allow-Origin: *" in blocks["/.well-known/webfinger"]
    assert "Content-Type: application/xrd+xml" in blocks["/.well-known/host-meta"]
    assert any(v.startswith("Content-Type: application/json") for v in blocks["/nodeinfo/*"])


def test_deterministic_bytes(
    site: Path, build_site: Build, snapshot: Snapshot, tmp_path: Path
) -> None:
    first = snapshot(build_site(site, out_dir=tmp_path / "a").out_dir)
    second = snapshot(build_site(site, out_dir=tmp_path / "b").out_dir)  # Markdown now cached
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_rebuild_without_changes_writes_nothing(site: Path, build_site: Build) -> None:
    first = build_site(site)
    before = stats(first.out_dir)
    again = build_site(site)
    assert (again.written, again.rendered, again.changed) == (0, 0, [])
    assert again.files == first.files
    assert stats(again.out_dir) == before  # same mtimes, same inodes
    assert leftovers(again.out_dir) == []


def test_editing_one_post_rewrites_only_what_shows_it(site: Path, build_site: Build) -> None:
    out = build_site(site).out_dir
    before = stats(out)
    edit(site, SPOILERS, "did it.", "did it, with the lamp.")
    result = build_site(site)
    assert sorted(result.changed) == [
        "ap/outbox/page-1.json",
        "ap/posts/spoilers.json",
        "ap/posts/spoilers/create.json",
        "feed.json",
        "feed.xml",
        "index.html",  # the home page shows the excerpt of an untitled summary
        "posts/spoilers/index.html",
        "tags/tv/index.html",
    ]
    assert result.written == len(result.changed)
    after = stats(out)
    untouched = [p for p in before if p not in result.changed]
    assert "page/2/index.html" in untouched and "archive/index.html" in untouched
    assert [p for p in untouched if after[p] != before[p]] == []
    assert "with the lamp" in (out / "posts/spoilers/index.html").read_text(encoding="utf-8")


def test_retitling_a_post_updates_its_neighbours_and_the_archive(
    site: Path, build_site: Build
) -> None:
    build_site(site)
    edit(site, SPOILERS, "title: The finale", "title: The real finale")
    changed = set(build_site(site).changed)
    # The posts before and after it link to it by title; the archive lists titles.
    assert {
        "posts/a-reply/index.html",
        "posts/quick-note/index.html",
        "archive/index.html",
        "posts/spoilers/index.html",
        "ap/posts/spoilers.json",
    } <= changed
    assert "posts/first-article/index.html" not in changed
    assert "page/2/index.html" not in changed


def test_new_comment_rerenders_only_that_post(site: Path, build_site: Build) -> None:
    build_site(site)
    src = site / "content/comments/first-article/c0ffee0000000000a001.json"
    data = json.loads(src.read_text(encoding="utf-8"))
    data.update(id="c0ffee0000000000a002", target="https://blog.example/posts/spoilers/")
    (site / "content/comments/spoilers").mkdir()
    (site / "content/comments/spoilers/c0ffee0000000000a002.json").write_text(
        json.dumps(data), encoding="utf-8"
    )
    result = build_site(site)
    assert sorted(result.changed) == [
        "ap/posts/spoilers/context.json",  # the thread, paged (bridge/site/threads.py)
        "ap/posts/spoilers/context/page-1.json",
        "ap/posts/spoilers/replies.json",
        "ap/posts/spoilers/replies/page-1.json",
        "posts/spoilers/index.html",
    ]


def test_a_comment_landing_during_a_build_is_on_its_page_at_that_builds_end(
    site: Path, build_site: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each post's comments are read when the writer reaches the post (``PostComments``):
    a reply written while the build renders an earlier page is on its own post's page
    when that build ends, with keys that match it (the next build renders nothing)."""
    from bridge.site.pages import Renderer

    built = build_site(site)
    first, last = built.built_posts[0].slug, built.built_posts[-1].slug
    assert first != last
    src = site / "content/comments/first-article/c0ffee0000000000a001.json"
    landing = json.loads(src.read_text(encoding="utf-8"))
    landing.update(id="c0ffee0000000000a0ff", content="<p>landed mid-build</p>")
    edit_first = dict(landing, id="c0ffee0000000000a0fe", content="<p>on the first</p>")
    (site / f"content/comments/{first}").mkdir(exist_ok=True)
    (site / f"content/comments/{first}/{edit_first['id']}.json").write_text(
        json.dumps(edit_first), encoding="utf-8"
    )
    render_post = Renderer.post

    def post_then_a_reply_lands(self: Renderer, post: Any, **kw: Any) -> str:
        if post.slug == first:  # the first page the build renders
            (site / f"content/comments/{last}").mkdir(exist_ok=True)
            path = site / f"content/comments/{last}/{landing['id']}.json"
            path.write_text(json.dumps(landing), encoding="utf-8")
        return render_post(self, post, **kw)

    monkeypatch.setattr(Renderer, "post", post_then_a_reply_lands)
    during = build_site(site)
    page = (during.out_dir / f"posts/{last}/index.html").read_text(encoding="utf-8")
    assert "landed mid-build" in page
    assert f"posts/{last}/index.html" in during.changed
    monkeypatch.setattr(Renderer, "post", render_post)
    after = build_site(site)
    assert after.changed == [] and after.rendered == 0


def test_theme_override_rerenders_every_page(site: Path, build_site: Build) -> None:
    out = build_site(site).out_dir
    (site / "templates").mkdir()
    (site / "templates/_follow.html").write_text("<p class=follow>{{ site.handle }}</p>\n")
    changed = set(build_site(site).changed)
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    assert pages <= changed
    assert not any(c.startswith("ap/") for c in changed)


def test_site_static_overrides_theme_static(site: Path, build_site: Build) -> None:
    (site / "static/style.css").write_text("body { color: teal; }\n")
    out = build_site(site).out_dir
    assert (out / "static/style.css").read_text() == "body { color: teal; }\n"
    assert (out / "static/copy.js").is_file()


def test_deleting_a_post_removes_its_files(site: Path, build_site: Build) -> None:
    out = build_site(site).out_dir
    (site / "content/posts/2026-01-12-quick-note.md").unlink()
    result = build_site(site)
    assert not (out / "posts/quick-note").exists()
    assert not (out / "ap/posts/quick-note.json").exists()
    assert not (out / "tags/notes").exists()
    assert {"posts/quick-note/index.html", "ap/posts/quick-note.json"} <= set(result.changed)
    outbox = json.loads((out / "ap/outbox.json").read_text())
    assert outbox["totalItems"] == 3


# ---- drafts ------------------------------------------------------------------------------------


def test_drafts_only_with_the_flag(site: Path) -> None:
    runner = CliRunner()
    out = site / "public"
    assert runner.invoke(main, ["build", "--site", str(site)]).exit_code == 0
    assert not (out / "posts/draft").exists()
    assert "Not yet" not in (out / "feed.xml").read_text()
    result = runner.invoke(main, ["build", "--site", str(site), "--drafts"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Built 5 posts")
    assert "Not yet" in (out / "posts/draft/index.html").read_text()
    assert runner.invoke(main, ["build", "--site", str(site)]).exit_code == 0
    assert not (out / "posts/draft").exists()


def test_drafts_preview_is_never_federated(site: Path, build_site: Build) -> None:
    out = build_site(site, drafts=True).out_dir
    assert (out / "posts/draft/index.html").is_file()
    assert not (out / "ap/posts/draft.json").exists()
    outbox = json.loads((out / "ap/outbox/page-1.json").read_text())
    assert "draft" not in json.dumps(outbox)


# ---- keys and the output folder's boundaries --------------------------------------------------


def test_private_keys_stay_out_of_the_output(built: Built) -> None:
    out, site = built.out, built.config.site_dir
    assert out == site / "public"
    for path in out.rglob("*"):
        assert ".indiebridge" not in path.parts
        if path.is_file():
            data = path.read_bytes()
            assert b"PRIVATE KEY" not in data, path
            assert b"state.sqlite3" not in data, path
    for key_file in (site / ".indiebridge/keys").iterdir():
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_build_creates_missing_keys_with_mode_0600(site: Path) -> None:
    state = site / ".indiebridge"
    for key_file in (state / "keys").iterdir():
        key_file.unlink()
    result = CliRunner().invoke(main, ["build", "--site", str(site)])
    assert result.exit_code == 0, result.output
    files = sorted((state / "keys").iterdir())
    assert [f.name for f in files] == sorted([keys.ED25519_FILE, keys.RSA_FILE])
    for key_file in files:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    keys.load(state)  # both readable
    actor = json.loads((site / "public/ap/actor.json").read_text())
    assert actor["publicKey"]["publicKeyPem"] == keys.load(state).public_pem


def test_missing_keys_are_a_one_line_error_for_the_library(site: Path) -> None:
    (site / ".indiebridge/keys" / keys.RSA_FILE).unlink()
    with pytest.raises(KeyFileError, match=keys.RSA_FILE) as info:
        site_mod.build(config_mod.load(site))
    assert "\n" not in str(info.value)


def test_nothing_is_written_outside_the_output_and_state(
    site: Path, build_site: Build, snapshot: Snapshot, tmp_path: Path
) -> None:
    def outside() -> dict[str, bytes]:
        return {
            k: v
            for k, v in snapshot(tmp_path).items()
            if not k.startswith(("site/public/", "site/.indiebridge/"))
        }

    before = outside()
    build_site(site)
    build_site(site)
    assert outside() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


@pytest.mark.parametrize("rel", ["../escape.html", "/etc/escape", "a/../../escape", "a\\..\\b"])
def test_write_outputs_refuses_paths_that_leave_the_output(
    site: Path, build_site: Build, snapshot: Snapshot, tmp_path: Path, rel: str
) -> None:
    out = build_site(site).out_dir
    before = snapshot(out)
    outputs = [Output("ok.html", "k1", lambda: b"ok"), Output(rel, "k2", lambda: b"evil")]
    with pytest.raises(BuildError, match="refusing to write"):
        site_mod.write_outputs(config_mod.load(site), out, iter(outputs), None, len(outputs))
    assert snapshot(out) == before
    assert not (tmp_path / "escape.html").exists() and not (site / "escape.html").exists()
    assert leftovers(out) == []


# ---- atomic: a failure half-way leaves the previous output --------------------------------------


@pytest.fixture
def failing_atom(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[BaseException], None]]:
    def arm(exc: BaseException) -> None:
        def atom(*args: object, **kwargs: object) -> str:
            raise exc

        monkeypatch.setattr(feeds, "atom", atom)

    yield arm


def test_exception_while_writing_keeps_old_output(
    site: Path,
    build_site: Build,
    snapshot: Snapshot,
    failing_atom: Callable[[BaseException], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = build_site(site).out_dir
    before = snapshot(out)
    edit(site, SPOILERS, "did it.", "did it, twice.")  # the feed must be rendered again
    failing_atom(RuntimeError("template exploded"))
    with pytest.raises(RuntimeError, match="template exploded"):
        build_site(site)
    assert snapshot(out) == before
    assert leftovers(out) == []
    # The failed build recorded nothing: the next one writes the edit everywhere.
    monkeypatch.undo()
    result = build_site(site)
    assert "feed.xml" in result.changed and "posts/spoilers/index.html" in result.changed
    assert "twice" in (out / "feed.xml").read_text()


def test_disk_error_is_a_one_line_build_error(
    site: Path,
    build_site: Build,
    snapshot: Snapshot,
    failing_atom: Callable[[BaseException], None],
) -> None:
    out = build_site(site).out_dir
    before = snapshot(out)
    edit(site, SPOILERS, "did it.", "did it, twice.")
    failing_atom(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    result = CliRunner().invoke(main, ["build", "--site", str(site)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "could not write the site" in lines[0]
    assert "previous output is untouched" in lines[0]
    assert snapshot(out) == before
    assert leftovers(out) == []


# ---- an output folder that overlaps the site must be refused ------------------------------------


@pytest.mark.parametrize(
    ("overrides", "args"),
    [
        pytest.param({"output_dir": "."}, [], id="output_dir=."),
        pytest.param({"output_dir": "content"}, [], id="output_dir=content"),
        pytest.param({"output_dir": "content/posts"}, [], id="output_dir=content/posts"),
        pytest.param({"output_dir": ".indiebridge"}, [], id="output_dir=.indiebridge"),
        pytest.param({}, ["--out", "{site}"], id="--out site"),
        pytest.param({}, ["--out", "{site}/.."], id="--out parent of site"),
        pytest.param({"output_dir": "templates"}, [], id="output_dir=templates"),
        pytest.param({"output_dir": "static"}, [], id="output_dir=static"),
    ],
)
def test_output_folder_overlapping_the_site_is_refused(
    make_site: Callable[..., Path], overrides: dict[str, str], args: list[str]
) -> None:
    folder = make_site(overrides)
    (folder / "templates").mkdir()
    (folder / "templates/_follow.html").write_text("<p>{{ site.handle }}</p>\n")
    sources = [
        "site.toml",
        "content/posts/2026-01-10-first-article.md",
        f".indiebridge/keys/{keys.RSA_FILE}",
        "templates/_follow.html",
        "static/images/pool.png",
    ]
    before = {rel: (folder / rel).read_bytes() for rel in sources}
    argv = ["build", "--site", str(folder), *(a.format(site=folder) for a in args)]
    result = CliRunner().invoke(main, argv)
    after = {rel: (folder / rel).read_bytes() for rel in sources if (folder / rel).is_file()}
    assert after == before, "the build deleted or changed the site it was building"
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "output folder" in lines[0], result.output


# ---- feeds ---------------------------------------------------------------------------------------


def test_atom_feed_parses_with_every_post(built: Built) -> None:
    feed = feedparser.parse((built.out / "feed.xml").read_bytes())
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "Test Tides"
    assert feed.feed.id == "https://blog.example/"
    links = {link["rel"]: link["href"] for link in feed.feed.links}
    assert links == {"alternate": "https://blog.example/", "self": "https://blog.example/feed.xml"}
    slugs = ["a-reply", "spoilers", "quick-note", "first-article"]
    assert [e.link for e in feed.entries] == [f"https://blog.example/posts/{s}/" for s in slugs]
    assert [e.id for e in feed.entries] == [e.link for e in feed.entries]
    article = feed.entries[3]
    assert article.title == "The first article"
    assert article.published == "2026-01-10T08:30:00Z"
    assert article.updated == "2026-01-11T09:00:00Z"
    assert [t.term for t in article.tags] == ["python", "IndieWeb"]
    assert article.summary == "An article with a picture, two tags and an edit."
    html = article.content[0].value
    assert "<strong>first</strong>" in html
    assert 'alt="A small blue rectangle standing in for a tide pool."' in html
    assert feed.entries[2].title.startswith("A short note without a title")  # notes get one
    assert "Content warning: Spoilers for the finale" in feed.entries[1].content[0].value


def test_json_feed_loads(built: Built) -> None:
    feed = built.json("feed.json")
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "Test Tides"
    assert feed["feed_url"] == "https://blog.example/feed.json"
    assert feed["home_page_url"] == "https://blog.example/"
    items = {i["id"].split("/")[-2]: i for i in feed["items"]}
    assert list(items) == ["a-reply", "spoilers", "quick-note", "first-article"]
    assert items["first-article"]["title"] == "The first article"
    assert "title" not in items["quick-note"]
    assert items["first-article"]["image"] == "https://blog.example/static/images/pool.png"
    assert items["first-article"]["tags"] == ["python", "IndieWeb"]
    assert items["a-reply"]["external_url"] == "https://example.org/posts/1"
    assert items["first-article"]["date_modified"] == "2026-01-11T09:00:00Z"


def test_deploy_guide_shows_the_headers_file_the_build_writes(built: Built) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs/deploy.md").read_text(encoding="utf-8")
    assert f"```text\n{built.text('_headers')}```" in guide


def test_setting_overrides_rerender_the_pages(site: Path, build_site: Build) -> None:
    out = build_site(site).out_dir
    result = site_mod.build(config_mod.load(site, {"title": "Renamed Tides"}))
    assert "index.html" in result.changed
    assert "Renamed Tides" in (out / "index.html").read_text(encoding="utf-8")


def test_different_tags_get_different_tag_pages(site: Path, build_site: Build) -> None:
    (site / "content/posts/2026-02-01-tags.md").write_text(
        "---\ndate: 2026-02-01\ntags: [日本語, Ελληνικά]\n---\nTwo tags.\n", encoding="utf-8"
    )
    out = build_site(site).out_dir
    obj = json.loads((out / "ap/posts/tags.json").read_text(encoding="utf-8"))
    hrefs = [t["href"] for t in obj["tag"]]
    assert len(set(hrefs)) == 2, hrefs


def test_an_unrelated_existing_folder_is_never_replaced(site: Path, tmp_path: Path) -> None:
    """--out pointing at a folder that holds something else is refused, not wiped."""
    from bridge import config as config_mod
    from bridge.errors import BuildError
    from bridge.site import build as site_mod

    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"not a build")
    with pytest.raises(BuildError, match="does not hold a site built by indiebridge"):
        site_mod.build(config_mod.load(site), out_dir=precious)
    assert (precious / "holiday.jpg").read_bytes() == b"not a build"


def test_the_journal_names_the_new_manifest_instead_of_holding_it(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A switch killed after the new manifest took its place but before the journal was
    removed is finished by recovery without losing the manifest (the next build stays
    incremental), and the journal holds the moves, not the whole manifest."""
    from bridge.site import output as output_mod

    config = config_mod.load(site)
    site_mod.build(config)
    edit(site, SPOILERS, "title:", "title: Edited")
    journals: list[dict[str, object]] = []
    real_write = output_mod._write_manifest

    def write(path: Path, data: Any) -> None:
        if path.name.endswith(".journal"):
            journals.append(dict(data))
        real_write(path, data)

    def killed(path: Any, ignore_errors: bool = False) -> None:
        raise KeyboardInterrupt  # stands for kill -9 right after the manifest moved

    monkeypatch.setattr(output_mod, "_write_manifest", write)
    monkeypatch.setattr(output_mod.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        site_mod.build(config_mod.load(site))
    monkeypatch.undo()
    assert journals and "manifest" not in journals[0] and "manifest_file" in journals[0]
    assert site_mod.recover_output(config_mod.load(site))
    assert list(config.state_dir.glob("manifest-*.json"))  # kept, so no fresh tree next
    again = site_mod.build(config_mod.load(site))
    assert again.rendered == 0 and again.written == 0
