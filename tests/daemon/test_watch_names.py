"""Watch mode tells each build which files were written, so the others are not stat'ed
(``bridge.site.parse_cache.watched``); whenever it cannot tell, the build checks them all.
Incremental == cold with such lists is in tests/site/test_incremental.py."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from watchdog import events as watchdog_events

from bridge import config as config_mod
from bridge.config import SiteConfig
from bridge.daemon import watch
from bridge.daemon.watch import SiteWatcher
from bridge.site import parse_cache
from bridge.site.build import BuildResult
from tests.daemon.test_watch import Builds, edit

POST = "content/posts/2026-01-10-first-article.md"
NAME = Path(POST).name


@pytest.fixture
def told(monkeypatch: pytest.MonkeyPatch) -> list[frozenset[str] | None]:
    """What the watcher told each build, in order (passed on to the parse cache)."""
    seen: list[frozenset[str] | None] = []
    real = parse_cache.watched

    def spy(config: SiteConfig, names: Any) -> None:
        seen.append(None if names is None else frozenset(names))
        real(config, names)

    monkeypatch.setattr(parse_cache, "watched", spy)
    return seen


@pytest.fixture
def watcher(site: Path) -> Iterator[tuple[SiteWatcher, Builds]]:
    builds = Builds()
    started = SiteWatcher(config_mod.load(site), builds, live_reload=False).start()
    builds.wait(1)
    yield started, builds
    started.stop()


def _saved(site: Path, builds: Builds, old: str, new: str) -> BuildResult | Exception:
    edit(site / POST, old, new)
    return builds.until(lambda o: not isinstance(o, BuildResult) or bool(o.changed))


def test_a_save_is_built_with_the_name_it_wrote_and_the_first_build_checks_all(
    site: Path, told: list[frozenset[str] | None], watcher: tuple[SiteWatcher, Builds]
) -> None:
    _, builds = watcher
    assert told[0] is None  # the first build: nothing is known yet
    result = _saved(site, builds, "This is the **first**", "This is the **saved**")
    assert isinstance(result, BuildResult)
    assert NAME in (told[-1] or ())
    page = site / "public/posts/first-article/index.html"
    assert "<strong>saved</strong>" in page.read_text(encoding="utf-8")


@pytest.mark.skipif(watch._LOST is None, reason="this watchdog does not report lost events")
def test_lost_events_make_the_next_build_check_every_file(
    site: Path, told: list[frozenset[str] | None], watcher: tuple[SiteWatcher, Builds]
) -> None:
    started, builds = watcher
    _saved(site, builds, "This is the **first**", "This is the **one**")
    assert told[-1] is not None
    count, before = len(builds.items), len(told)
    handler = watch._Handler(started, site / "content", None)
    handler.dispatch(watchdog_events.EventsLostEvent(str(site / "content"), is_directory=True))
    builds.wait(count + 1)
    assert told[before] is None


def test_a_failed_build_and_a_build_asked_from_outside_check_every_file(
    site: Path, told: list[frozenset[str] | None], watcher: tuple[SiteWatcher, Builds]
) -> None:
    started, builds = watcher
    failed = _saved(site, builds, "title: The first article", "title: [unclosed")
    assert isinstance(failed, Exception)
    after_failure = len(told)
    fixed = _saved(site, builds, "title: [unclosed", "title: Fixed")
    assert isinstance(fixed, BuildResult)
    assert told[after_failure] is None  # the broken file's row was never written
    count, asked = len(builds.items), len(told)
    started.request_build()
    builds.wait(count + 1)
    assert told[asked] is None


def test_every_file_is_checked_again_after_full_scan_every(
    site: Path,
    told: list[frozenset[str] | None],
    watcher: tuple[SiteWatcher, Builds],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started, builds = watcher
    _saved(site, builds, "This is the **first**", "This is the **one**")
    assert told[-1] is not None
    monkeypatch.setattr(started, "FULL_SCAN_EVERY", 0.0)
    time.sleep(0.01)
    _saved(site, builds, "This is the **one**", "This is the **two**")
    assert told[-1] is None


def test_folder_events_and_hidden_names_are_recorded(
    site: Path, told: list[frozenset[str] | None], watcher: tuple[SiteWatcher, Builds]
) -> None:
    """A name the watcher ignores for scheduling (``#x.md``, which is still a post) is
    listed for the next build; a new folder makes it check every file."""
    _, builds = watcher
    hidden = site / "content/posts/#scratch.md"
    hidden.write_text("---\ntitle: Scratch\ndate: 2026-01-02\n---\nText.\n", encoding="utf-8")
    result = _saved(site, builds, "This is the **first**", "This is the **one**")
    assert isinstance(result, BuildResult)
    assert {"#scratch.md", NAME} <= (told[-1] or set())
    before = len(told)
    (site / "content/posts/sub").mkdir()
    _saved(site, builds, "This is the **one**", "This is the **two**")
    assert told[before] is None


def test_an_idle_watcher_freezes_what_builds_left_and_gives_it_back_when_stopped(
    site: Path,
) -> None:
    """Once idle after a build, the watcher collects its garbage and freezes the rest
    (``SiteWatcher._settle_memory``); ``stop()`` unfreezes, so nothing stays hidden from
    the collector after watching ends."""
    gc.unfreeze()
    builds = Builds()
    watcher = SiteWatcher(config_mod.load(site), builds, live_reload=False)
    watcher.SETTLE_AFTER = 0.05
    watcher.start()
    try:
        builds.wait(1)
        deadline = time.monotonic() + 5
        while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gc.get_freeze_count() > 0
    finally:
        watcher.stop()
    assert gc.get_freeze_count() == 0
