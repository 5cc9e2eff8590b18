"""A command build with nothing changed stops at its stamp; any change gives the full build.

Each kind of input (a post, a comment, a template, ``site.toml``, the keys, the state
database's rows the build shows, the outputs themselves, the code's version) must defeat
the stamp, and the build that follows must write what a cold build of the same site
writes.  A build the stamp stops prints what the full build printed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge import keys
from bridge.cli import main
from bridge.db import Database
from bridge.site import build as site_build
from bridge.site import build_stamp
from bridge.site.build_result import BuildResult
from tests.fresh import run_json
from tests.site.test_incremental import ARTICLE, _cold, _edit, _tree

COMMENT = "content/comments/first-article/from-a-reader.json"


@pytest.fixture(autouse=True)
def _trust_fresh_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every edit here changes a size or a later mtime: no stat is too recent to trust
    (the 2 s rule has its own test)."""
    monkeypatch.setattr(build_stamp, "RACY_NS", 0)


def _command_build(site: Path) -> BuildResult:
    site_build.forget_resident_state()  # as a fresh command starts
    with build_stamp.for_command():
        return site_build.build(config_mod.load(site))


def _settled(site: Path) -> BuildResult:
    """Build twice: the second build writes nothing and leaves a stamp to trust."""
    _command_build(site)
    result = _command_build(site)
    assert result.written == 0
    return result


def _followers(site: Path, n: int) -> None:
    db = Database(config_mod.load(site).db_path)
    with db.tx() as con:
        con.execute(
            "INSERT INTO followers(actor, inbox, shared_inbox, follow_id, state, created,"
            " updated) VALUES (?, ?, NULL, ?, 'accepted', 0, 0)",
            (f"https://m.example/u/{n}", f"https://m.example/u/{n}/inbox", f"f{n}"),
        )
    db.close()


def _published(site: Path) -> None:
    config = config_mod.load(site)
    db = Database(config.db_path)
    with db.tx() as con:
        con.execute(
            "INSERT INTO published(slug, object_id, digest, as_type, first_published, updated)"
            " VALUES ('gone-post', ?, 'x', 'Note', 0, 0)",
            (config.post_ap_id("gone-post"),),
        )
    db.close()


def _rotate_keys(site: Path) -> None:
    fresh = site.parent / "fresh-state"
    keys.ensure(fresh)
    folder = site / config_mod.STATE_DIR / "keys"
    for path in (fresh / "keys").iterdir():
        shutil.copy2(path, folder / path.name)


def _comment(site: Path) -> None:
    path = site / COMMENT
    path.parent.mkdir(parents=True, exist_ok=True)
    source = next((site / "content/comments").rglob("*.json"), None)
    assert source is not None, "the test site has comments"
    text = source.read_text(encoding="utf-8").replace(source.stem, "from-a-reader")
    path.write_text(text.replace('"content": "', '"content": "A new reply. ', 1), "utf-8")


CHANGES: list[tuple[str, Callable[[Path], None]]] = [
    ("post edit", lambda s: _edit(s, ARTICLE, "This is the **first**", "This is the **new**")),
    ("comment added", _comment),
    ("template edit", lambda s: _override(s, "base.html", "</body>", "<!-- x --></body>")),
    ("site.toml edit", lambda s: _edit(s, "site.toml", "posts_per_page = 2", "posts_per_page = 3")),
    ("key rotated", _rotate_keys),
    ("follower accepted", lambda s: _followers(s, 1)),
    ("published row", _published),
]


def _override(site: Path, name: str, old: str, new: str) -> None:
    stock = config_mod.DEFAULT_THEME / "templates" / name
    target = site / "templates" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    text = stock.read_text(encoding="utf-8")
    assert old in text
    target.write_text(text.replace(old, new, 1), encoding="utf-8")


def _append(path: Path, line: str, *, top: bool = False) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(line + text if top else text + line, encoding="utf-8")


def test_a_build_with_nothing_changed_stops_at_the_stamp(site: Path) -> None:
    full = _settled(site)
    before = _tree(site / "public")
    again = _command_build(site)
    assert isinstance(again, build_stamp.Unchanged)
    assert (again.posts, again.pages, again.files) == (full.posts, full.pages, full.files)
    assert (again.written, again.changed, again.warnings) == (0, [], full.warnings)
    assert _tree(site / "public") == before
    # Its posts, when asked for, are the full build's.
    assert [p.slug for p in again.built_posts] == [p.slug for p in full.built_posts]
    assert build_stamp.PostFacts.of(full.built_posts) == again.facts


def test_builds_outside_a_command_neither_use_nor_write_the_stamp(site: Path) -> None:
    config = config_mod.load(site)
    site_build.build(config)
    site_build.build(config)
    assert not list((site / config_mod.STATE_DIR).glob("*.stamp"))
    _settled(site)
    assert not isinstance(site_build.build(config), build_stamp.Unchanged)


