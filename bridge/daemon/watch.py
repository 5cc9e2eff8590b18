"""Watch mode: rebuild on save, and reload the pages open in a browser.

``SiteWatcher`` runs a watchdog observer on everything a build reads: ``content/``, the
site's ``templates/`` and ``static/``, the default theme (``site_template/``) and
``site.toml``.  Events are debounced: a burst of saves (an editor writing a temporary file,
renaming it, touching a backup) becomes ONE build, ``delay`` seconds (0.2) after the last
event.  Builds run in the watcher's own thread, one at a time, through ``site.build``, so
only the outputs whose inputs changed are rewritten and the new tree is swapped in
atomically: a broken post or template leaves the last good output in place, and
the error goes to ``on_build`` as an exception instead of a ``BuildResult``.

Only writes count: opening or reading a file (which the build itself does) is not an event
the observer subscribes to, and hidden files and editor leftovers (``.#x``, ``x~``,
``.x.swp``, ``4913``) are ignored.  A change to ``site.toml`` reloads the settings before
the build (a broken ``site.toml`` is reported like a broken post; the previous settings
stay in force).

Live reload
-----------
``ReloadHub`` fans build outcomes out to browsers over Server-Sent Events;
``live_reload_routes(hub)`` are the two routes the daemon mounts in ``serve --watch``:

* ``GET /_indiebridge/livereload.js`` - the script that pages built with
  ``live_reload=True`` include (``base.html``).  It is served from memory and never
  written into the built site.
* ``GET /_indiebridge/events`` - the SSE stream.  Events: ``hello`` (sent on connect:
  the current build id and error, if any), ``reload`` (a build finished: its id and the
  changed output paths) and ``failed`` (a build failed: a one-line message).

The script reloads the page when the file it was served from (or any ``static/`` file)
changed, shows a fixed overlay with the message when a build fails, and hides it after the
next good build.  A stream ends by itself after ``max_age`` seconds and the browser
reconnects (``retry`` 500 ms): a server that is shutting down never waits long for open
tabs, and the ``hello`` after a reconnect tells the page about any build it missed.

Publishing
----------
With ``auto_publish = true`` in site.toml, ``on_publish(result)`` is called after each
successful build that changed something.  ``daemon_publisher`` (for ``serve --watch``)
schedules ``outbox.publish`` on the daemon's event loop, where its delivery worker sends
the queue; ``cli_publisher`` (for ``indiebridge watch``) publishes and delivers from the
watcher thread, like ``indiebridge publish``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
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
    from bridge.federation.context import Context
    from bridge.site.build import BuildResult

log = logging.getLogger("indiebridge.watch")

OnBuild = Callable[["BuildResult | Exception"], None]
OnPublish = Callable[["BuildResult"], None]
Echo = Callable[[str], None]

SCRIPT_PATH = "/_indiebridge/livereload.js"
EVENTS_PATH = "/_indiebridge/events"

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


# ---- describing outcomes ------------------------------------------------------------


def _short_path(path: str, config: SiteConfig | None) -> str:
    p = Path(path)
    roots = [config.site_dir] if config is not None else []
    roots.append(config_mod.DEFAULT_THEME.parent)
    for root in roots:
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return path


def describe_error(exc: BaseException, config: SiteConfig | None = None) -> str:
    """One line naming the file (and line) at fault and what is wrong."""
    import jinja2

    from bridge.errors import BridgeError

    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = _short_path(exc.filename or exc.name or "template", config)
        text = f"{where}:{exc.lineno}: {exc.message}"
    elif isinstance(exc, jinja2.TemplateNotFound):
        text = f"template not found: {exc.name}"
    elif isinstance(exc, BridgeError):
        text = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc}"
        text = message
        # Jinja rewrites tracebacks so template frames carry the template's file and line.
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename.endswith((".html", ".xml", ".txt", ".j2", ".jinja")):
                text = f"{_short_path(frame.filename, config)}:{frame.lineno}: {message}"
                break
    return " ".join(text.split())


def describe(outcome: BuildResult | Exception, config: SiteConfig | None = None) -> str:
    """The one line the terminal shows for a build."""
    if isinstance(outcome, Exception):
        return f"build failed: {describe_error(outcome, config)}"
    changed = outcome.changed
    if not changed:
        return f"rebuilt in {outcome.seconds:.2f}s: nothing changed"
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return f"rebuilt in {outcome.seconds:.2f}s: {len(changed)} file(s) changed: {shown}"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def terminal_reporter(
    hub: ReloadHub | None = None,
    echo: Echo | None = None,
    config: SiteConfig | None = None,
) -> OnBuild:
    """An ``on_build`` that prints one line per build and forwards the outcome to ``hub``."""
    out = echo or _stderr

    def report(outcome: BuildResult | Exception) -> None:
        out(describe(outcome, config))
        if hub is not None:
            hub.on_build(
                outcome, describe_error(outcome, config) if isinstance(outcome, Exception) else ""
            )

    return report


# ---- the watcher --------------------------------------------------------------------


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: SiteWatcher, root: Path, only: str | None) -> None:
        self.watcher = watcher
        self.root = root
        self.only = only  # for the site folder itself: the one file name that matters

    def dispatch(self, event: FileSystemEvent) -> None:
        paths = [_as_str(event.src_path)]
        if event.dest_path:
            paths.append(_as_str(event.dest_path))
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

    def __init__(
        self,
        config: SiteConfig,
        on_build: OnBuild,
        *,
        on_publish: OnPublish | None = None,
        delay: float = 0.2,
        live_reload: bool = True,
        drafts: bool = False,
        out_dir: Path | None = None,
        initial_build: bool = True,
    ) -> None:
        self.config = config
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

    def __enter__(self) -> SiteWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def request_build(self, delay: float | None = None) -> None:
        """Ask for a (debounced) build, e.g. when the daemon stored a comment."""
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
        self.request_build()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        self._idle.set()
                        return
                    if self._due is not None:
                        wait = self._due - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._idle.set()
                        self._cond.wait()
                self._due = None
                reload_config, self._reload_config = self._reload_config, False
                rescan, self._rescan = self._rescan, False
            if rescan:
                self._schedule_folders()
            self._build(reload_config)

    def _build(self, reload_config: bool) -> None:
        from bridge.site import build as site

        outcome: BuildResult | Exception
        try:
            if reload_config:
                self.config = config_mod.load(self.config.site_dir)
            outcome = site.build(
                self.config, out_dir=self.out_dir, drafts=self.drafts, live_reload=self.live_reload
            )
        except Exception as exc:  # noqa: BLE001 - any failure is reported; the old output stays
            outcome = exc
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


# ---- live reload ----------------------------------------------------------------------


LIVERELOAD_JS = """\
// indiebridge live reload (served by `indiebridge serve --watch`, never part of the site).
(() => {
  "use strict";
  let known = __BUILD__;
  let overlay = null;
  const here = () => {
    let path = location.pathname;
    if (path.endsWith("/")) path += "index.html";
    try { path = decodeURIComponent(path); } catch (err) { /* keep it encoded */ }
    return path.replace(/^\\/+/, "");
  };
  const show = (message) => {
    if (!overlay) {
      overlay = document.createElement("div");
      overlay.id = "indiebridge-build-error";
      overlay.setAttribute("role", "alert");
      overlay.style.cssText = "position:fixed;inset:0 0 auto 0;z-index:2147483647;" +
        "margin:0;padding:1em 1.5em;background:#7f1d1d;color:#fff;" +
        "font:14px/1.5 ui-monospace,monospace;white-space:pre-wrap;" +
        "box-shadow:0 2px 12px rgba(0,0,0,.4)";
      const title = document.createElement("strong");
      title.textContent = "Build failed - showing the last good version of this page";
      const text = document.createElement("div");
      text.className = "message";
      overlay.append(title, text);
    }
    overlay.querySelector(".message").textContent = message;
    if (!overlay.isConnected) document.body.append(overlay);
  };
  const hide = () => { if (overlay) overlay.remove(); };
  const affects = (data) => {
    if (data.all || !Array.isArray(data.changed)) return true;
    const page = here();
    return data.changed.some((rel) => rel === page || rel.startsWith("static/"));
  };
  const source = new EventSource("__EVENTS__");
  source.addEventListener("hello", (event) => {
    const data = JSON.parse(event.data);
    if (data.error) show(data.error); else hide();
    if (data.build !== known) { known = data.build; if (!data.error) location.reload(); }
  });
  source.addEventListener("reload", (event) => {
    const data = JSON.parse(event.data);
    known = data.build;
    hide();
    if (affects(data)) location.reload();
  });
  source.addEventListener("failed", (event) => {
    const data = JSON.parse(event.data);
    known = data.build;
    show(data.message);
  });
})();
"""

_MAX_CHANGED = 500


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


_Client = tuple[asyncio.AbstractEventLoop, asyncio.Queue[str | None]]


class ReloadHub:
    """Broadcasts build outcomes to the browsers connected to ``/_indiebridge/events``.

    ``on_build`` may be called from any thread (the watcher's); each connected stream lives
    on an event loop and gets the message through ``call_soon_threadsafe``.
    """

    def __init__(
        self, *, max_age: float = 10.0, heartbeat: float = 5.0, retry_ms: int = 500
    ) -> None:
        self.max_age = max_age
        self.heartbeat = heartbeat
        self.retry_ms = retry_ms
        self._token = secrets.token_hex(4)
        self._count = 0
        self._error = ""
        self._lock = threading.Lock()
        self._clients: set[_Client] = set()
        self._closed = False

    @property
    def build_id(self) -> str:
        return f"{self._token}-{self._count}"

    @property
    def error(self) -> str:
        return self._error

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def on_build(self, outcome: BuildResult | Exception, message: str = "") -> None:
        """Tell every page about a finished build (``message``: the one-line error)."""
        with self._lock:
            self._count += 1
            if isinstance(outcome, Exception):
                self._error = message or describe_error(outcome)
                text = _sse("failed", {"build": self.build_id, "message": self._error})
            else:
                self._error = ""
                changed = list(outcome.changed)
                data: dict[str, Any] = {"build": self.build_id}
                if len(changed) > _MAX_CHANGED:
                    data["all"] = True
                else:
                    data["changed"] = changed
                text = _sse("reload", data)
            self._broadcast(text)

    def close(self) -> None:
        """End every open stream (browsers reconnect to whoever serves next)."""
        with self._lock:
            self._closed = True
            self._broadcast(None)

    def _broadcast(self, text: str | None) -> None:
        for loop, queue in list(self._clients):
            try:
                loop.call_soon_threadsafe(queue.put_nowait, text)
            except RuntimeError:  # that loop is closed: the client is gone
                self._clients.discard((loop, queue))

    def _hello(self) -> str:
        return f"retry: {self.retry_ms}\n" + _sse(
            "hello", {"build": self.build_id, "error": self._error or None}
        )

    async def stream(self) -> AsyncIterator[str]:
        """The SSE text of one connection: hello, then build events, pings; ends after
        ``max_age`` seconds or when the hub closes."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        client = (loop, queue)
        with self._lock:
            if self._closed:
                return
            self._clients.add(client)
            hello = self._hello()
        try:
            yield hello
            deadline = loop.time() + self.max_age
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    text = await asyncio.wait_for(queue.get(), min(self.heartbeat, remaining))
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if text is None:
                    return
                yield text
        finally:
            with self._lock:
                self._clients.discard(client)

    def script(self) -> str:
        return LIVERELOAD_JS.replace("__BUILD__", json.dumps(self.build_id)).replace(
            "__EVENTS__", EVENTS_PATH
        )


def live_reload_routes(hub: ReloadHub) -> list[Route]:
    """The script and the event stream, to mount before the daemon's catch-all route."""

    async def script(request: Request) -> Response:
        return Response(
            hub.script(),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )

    async def events(request: Request) -> Response:
        return StreamingResponse(
            hub.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return [
        Route(SCRIPT_PATH, script, methods=["GET", "HEAD"]),
        Route(EVENTS_PATH, events, methods=["GET"]),
    ]


# ---- auto_publish hooks ------------------------------------------------------------------


def daemon_publisher(
    ctx: Context, loop: asyncio.AbstractEventLoop, echo: Echo | None = None
) -> OnPublish:
    """``on_publish`` for the daemon: queue the publish diff on the daemon's loop.

    Publishes run one at a time; the daemon's delivery worker sends what they queue.
    """
    out = echo or _stderr
    lock = asyncio.Lock()

    async def run() -> None:
        from bridge.conversations.post_mentions import PostWebmentions
        from bridge.federation import outbox
        from bridge.site import content

        async with lock:
            posts, _ = await asyncio.to_thread(content.load, ctx.config)
            report = await outbox.publish(ctx, posts, webmentions=PostWebmentions(ctx))
            out(f"auto_publish: {report.summary()}")

    def done(future: Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            out(f"auto_publish failed: {describe_error(exc)}")

    def hook(result: BuildResult) -> None:
        future = asyncio.run_coroutine_threadsafe(run(), loop)
        future.add_done_callback(done)

    return hook


def cli_publisher(config: SiteConfig, echo: Echo | None = None) -> OnPublish:
    """``on_publish`` for ``indiebridge watch``: publish, then deliver unless a daemon runs."""
    out = echo or _stderr

    async def run(current: SiteConfig) -> None:
        from bridge import keys
        from bridge.conversations.post_mentions import PostWebmentions
        from bridge.daemon import app as daemon
        from bridge.db import Database
        from bridge.federation import delivery, followers, outbox
        from bridge.federation.context import make_context
        from bridge.site import content

        db = Database(current.db_path)
        ctx = make_context(current, db, keys.load(current.state_dir))
        try:
            posts, _ = content.load(current)
            report = await outbox.publish(ctx, posts, webmentions=PostWebmentions(ctx))
            out(f"auto_publish: {report.summary()}")
            if daemon.DaemonLock.held(daemon.lock_path(current)):
                return

            def gone(inbox_url: str) -> None:
                followers.remove_by_inbox(db, inbox_url)

            worker = delivery.DeliveryWorker(
                db,
                private_key=ctx.keys.rsa,
                key_id=current.key_id,
                scheme=cast(Any, current.signature_scheme),
                allow_private=current.allow_private_addresses,
                base_url=current.base_url,
                on_gone=gone,
            )
            worker.recover()
            stats = await worker.run_until_idle()
            out(
                f"auto_publish: delivered {stats.delivered}, retrying later {stats.retrying}, "
                f"failed {stats.failed}"
            )
        finally:
            await ctx.fetcher.aclose()
            db.close()

    def hook(result: BuildResult) -> None:
        from bridge.errors import BridgeError

        try:
            asyncio.run(run(config_mod.load(config.site_dir)))
        except BridgeError as exc:
            out(f"auto_publish failed: {describe_error(exc)}")

    return hook


def end_streams_on_exit(hub: ReloadHub) -> None:
    """On Ctrl+C or SIGTERM, end the event streams first, so the server stops at once
    instead of waiting for open tabs; then the handler that was there (uvicorn's) runs.

    Only from the main thread with a running loop (the daemon's lifespan); elsewhere it
    does nothing, and streams still end by themselves after ``max_age``.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(hub.close)
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

        signal.signal(sig, handler)


def start_daemon_watcher(ctx: Context, hub: ReloadHub, echo: Echo | None = None) -> SiteWatcher:
    """Start a watcher for ``serve --watch``; call from the daemon's running event loop.

    Builds include the live-reload script, outcomes go to the terminal and to ``hub``,
    ``auto_publish`` publishes through the daemon, rebuilds the daemon asks for (a new
    comment) go through the watcher so two builds never run at once, and Ctrl+C ends the
    event streams so the server does not wait for open tabs.
    """
    loop = asyncio.get_running_loop()
    watcher = SiteWatcher(
        ctx.config,
        terminal_reporter(hub, echo, ctx.config),
        on_publish=daemon_publisher(ctx, loop, echo),
        live_reload=True,
    )
    ctx.mark_dirty = lambda slug: watcher.request_build()
    end_streams_on_exit(hub)
    return watcher.start()
