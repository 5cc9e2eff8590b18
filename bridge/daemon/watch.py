"""Watch mode: rebuild on save, and reload the pages open in a browser.

``SiteWatcher`` runs a watchdog observer on everything a build reads: ``content/``, the
site's ``templates/`` and ``static/``, the default theme (``site_template/``) and
``site.toml``. Events are debounced: a burst of saves (an editor writing a temporary file,
renaming it, touching a backup) becomes ONE build, ``delay`` seconds (0.1) after the last
event: the events of one save arrive within milliseconds of each other, and the delay is
part of every save -> reload (a longer burst, such as a checkout, may give two builds, the
last one complete). It was 0.2 s, 40 % of the half second a save may take. Builds run in the
watcher's own thread, one at a time, through ``site.build``, so only the outputs whose
inputs changed are rewritten and the new tree is swapped in atomically: a broken post or
template leaves the last good output in place, and the error goes to ``on_build`` as an
exception instead of a ``BuildResult``. Being one long-lived process, the watcher's builds
keep what they read between saves (the parsed posts, the manifest, each post's planned
outputs and image checks: ``bridge.site.kept``), so a save costs its post's work and the
pages that show it.  Each build is told the names of the files written since the previous
one (``bridge.site.parse_cache.watched``), so the other posts are not even stat'ed; when
the watcher cannot tell (its first build, a folder event, events the kernel dropped, a
failed build, a build asked for from outside) and at least once a minute, every post is
checked as a command checks it.

Only writes count: opening or reading a file (which the build itself does) is not an event
the observer subscribes to, and hidden files and editor leftovers (``.#x``, ``x~``,
``.x.swp``, ``4913``) are ignored.  A change to ``site.toml`` reloads the settings before
the build (a broken ``site.toml`` is reported like a broken post; the previous settings
stay in force).

The live-reload hub is in ``bridge.daemon.livereload``, the one-line build messages in
``bridge.daemon.build_report``, and publishing after a build in ``bridge.daemon.autopublish``.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog import events as watchdog_events
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from bridge import config as config_mod
from bridge.config import SiteConfig

if TYPE_CHECKING:
    from bridge.site.build import BuildResult

log = logging.getLogger("indiebridge.watch")

OnBuild = Callable[["BuildResult | Exception"], None]
OnPublish = Callable[["BuildResult"], None]

# Only writes: the build reads every file it watches, and reads must not trigger builds.
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
# The kernel dropped events (inotify's queue overflowed; watchdog >= 6 reports it): every
# file is checked again.  Without it (older watchdog) the watcher never lists names.
_LOST: type[FileSystemEvent] | None = getattr(watchdog_events, "EventsLostEvent", None)
if _LOST is not None:
    _EVENT_FILTER.append(_LOST)
_EDITOR_LEFTOVERS = (".swp", ".swx", ".swo", ".tmp", ".part", ".crdownload", "~")


def _ignored_name(name: str) -> bool:
    """Hidden files and editor leftovers: never part of the site, never a reason to build."""
    return (
        not name
        or name.startswith((".", "#"))
        or name.endswith(_EDITOR_LEFTOVERS)
        or name == "4913"  # vim's "can I write here" probe
    )


def _as_str(path: bytes | str) -> str:
    return path.decode(errors="replace") if isinstance(path, bytes) else path


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: SiteWatcher, root: Path, only: str | None) -> None:
        self.watcher = watcher
        self.root = root
        self.only = only  # for the site folder itself: the one file name that matters

    def dispatch(self, event: FileSystemEvent) -> None:
        if _LOST is not None and isinstance(event, _LOST):
            self.watcher._written(True, [])  # no list of names for the next build
            self.watcher._changed(rescan=True)
            return
        paths = [_as_str(event.src_path)]
        if event.dest_path:
            paths.append(_as_str(event.dest_path))
        if self.only is None and not (event.is_directory and event.event_type == "modified"):
            # Every name written, ignored ones too (a post may be named like a leftover):
            # the next build stats only these (``bridge.site.parse_cache.watched``).
            self.watcher._written(event.is_directory, [os.path.basename(p) for p in paths])
        for raw in paths:
            path = Path(raw)
            if self.only is not None:
                if path.parent != self.root:
                    continue
                if path.name == self.only:
                    self.watcher._changed(config_changed=True)
                    return
                if event.is_directory and path.name in self.watcher.SITE_FOLDERS:
                    self.watcher._changed(rescan=True)
                    return
                continue
            if event.is_directory and event.event_type == "modified":
                continue
            try:
                parts = path.relative_to(self.root).parts
            except ValueError:
                parts = (path.name,)
            if any(_ignored_name(part) for part in parts):
                continue
            self.watcher._changed(rescan=event.is_directory)
            return


@dataclass
class _Scheduled:
    path: Path
    watch: ObservedWatch


class SiteWatcher:
    """Rebuild the site when its sources change; see the module docstring.

    ``on_build`` receives each build's ``BuildResult``, or the exception of a failed build
    (the previous output then stays).  It runs in the watcher thread.  ``on_publish`` is
    called after a successful build that changed files when ``auto_publish`` is on.
    """

    SITE_FOLDERS = ("content", "templates", "static")
    # A build with no list of written names stats every post at least this often (s):
    # it catches what no event reports (a post that links to a file outside content/).
    FULL_SCAN_EVERY = 60.0
    SETTLE_AFTER = 0.25  # idle seconds after a build (the reloaded page is fetched first)
    UNFREEZE_EVERY = 20  # settles (see ``_settle_memory``)

    def __init__(
        self,
        config: SiteConfig,
        on_build: OnBuild,
        *,
        on_publish: OnPublish | None = None,
        delay: float = 0.1,
        live_reload: bool = True,
        drafts: bool = False,
        out_dir: Path | None = None,
        initial_build: bool = True,
        configure: Callable[[SiteConfig], SiteConfig] | None = None,
    ) -> None:
        self.config = config
        self.configure = configure  # applied to site.toml when it is read again (a preview)
        self.on_build = on_build
        self.on_publish = on_publish
        self.delay = delay
        self.live_reload = live_reload
        self.drafts = drafts
        self.out_dir = out_dir
        self.initial_build = initial_build
        self.builds = 0
        self.last: BuildResult | Exception | None = None
        self._cond = threading.Condition()
        self._due: float | None = None
        self._reload_config = False
        self._rescan = False
        # Names written since the last build started; None: not known (the first build,
        # a folder event, a build asked for from outside, a failed build).
        self._names: set[str] | None = None
        self._full_scan = 0.0  # when the last build without a list started (monotonic)
        self._settle_at: float | None = None  # when to collect the last build's garbage
        self._settles = 0
        self._stopping = False
        self._idle = threading.Event()
        self._idle.set()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._watches: dict[Path, _Scheduled] = {}

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> SiteWatcher:
        if self._thread is not None:
            raise RuntimeError("watcher already started")
        self._stopping = False
        observer = Observer()
        observer.daemon = True
        self._observer = observer
        observer.schedule(
            _Handler(self, self.config.site_dir, config_mod.CONFIG_NAME),
            str(self.config.site_dir),
            recursive=False,
            event_filter=_EVENT_FILTER,
        )
        self._schedule_folders()
        observer.start()
        self._thread = threading.Thread(target=self._run, name="indiebridge-watch", daemon=True)
        self._thread.start()
        if self.initial_build:
            self.request_build(delay=0.0)
        return self

    def stop(self) -> None:
        """Stop watching; a build in progress finishes first, a pending one is dropped."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._watches.clear()
        if self._settles:
            gc.unfreeze()  # the collector sees every object again

    def __enter__(self) -> SiteWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def request_build(self, delay: float | None = None) -> None:
        """Ask for a (debounced) build, e.g. when the daemon stored a comment."""
        with self._cond:
            self._names = None  # a cause the watcher did not see: every file is checked
        self._schedule(delay)

    def _schedule(self, delay: float | None = None) -> None:
        with self._cond:
            self._idle.clear()
            self._due = time.monotonic() + (self.delay if delay is None else delay)
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no build is pending or running (for tests and scripts)."""
        return self._idle.wait(timeout)

    # ---- internals ------------------------------------------------------------------------

    def _folders(self) -> list[Path]:
        site = self.config.site_dir
        return [site / name for name in self.SITE_FOLDERS] + [config_mod.DEFAULT_THEME]

    def _schedule_folders(self) -> None:
        observer = self._observer
        if observer is None:
            return
        for folder in self._folders():
            scheduled = self._watches.get(folder)
            exists = folder.is_dir()
            if scheduled is not None and not exists:
                observer.unschedule(scheduled.watch)
                del self._watches[folder]
            elif scheduled is None and exists:
                try:
                    watch = observer.schedule(
                        _Handler(self, folder, None),
                        str(folder),
                        recursive=True,
                        event_filter=_EVENT_FILTER,
                    )
                except OSError as exc:  # e.g. out of inotify watches
                    log.warning("cannot watch %s: %s", folder, exc)
                    continue
                self._watches[folder] = _Scheduled(folder, watch)

    def _changed(self, *, config_changed: bool = False, rescan: bool = False) -> None:
        with self._cond:
            self._reload_config |= config_changed
            self._rescan |= rescan
        self._schedule()

    def _written(self, is_directory: bool, names: list[str]) -> None:
        with self._cond:
            if is_directory:
                self._names = None
            elif self._names is not None:
                self._names.update(names)

    def _take_names(self) -> set[str] | None:
        """The names written since the last build, for the build about to start (the
        lock held); None every ``FULL_SCAN_EVERY`` seconds and when they are not known."""
        names, self._names = self._names, set()
        now = time.monotonic()
        if names is None or _LOST is None or now - self._full_scan > self.FULL_SCAN_EVERY:
            self._full_scan = now
            return None
        return names

    def _run(self) -> None:
        while True:
            with self._cond:
                job = self._next_job()
                if job == "stop":
                    return
                if job == "build":
                    reload_config, self._reload_config = self._reload_config, False
                    rescan, self._rescan = self._rescan, False
                    names = self._take_names()
            if job == "settle":
                self._settle_memory()
                continue
            if rescan:
                self._schedule_folders()
            self._build(reload_config, None if rescan else names)
            with self._cond:
                self._settle_at = time.monotonic() + self.SETTLE_AFTER

    def _next_job(self) -> str:
        """Wait (the lock held) for the next thing to do: "build", "settle" or "stop"."""
        while True:
            if self._stopping:
                self._idle.set()
                return "stop"
            now = time.monotonic()
            if self._due is not None:
                if self._due <= now:
                    self._due = None
                    return "build"
                self._cond.wait(self._due - now)
                continue
            self._idle.set()
            if self._settle_at is None:
                self._cond.wait()
            elif self._settle_at <= now:
                self._settle_at = None
                return "settle"
            else:
                self._cond.wait(self._settle_at - now)

    def _settle_memory(self) -> None:
        """Collect the last build's garbage, then freeze what is left out of the cyclic
        collector's view (``gc.freeze``), while nothing is being built.

        A process that keeps 10,000 posts' rows, items and planned blocks has a million
        objects the collector would otherwise walk in every full collection, and a build
        set one off most times: 60-110 ms of a 0.3 s rebuild.  Frozen objects are still
        freed when no longer referenced; a cycle among them is not, so every
        ``UNFREEZE_EVERY`` settles the collector sees everything again, and ``stop()``
        gives it all back."""
        self._settles += 1
        if self._settles % self.UNFREEZE_EVERY == 0:
            gc.unfreeze()
        gc.collect()
        gc.freeze()

    def _build(self, reload_config: bool, names: set[str] | None) -> None:
        from bridge.site import build as site
        from bridge.site import parse_cache

        outcome: BuildResult | Exception
        try:
            if reload_config:
                self.config = config_mod.load(self.config.site_dir)
                if self.configure is not None:
                    self.config = self.configure(self.config)
            parse_cache.watched(self.config, names)
            outcome = site.build(
                self.config, out_dir=self.out_dir, drafts=self.drafts, live_reload=self.live_reload
            )
        except Exception as exc:  # noqa: BLE001 - any failure is reported; the old output stays
            outcome = exc
            with self._cond:
                self._names = None  # what this build was told is not yet built: check all
            if reload_config:
                with self._cond:
                    self._reload_config = True  # try the settings again on the next save
        self.builds += 1
        self.last = outcome
        try:
            self.on_build(outcome)
        except Exception:  # a reporter bug must not stop the watcher
            log.exception("on_build callback failed")
        if (
            not isinstance(outcome, Exception)
            and outcome.changed
            and self.config.auto_publish
            and self.on_publish is not None
        ):
            try:
                self.on_publish(outcome)
            except Exception:  # reported; watching goes on
                log.exception("auto_publish failed")