@pytest.mark.parametrize(("what", "change"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_input_change_gives_the_full_build_a_cold_build_gives(
    site: Path, tmp_path: Path, what: str, change: Callable[[Path], None]
) -> None:
    _settled(site)
    change(site)
    result = _command_build(site)
    assert not isinstance(result, build_stamp.Unchanged), what
    assert _tree(site / "public") == _cold(site, tmp_path / "cold"), what
    # ... and once settled again, the next build stops at the new stamp.
    _command_build(site)
    assert isinstance(_command_build(site), build_stamp.Unchanged), what


def test_a_deleted_or_modified_output_gives_the_full_build(site: Path, tmp_path: Path) -> None:
    _settled(site)
    page = site / "public" / "posts" / "first-article" / "index.html"
    page.unlink()
    assert not isinstance(_command_build(site), build_stamp.Unchanged)
    assert _tree(site / "public") == _cold(site, tmp_path / "cold")  # it is back
    _command_build(site)
    feed = site / "public" / "feed.xml"
    _append(feed, "<!-- by hand -->")
    assert not isinstance(_command_build(site), build_stamp.Unchanged)


def test_another_version_of_the_code_gives_the_full_build(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settled(site)
    monkeypatch.setattr(build_stamp, "VERSION", build_stamp.VERSION + "-next")
    assert not isinstance(_command_build(site), build_stamp.Unchanged)
    assert isinstance(_command_build(site), build_stamp.Unchanged)


def test_another_output_folder_or_drafts_has_its_own_stamp(site: Path) -> None:
    _settled(site)
    config = config_mod.load(site)
    with build_stamp.for_command():
        assert not isinstance(site_build.build(config, drafts=True), build_stamp.Unchanged)
        other = site.parent / "elsewhere"
        assert not isinstance(site_build.build(config, out_dir=other), build_stamp.Unchanged)


def test_a_stat_too_close_to_the_stamp_is_not_trusted(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outputs written, or inputs changed, within ``RACY_NS`` of a build leave a stamp the
    next build does not trust (2 s in use; 0.3 s here, to wait less)."""
    monkeypatch.setattr(build_stamp, "RACY_NS", 300_000_000)
    _settled(site)  # its outputs were written just now
    assert not isinstance(_command_build(site), build_stamp.Unchanged)
    time.sleep(0.4)
    _command_build(site)  # takes the stamp of settled files
    assert isinstance(_command_build(site), build_stamp.Unchanged)
    (site / "content/pages/about.md").write_text("---\ntitle: About\n---\nNew.\n", "utf-8")
    time.sleep(0.4)
    _command_build(site)  # writes the page
    time.sleep(0.4)
    _command_build(site)  # writes nothing: takes the stamp
    assert isinstance(_command_build(site), build_stamp.Unchanged)
    old = time.time_ns() - 10_000_000_000
    os.utime(site / ARTICLE, ns=(old, old))  # an mtime set back: another stat, a rebuild
    assert not isinstance(_command_build(site), build_stamp.Unchanged)


def test_a_broken_stamp_gives_the_full_build(site: Path) -> None:
    _settled(site)
    [stamp] = (site / config_mod.STATE_DIR).glob("*.stamp")
    stamp.write_bytes(b"\x00not a stamp")
    assert not isinstance(_command_build(site), build_stamp.Unchanged)
    assert isinstance(_command_build(site), build_stamp.Unchanged)


def test_the_build_command_prints_the_same_with_nothing_changed(site: Path) -> None:
    (site / ARTICLE).write_text(
        (site / ARTICLE).read_text(encoding="utf-8") + "\n![gone](/static/gone.png)\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    runs = [runner.invoke(main, ["build", "--site", str(site)]) for _ in range(3)]
    assert all(r.exit_code == 0 for r in runs), [r.output for r in runs]
    full, stopped = runs[1], runs[2]
    assert "image '/static/gone.png' not found" in full.stderr
    assert stopped.stderr == full.stderr
    assert _without_time(stopped.stdout) == _without_time(full.stdout)
    assert "(0 changed)" in stopped.stdout


def _without_time(text: str) -> str:
    return " ".join(w for w in text.split() if not w.endswith("s") or not w[0].isdigit())


# A fresh interpreter runs the build command, as a shell does, with every stat trusted.
COMMAND = """
import json, sys
from bridge.site import build_stamp
build_stamp.RACY_NS = 0
from bridge.cli import main
try:
    main(["build", "--site", sys.argv[1]])
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps({"build imported": "bridge.site.build" in sys.modules}))
"""


def test_a_command_with_nothing_to_do_stops_before_it_imports_the_build(site: Path) -> None:
    """The stamp is looked at first: importing the build is a tenth of a second."""
    # writes; writes nothing and leaves a stamp; stops at it
    seen = [run_json(COMMAND, str(site))["build imported"] for _ in range(3)]
    assert seen == [True, True, False]
