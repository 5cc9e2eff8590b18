"""Live reload: open pages reload after a build, and show a failed build's message.
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

``end_streams_on_exit(hub)`` ends the streams on Ctrl+C so the server stops at once.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import threading
from collections.abc import AsyncIterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bridge.daemon.build_report import describe_error

if TYPE_CHECKING:
    from bridge.site.build import BuildResult

SCRIPT_PATH = "/_indiebridge/livereload.js"
EVENTS_PATH = "/_indiebridge/events"


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
