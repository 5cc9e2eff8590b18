"""Watch mode: one debounced, incremental rebuild per save; broken files keep the last good
output and are reported; the live-reload hub speaks Server-Sent Events over a real socket."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from bridge import config as config_mod
from bridge.daemon.build_report import describe, describe_error, terminal_reporter
from bridge.daemon.livereload import EVENTS_PATH, SCRIPT_PATH, ReloadHub, live_reload_routes
from bridge.daemon.watch import SiteWatcher
from bridge.errors import ContentError
from bridge.site import build as site_mod
from bridge.site.build import BuildResult
from bridge.site.comments import CommentStore
from tests.site.test_comment_pages import reply_comment

POST = "content/posts/2026-01-10-first-article.md"

# ---- servers and collectors (the browser and bridge tests import these too) ----------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """uvicorn serving an ASGI app on 127.0.0.1 from a thread; ``stop()`` joins it."""

    def __init__(self, app: Any, port: int | None = None, *, lifespan: str = "off") -> None:
        self.port = port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                ws="none",
                lifespan=lifespan,
                timeout_graceful_shutdown=2,
            )
        )
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def site_app(hub: ReloadHub, out_dir: Path) -> Starlette:
    """The live-reload routes in front of the built folder, as ``serve --watch`` mounts them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return Starlette(
        routes=[*live_reload_routes(hub), Mount("/", StaticFiles(directory=out_dir, html=True))]
    )


class Builds:
    """Collects what a watcher reports, with the moment each build ended."""

    def __init__(self) -> None:
        self.items: list[tuple[float, BuildResult | Exception]] = []
        self.cond = threading.Condition()

    def __call__(self, outcome: BuildResult | Exception) -> None:
        with self.cond:
            self.items.append((time.monotonic(), outcome))
            self.cond.notify_all()

    def wait(self, count: int, timeout: float = 5.0) -> list[tuple[float, BuildResult | Exception]]:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.items) >= count, timeout)
        assert ok, f"expected {count} builds, got {len(self.items)}: {self.items}"
        return self.items[:count]

    def until(
        self, predicate: Callable[[BuildResult | Exception], bool], timeout: float = 5.0
    ) -> BuildResult | Exception:
        """The first outcome from now on that satisfies ``predicate`` (a slow machine may
        split one save into two builds; these tests care about the outcome, not the count)."""
        start = len(self.items)

        def found() -> list[BuildResult | Exception]:
            return [o for _, o in self.items[start:] if predicate(o)]

        with self.cond:
            ok = self.cond.wait_for(lambda: bool(found()), timeout)
        assert ok, f"no matching build; got {self.items[start:]}"
        return found()[0]

    @property
    def last(self) -> BuildResult | Exception:
        return self.items[-1][1]


def mtimes(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()
    }


@pytest.fixture
def watching(site: Path) -> Iterator[Callable[..., tuple[SiteWatcher, Builds]]]:
    started: list[SiteWatcher] = []

    def start(**options: Any) -> tuple[SiteWatcher, Builds]:
        builds = Builds()
        watcher = SiteWatcher(config_mod.load(site), builds, **options)
        started.append(watcher.start())
        builds.wait(1)  # the initial build
        assert isinstance(builds.last, BuildResult), builds.last
        return watcher, builds

    yield start
    for watcher in started:
        watcher.stop()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


# ---- rebuilding ---------------------------------------------------------------------------


