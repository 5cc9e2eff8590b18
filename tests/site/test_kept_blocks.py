"""A command build starts from the post blocks the last command build planned (``kept``).

Each post's block (its page, object, Create and collections) is a function of what it is
made of; ``tests/site/test_incremental.py`` shows the output equals a cold build's after
every kind of edit.  These tests show what is planned, and that any doubt about the saved
file means planning as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.site import build as site_build
from bridge.site import build_stamp, kept
from bridge.site.build_result import BuildResult
from bridge.site.plan import Plan
from tests.site.test_incremental import ARTICLE, _cold, _edit, _tree


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The slug of every post block planned (not taken as kept)."""
    slugs: list[str] = []
    real = Plan._post_block

    def recording(self: Plan, post: object, *args: object) -> Iterator[object]:
        slugs.append(post.slug)  # type: ignore[attr-defined]
        return real(self, post, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Plan, "_post_block", recording)
    return slugs


def _command_build(site: Path) -> BuildResult:
    site_build.forget_resident_state()  # as a fresh command starts
    with build_stamp.for_command():
        return site_build.build(config_mod.load(site))


def test_a_command_build_plans_only_the_edited_post(site: Path, planned: list[str]) -> None:
    posts = _command_build(site).posts
    assert len(planned) == posts > 1  # nothing saved yet: every post
    assert (site / ".indiebridge" / "cache" / kept.FILE).is_file()
    planned.clear()
    _edit(site, ARTICLE, "This is the **first**", "This is the **edited**")
    result = _command_build(site)
    assert planned == ["first-article"]
    assert "posts/first-article/index.html" in result.changed
    planned.clear()
    _edit(site, ARTICLE, "This is the **edited**", "This is the **edited again**")
    _command_build(site)  # the file holds the last edit's block too
    assert planned == ["first-article"]


def test_a_page_deleted_by_hand_comes_back(site: Path, planned: list[str]) -> None:
    """A block from the file has its files looked at, as a planned output's are."""
    _command_build(site)
    page = site / "public" / "posts" / "first-article" / "index.html"
    before = page.read_bytes()
    page.unlink()
    planned.clear()
    result = _command_build(site)
    assert page.read_bytes() == before
    assert result.changed == ["posts/first-article/index.html"]
    assert planned == ["first-article"]


def test_blocks_of_other_code_are_not_taken(
    site: Path, planned: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    posts = _command_build(site).posts
    monkeypatch.setattr(kept, "_code_key", lambda code: "another version of the planning code")
    planned.clear()
    _edit(site, ARTICLE, "This is the **first**", "This is the **edited**")
    _command_build(site)
    assert len(planned) == posts


@pytest.mark.parametrize(
    "damage",
    [b"", b"not marshal at all", b"\xe9\x00\x00", b"\xe9"],  # marshal: a truncated tuple
    ids=["empty", "text", "truncated", "one byte"],
)
def test_a_broken_file_costs_only_speed(
    site: Path, tmp_path: Path, planned: list[str], damage: bytes
) -> None:
    posts = _command_build(site).posts
    (site / ".indiebridge" / "cache" / kept.FILE).write_bytes(damage)
    planned.clear()
    _edit(site, ARTICLE, "This is the **first**", "This is the **edited**")
    _command_build(site)
    assert len(planned) == posts
    assert _tree(site / "public") == _cold(site, tmp_path / "cold")
    planned.clear()
    _edit(site, ARTICLE, "This is the **edited**", "This is the **edited again**")
    _command_build(site)  # the file was written anew
    assert planned == ["first-article"]


def test_a_resident_process_neither_reads_nor_writes_the_file(
    site: Path, planned: list[str]
) -> None:
    """``serve --watch`` and the daemon keep their own blocks in memory."""
    config = config_mod.load(site)
    site_build.build(config)
    assert not (site / ".indiebridge" / "cache" / kept.FILE).exists()
    planned.clear()
    _edit(site, ARTICLE, "This is the **first**", "This is the **edited**")
    site_build.build(config)
    assert planned == ["first-article"]
    assert not (site / ".indiebridge" / "cache" / kept.FILE).exists()