def test_a_burst_of_saves_is_one_incremental_rebuild_within_a_second(
    site: Path, watching: Callable[..., tuple[SiteWatcher, Builds]]
) -> None:
    watcher, builds = watching()
    out = site / "public"
    before = mtimes(out)
    time.sleep(0.05)

    post = site / POST
    saved = time.monotonic()
    for n in range(5):  # an editor saving, then saving again: one build for all of it
        edit(post, "second paragraph, too", f"second paragraph, edit {n}")
        post.write_text(
            post.read_text(encoding="utf-8").replace(f"edit {n}", "too, now edited"),
            encoding="utf-8",
        )
        time.sleep(0.02)
    ((ended, result),) = builds.wait(2)[1:]
    assert ended - saved < 1.0
    time.sleep(0.6)
    assert len(builds.items) == 2, "one burst must give exactly one rebuild"

    assert isinstance(result, BuildResult)
    assert "posts/first-article/index.html" in result.changed
    assert "too, now edited" in (out / "posts/first-article/index.html").read_text(encoding="utf-8")
    after = mtimes(out)
    untouched = [
        "posts/quick-note/index.html",
        "posts/spoilers/index.html",
        "posts/a-reply/index.html",
        "about/index.html",
        "tags/tv/index.html",
        "ap/posts/spoilers.json",
        "static/style.css",
    ]
    for rel in untouched:
        assert after[rel] == before[rel], f"{rel} was rewritten"
    assert set(result.changed) == {k for k in after if after[k] != before.get(k)}
    assert watcher.builds == 2


def test_live_reload_builds_carry_the_script_and_plain_builds_do_not(
    site: Path, watching: Callable[..., tuple[SiteWatcher, Builds]]
) -> None:
    watching()
    page = (site / "public/posts/first-article/index.html").read_text(encoding="utf-8")
    assert f'<script src="{SCRIPT_PATH}"' in page
    assert not (site / "public/_indiebridge").exists(), "the script is never written to the site"
    site_mod.build(config_mod.load(site))
    page = (site / "public/posts/first-article/index.html").read_text(encoding="utf-8")
    assert SCRIPT_PATH not in page


def test_a_broken_post_keeps_the_last_good_output_and_is_reported_on_one_line(
    site: Path, watching: Callable[..., tuple[SiteWatcher, Builds]]
) -> None:
    lines: list[str] = []
    hub = ReloadHub()
    builds = Builds()

    def on_build(outcome: BuildResult | Exception) -> None:
        terminal_reporter(hub, lines.append)(outcome)
        builds(outcome)

    watcher = SiteWatcher(config_mod.load(site), on_build).start()
    try:
        builds.wait(1)
        out = site / "public"
        good = {p: (out / p).read_bytes() for p in mtimes(out)}
        post = site / POST
        edit(post, "tags: [python, IndieWeb]", "tags: [python, IndieWeb")
        assert isinstance(builds.until(lambda o: isinstance(o, Exception)), ContentError)
        assert {p: (out / p).read_bytes() for p in mtimes(out)} == good
        assert "\n" not in lines[-1]
        assert lines[-1].startswith(f"build failed: {POST}:")
        assert "invalid YAML front matter" in lines[-1]
        assert hub.error.startswith(POST)

        edit(post, "tags: [python, IndieWeb", "tags: [python, IndieWeb]")
        builds.until(lambda o: isinstance(o, BuildResult))
        assert hub.error == ""
        assert lines[-1].startswith("rebuilt in ")
    finally:
        watcher.stop()


def test_a_template_error_names_the_template_and_line(
    site: Path, watching: Callable[..., tuple[SiteWatcher, Builds]]
) -> None:
    _, builds = watching()
    (site / "templates").mkdir()  # created while watching: picked up without a restart
    builds.wait(2)
    (site / "templates/post.html").write_text(
        '{% extends "base.html" %}\n{% block main %}\n{% if post.title %}\n{% endblock %}\n',
        encoding="utf-8",
    )
    error = builds.until(lambda o: isinstance(o, Exception))
    assert describe_error(error, config_mod.load(site)).startswith("templates/post.html:4:")

    (site / "templates/post.html").write_text(
        '{% extends "base.html" %}\n{% block main %}<p class="custom">{{ post.slug }}</p>'
        "{% endblock %}\n",
        encoding="utf-8",
    )
    builds.until(lambda o: isinstance(o, BuildResult) and bool(o.changed))
    page = (site / "public/posts/first-article/index.html").read_text(encoding="utf-8")
    assert '<p class="custom">first-article</p>' in page


def test_an_undefined_template_variable_names_the_template(
    site: Path, watching: Callable[..., tuple[SiteWatcher, Builds]]
) -> None:
    (site / "templates").mkdir()
    _, builds = watching()
    (site / "templates/page.html").write_text(
        '{% extends "base.html" %}\n{% block main %}\n{{ no_such_thing.x }}\n{% endblock %}\n',
        encoding="utf-8",
    )
    error = builds.until(lambda o: isinstance(o, Exception))
    line = describe(error, config_mod.load(site))
    assert line == "build failed: templates/page.html:3: 'no_such_thing' is undefined", line


def test_static_files_and_site_toml_are_watched(
    site: Path, watching: Callable[..., tuple[SiteWatcher, Builds]]
) -> None:
    _, builds = watching()
    (site / "static/extra.css").write_text("body { color: teal }\n", encoding="utf-8")
    result = builds.until(lambda o: isinstance(o, BuildResult) and bool(o.changed))
    assert isinstance(result, BuildResult) and result.changed == ["static/extra.css"]

    edit(site / "site.toml", 'title = "Test Tides"', 'title = "Renamed Tides"')
    builds.until(lambda o: isinstance(o, BuildResult) and "index.html" in o.changed)
    assert "Renamed Tides" in (site / "public/index.html").read_text(encoding="utf-8")

    edit(site / "site.toml", 'title = "Renamed Tides"', "title = 42")
    error = builds.until(lambda o: isinstance(o, Exception))
    assert "key 'title' must be a string" in describe_error(error)
    assert "Renamed Tides" in (site / "public/index.html").read_text(encoding="utf-8")


def test_hidden_files_and_editor_leftovers_do_not_build(
    site: Path, watching: Callable[..., tuple[SiteWatcher, Builds]]
) -> None:
    _, builds = watching()
    posts = site / "content/posts"
    (posts / ".2026-01-10-first-article.md.swp").write_bytes(b"vim")
    (posts / "2026-01-10-first-article.md~").write_text("backup", encoding="utf-8")
    (posts / "4913").write_text("", encoding="utf-8")
    (site / "public/stray.txt").write_text("output folder is not watched", encoding="utf-8")
    (site / ".indiebridge/note").write_text("state is not watched", encoding="utf-8")
    time.sleep(0.8)
    assert len(builds.items) == 1


def test_a_deleted_post_is_a_rebuild_that_removes_its_pages(
    site: Path, watching: Callable[..., tuple[SiteWatcher, Builds]]
) -> None:
    _, builds = watching()
    (site / "content/posts/2026-01-14-spoilers.md").unlink()
    result = builds.until(lambda o: isinstance(o, BuildResult) and bool(o.changed))
    assert isinstance(result, BuildResult)
    assert "posts/spoilers/index.html" in result.changed
    assert not (site / "public/posts/spoilers").exists()


def test_auto_publish_hook_runs_after_good_builds_that_changed_something(
    make_site: Callable[..., Path],
) -> None:
    for auto in (True, False):
        folder = make_site({"auto_publish": auto})
        published: list[BuildResult] = []
        builds = Builds()
        watcher = SiteWatcher(config_mod.load(folder), builds, on_publish=published.append)
        with watcher:
            builds.wait(1)
            edit(folder / POST, "second paragraph", "2nd paragraph")
            builds.until(lambda o: isinstance(o, BuildResult) and bool(o.changed))
            edit(folder / POST, "date: 2026", "date: nope")  # broken: no publish
            builds.until(lambda o: isinstance(o, Exception))
        good = [o for _, o in builds.items if isinstance(o, BuildResult) and o.changed]
        assert len(good) >= 2
        assert published == (good if auto else [])


def test_a_saves_warnings_are_printed_once_then_counted(
    site: Path, watching: Callable[..., tuple[SiteWatcher, Builds]]
) -> None:
    """A missing image in watch mode is said at the save that made it (``build`` prints
    its warnings; a watched rebuild printed none), and not repeated at every save after."""
    lines: list[str] = []
    builds = Builds()

    report = terminal_reporter(None, lines.append)  # one reporter for the session

    def on_build(outcome: BuildResult | Exception) -> None:
        report(outcome)
        builds(outcome)

    watcher = SiteWatcher(config_mod.load(site), on_build).start()
    try:
        builds.wait(1)
        post = site / POST
        post.write_text(post.read_text(encoding="utf-8") + "\n![a cat](cat-404.png)\n")
        builds.until(lambda o: isinstance(o, BuildResult) and bool(o.changed))
        warned = [line for line in lines if line.startswith("warning: ")]
        assert len(warned) == 1 and "cat-404.png" in warned[0] and POST in warned[0]
        lines.clear()
        post.write_text(post.read_text(encoding="utf-8") + "\nOne more line.\n")
        builds.until(lambda o: isinstance(o, BuildResult) and bool(o.changed))
        assert lines[0].startswith("rebuilt in ")
        assert lines[1:] == ["(1 earlier warning(s) still apply)"]
    finally:
        watcher.stop()


def test_warnings_the_terminal_already_shows_are_counted_not_printed(tmp_path: Path) -> None:
    """``serve``'s first build printed its warnings: the watcher's first rebuild counts them."""
    lines: list[str] = []
    report = terminal_reporter(None, lines.append, warned=["old: image 'a.png' not found"])
    result = fake_result(tmp_path, ["posts/a/index.html"])
    result.warnings = ["old: image 'a.png' not found", "new: image 'b.png' not found"]
    report(result)
    assert lines[1:] == [
        "warning: new: image 'b.png' not found",
        "(1 earlier warning(s) still apply)",
    ]


def test_request_build_debounces_like_a_save(
    site: Path, watching: Callable[..., tuple[SiteWatcher, Builds]]
) -> None:
    watcher, builds = watching()
    for _ in range(10):
        watcher.request_build()
    assert watcher.wait_idle(5)
    assert len(builds.items) == 2
    result = builds.last
    assert isinstance(result, BuildResult) and result.changed == []
    assert describe(result).endswith("nothing changed")


# ---- live reload over a real socket ----------------------------------------------------------


def read_event(lines: Iterator[str]) -> dict[str, str]:
    """The next SSE event (comments skipped) as {field: value}."""
    event: dict[str, str] = {}
    for line in lines:
        if line == "":
            if event:
                return event
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        event[name] = value.removeprefix(" ")
    raise AssertionError(f"stream ended; partial event {event}")


def fake_result(out: Path, changed: list[str]) -> BuildResult:
    return BuildResult(out, 1, 0, 1, len(changed), len(changed), 0.01, changed=changed)


def test_the_event_stream_sends_hello_reload_and_failed(tmp_path: Path) -> None:
    hub = ReloadHub()
    with ServerThread(site_app(hub, tmp_path / "out")) as server, httpx.Client(timeout=5) as client:
        script = client.get(server.url + SCRIPT_PATH)
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["cache-control"] == "no-store"
        assert EVENTS_PATH in script.text and json.dumps(hub.build_id) in script.text

        with client.stream("GET", server.url + EVENTS_PATH) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            hello = read_event(lines)
            assert hello["retry"] == "500" and hello["event"] == "hello"
            assert json.loads(hello["data"]) == {"build": hub.build_id, "error": None}
            deadline = time.monotonic() + 5
            while hub.clients != 1 and time.monotonic() < deadline:
                time.sleep(0.01)

            hub.on_build(fake_result(tmp_path, ["posts/a/index.html"]))
            event = read_event(lines)
            assert event["event"] == "reload"
            assert json.loads(event["data"]) == {
                "build": hub.build_id,
                "changed": ["posts/a/index.html"],
            }

            hub.on_build(ContentError("content/posts/a.md", 3, "bad"))
            event = read_event(lines)
            assert event["event"] == "failed"
            assert json.loads(event["data"])["message"] == "content/posts/a.md:3: bad"

            hub.on_build(fake_result(tmp_path, [f"x{n}" for n in range(600)]))
            assert json.loads(read_event(lines)["data"]) == {"build": hub.build_id, "all": True}

        # A page loaded while the build is broken learns it on connect.
        hub.on_build(ContentError("content/posts/a.md", 4, "still bad"))
        with client.stream("GET", server.url + EVENTS_PATH) as response:
            lines = response.iter_lines()
            hello = read_event(lines)
            assert json.loads(hello["data"])["error"] == "content/posts/a.md:4: still bad"
            hub.close()
            assert [line for line in lines if line] == []  # the stream ends
    assert hub.clients == 0


def test_streams_end_by_themselves_so_a_server_can_stop(tmp_path: Path) -> None:
    hub = ReloadHub(max_age=0.5, heartbeat=0.2)
    with ServerThread(site_app(hub, tmp_path / "out")) as server, httpx.Client(timeout=5) as client:
        started = time.monotonic()
        with client.stream("GET", server.url + EVENTS_PATH) as response:
            text = "".join(response.iter_text())
        assert time.monotonic() - started < 3
        assert text.startswith("retry: 500\nevent: hello\n")
        assert ": ping" in text
    assert hub.clients == 0


SIGNAL_SERVER = """
import contextlib, sys, uvicorn
from starlette.applications import Starlette
from bridge.daemon.livereload import ReloadHub, end_streams_on_exit, live_reload_routes
hub = ReloadHub(max_age=120)

@contextlib.asynccontextmanager
async def lifespan(app):
    end_streams_on_exit(hub)
    yield

app = Starlette(routes=live_reload_routes(hub), lifespan=lifespan)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child before exec: background jobs (``&``, ``nohup``) inherit SIGINT
    ignored from the shell; a server run from a terminal has it at its default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ctrl_c_ends_open_streams_so_the_server_stops_at_once(sig: signal.Signals) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGNAL_SERVER, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )
    try:
        url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
        deadline = time.monotonic() + 15
        with httpx.Client(timeout=5) as client:
            while True:
                try:
                    client.get(f"http://127.0.0.1:{port}{SCRIPT_PATH}")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.05)
            with client.stream("GET", url) as response:
                lines = response.iter_lines()
                assert read_event(lines)["event"] == "hello"
                sent = time.monotonic()
                proc.send_signal(sig)
                assert [line for line in lines if line and not line.startswith(":")] == []
        assert proc.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once stopped
        assert time.monotonic() - sent < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output = proc.stdout.read() if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
    assert "ERROR" not in output and "Traceback" not in output, output


# ---- the theme guide ------------------------------------------------------------------------


def test_the_theme_guide_names_every_template_and_variable(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/themes.md must keep up with what the Renderer passes to templates."""
    from bridge.site import pages

    seen: dict[str, set[str]] = {}
    prepared = pages.Renderer._prepared  # what every render, str or UTF-8, goes through

    def spy(self: pages.Renderer, name: str, context: dict[str, Any]) -> Any:
        template = prepared(self, name, context)
        seen.setdefault(name, set()).update(context)
        return template

    monkeypatch.setattr(pages.Renderer, "_prepared", spy)
    toml = site / "site.toml"  # two replies a page apart: an older comment page too
    toml.write_text(
        toml.read_text().replace("posts_per_page", "comments_per_page = 1\nposts_per_page")
    )
    config = config_mod.load(site)
    for n in (1, 2):
        CommentStore(config.content_dir).write("quick-note", reply_comment(n))
    site_mod.build(config)
    guide = (Path(__file__).resolve().parents[2] / "docs/themes.md").read_text(encoding="utf-8")
    assert set(seen) == set(pages.TEMPLATES) - {"base.html"}
    for name in sorted(p.name for p in (config_mod.DEFAULT_THEME / "templates").iterdir()):
        assert f"`{name}`" in guide, name
    for name, variables in seen.items():
        for variable in variables:
            assert f"`{variable}`" in guide, f"{name}: {variable}"
    renderer = pages.Renderer(config)
    for variable in renderer.env.globals["site"]:
        assert f"`site.{variable}`" in guide, variable
    for name in renderer.env.filters:
        if name in ("human_date", "iso", "tag_slug"):
            assert f"| {name} }}}}" in guide.replace("\\|", "|"), name
    for name in ("style.css", "copy.js"):
        assert (config_mod.DEFAULT_THEME / "static" / name).is_file()
        assert f"`{name}`" in guide
