"""Faults: processes killed mid-write, full disks, failing peers, a locked database.

kill -9 of the daemon during delivery is ``tests/e2e/test_daemon_crash.py``; the queue's
own retry rules are ``tests/federation/test_delivery.py`` (mock transport, fake clock).  Here:
comment files and the built site under kill -9 and ENOSPC, delivery over real loopback
sockets to peers that fail in every way, a 410 removing the follower end to end, and the
SQLite file held by another process while the inbox receives.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import config as config_mod
from bridge.db import Database
from bridge.errors import BuildError
from bridge.federation import followers
from bridge.federation.delivery import DeliveryWorker, enqueue
from bridge.site import build as site_mod
from bridge.site import output_switch
from tests.security.conftest import ALICE, InboxHarness
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 - the `web` fixture

pytestmark = [pytest.mark.category("fault")]

REPO = Path(__file__).resolve().parents[2]


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def manifests(config: config_mod.SiteConfig) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in config.state_dir.glob("manifest-*.json")}


def edit_everything(site: Path, marker: str) -> None:
    """A change that re-renders every page: the site title."""
    toml = site / "site.toml"
    text = toml.read_text(encoding="utf-8")
    lines = [f'title = "{marker}"' if ln.startswith("title =") else ln for ln in text.splitlines()]
    toml.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---- the site under a full disk --------------------------------------------------------------


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], list[int]]:
    """``arm(n)``: the n-th file write from now on (and every later one) raises ENOSPC."""

    def arm(after: int) -> list[int]:
        calls = [0]
        real = Path.write_bytes

        def write_bytes(self: Path, data: Any) -> int:
            calls[0] += 1
            if calls[0] >= after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
            return real(self, data)

        monkeypatch.setattr(Path, "write_bytes", write_bytes)
        return calls

    return arm


@pytest.mark.parametrize("manifest", [True, False], ids=["incremental", "fresh-tree"])
@pytest.mark.parametrize("after", [1, 4, 9])
def test_disk_full_mid_build_keeps_the_old_site_and_manifest(
    site: Path, full_disk: Callable[[int], list[int]], manifest: bool, after: int
) -> None:
    config = config_mod.load(site)
    out = site_mod.build(config).out_dir
    if not manifest:
        for path in config.state_dir.glob("manifest-*.json"):
            path.unlink()
    before, before_manifests = tree(out), manifests(config)
    edit_everything(site, "Renamed")
    calls = full_disk(after)
    with pytest.raises(BuildError, match="could not write the site"):
        site_mod.build(config_mod.load(site))
    assert calls[0] >= after  # the disk really filled up mid-build
    assert tree(out) == before
    assert manifests(config) == before_manifests
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".public")) == []


def test_crash_while_renaming_leaves_the_old_or_the_new_tree(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The switch is journaled: a build killed between two renames is completed by the
    recovery every build and the daemon's start run first, so once restarted the site is
    the whole new tree, never old and new pages side by side."""
    config = config_mod.load(site)
    out = site_mod.build(config).out_dir
    old = tree(out)
    edit_everything(site, "Renamed")
    real = os.replace
    renames = [0]

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).is_relative_to(out) or Path(dst) == out:
            renames[0] += 1
            if renames[0] == 3:
                raise KeyboardInterrupt  # stands for kill -9: no cleanup runs
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        site_mod.build(config_mod.load(site))
    monkeypatch.undo()
    assert site_mod.recover_output(config_mod.load(site))  # what a restart does first
    after = tree(out)
    assert renames[0] == 3
    assert after == old or "Renamed" in after["index.html"].decode()
    visible = {k: v for k, v in after.items() if not Path(k).name.startswith(".")}
    titles = {
        ("Renamed" in v.decode("utf-8", "replace"))
        for k, v in visible.items()
        if k.endswith(".html")
    }
    assert len(titles) == 1, "old and new pages are served side by side"


def test_failed_swap_of_a_fresh_tree_keeps_the_old_output_in_place(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh tree is swapped in atomically; on systems without an atomic exchange, a
    failing second rename puts the old tree back (and recovery does after a kill)."""
    config = config_mod.load(site)
    out = site_mod.build(config).out_dir
    old = tree(out)
    for path in config.state_dir.glob("manifest-*.json"):
        path.unlink()  # no manifest: the next build writes a fresh tree and swaps it in
    edit_everything(site, "Renamed")
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst) == out and Path(src).name.startswith(".public.new"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    # Where renameat2(RENAME_EXCHANGE) swaps the trees atomically this cannot happen; the
    # fallback of two renames must put the old tree back when the second one fails.
    monkeypatch.setattr(output_switch, "exchange", lambda a, b: False)
    with pytest.raises(BuildError):
        site_mod.build(config_mod.load(site))
    monkeypatch.undo()
    assert out.is_dir(), "the site has no output folder at all"
    assert tree(out) == old


def test_temporary_files_of_a_killed_build_do_not_stay_in_the_output(site: Path) -> None:
    """A build stages its files beside the output, never inside it; the staging folder a
    killed build leaves behind is removed by the next build."""
    config = config_mod.load(site)
    out = site_mod.build(config).out_dir
    stale = out.with_name(f".{out.name}.stage-999999")  # a dead pid
    stale.mkdir()
    (stale / "0").write_bytes(b"<p>half a page from a killed build</p>")
    edit_everything(site, "Renamed")
    site_mod.build(config_mod.load(site))
    assert not stale.exists()
    assert [p for p in out.rglob(".*") if p.name != ".well-known"] == []


# ---- kill -9 -----------------------------------------------------------------------------


WRITER = textwrap.dedent(
    """
    import dataclasses, datetime as dt, sys
    from pathlib import Path
    from bridge.site.comments import CommentStore
    from bridge.site.posts import Comment, CommentAuthor
    store = CommentStore(Path(sys.argv[1]))
    base = Comment(id="ab" * 10, type="reply", protocol="webmention",
        source="https://eve.example/r", target="https://blog.example/posts/first-article/",
        author=CommentAuthor("Eve", "https://eve.example/", "", ""), content="",
        published=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), updated=None, status="approved",
        in_reply_to="", object_id="")
    versions = [f"<p>{ch * 400_000}</p>" for ch in "AB"]
    print("ready", flush=True)
    i = 0
    while True:
        store.write("first-article", dataclasses.replace(base, content=versions[i % 2]))
        i += 1
    """
)


@pytest.mark.slow
def test_kill_9_during_comment_writes_never_leaves_half_a_comment(site: Path) -> None:
    config = config_mod.load(site)
    site_mod.build(config)
    path = config.content_dir / "comments" / "first-article" / ("ab" * 10 + ".json")
    rng = random.Random(1)
    for _ in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(config.content_dir)],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.01, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        proc.stdout.close()
        if path.exists():
            content = json.loads(path.read_text(encoding="utf-8"))["content"]
            assert content in ("<p>" + "A" * 400_000 + "</p>", "<p>" + "B" * 400_000 + "</p>")
    assert path.exists()
    site_mod.build(config_mod.load(site))  # leftover temporary files do not break the build
    page = (config.output_dir / "posts" / "first-article" / "index.html").read_text("utf-8")
    assert "A" * 400_000 in page or "B" * 400_000 in page


def _many_posts(site: Path, n: int) -> None:
    posts = site / "content" / "posts"
    for i in range(n):
        (posts / f"2025-01-{i % 28 + 1:02d}-filler-{i}.md").write_text(
            f"---\ntitle: Filler {i}\ndate: 2025-01-{i % 28 + 1:02d}T10:00:00Z\n"
            f"tags: [t{i % 7}]\n---\n" + "Some text. " * 200 + "\n",
            encoding="utf-8",
        )


@pytest.mark.slow
def test_kill_9_during_rebuilds_never_leaves_a_torn_file(
    make_site: Callable[..., Path],
) -> None:
    """``indiebridge build`` killed at random moments while the whole site changes between
    two versions: every page served is a complete page of one version, and the next
    complete build leaves exactly that version.  (Whether the *tree* can mix versions is
    the deterministic test above.)"""
    variants = {}
    for marker in ("Version A", "Version B"):
        folder = make_site()
        _many_posts(folder, 120)
        edit_everything(folder, marker)
        variants[marker] = tree(site_mod.build(config_mod.load(folder)).out_dir)
    site = make_site()
    _many_posts(site, 120)
    edit_everything(site, "Version A")
    out = site_mod.build(config_mod.load(site)).out_dir
    rng = random.Random(7)
    mixed = 0
    for i in range(14):
        marker = ("Version A", "Version B")[i % 2]
        edit_everything(site, marker)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "build", "--site", str(site)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.4, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert out.is_dir()
        visible = {k: v for k, v in tree(out).items() if not Path(k).name.startswith(".")}
        assert set(visible) == set(variants["Version A"])
        for rel, data in visible.items():
            assert data in (variants["Version A"][rel], variants["Version B"][rel]), rel
        mixed += visible not in (variants["Version A"], variants["Version B"])
    site_mod.build(config_mod.load(site))
    final = {k: v for k, v in tree(out).items() if not Path(k).name.startswith(".")}
    assert final == variants[marker]
    leftovers = [k for k in tree(out) if Path(k).name.startswith(".")]
    print(
        f"{mixed} of 14 kills left a tree of two versions until the next build; "
        f"{len(leftovers)} temporary files left inside the output"
    )


# ---- delivery over real sockets ------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "state.sqlite3")
    yield database
    database.close()


@pytest.mark.anyio
async def test_failing_peers_are_retried_on_schedule_then_given_up_and_recorded(
    db: Database, web: WebServer, key_files: Path
) -> None:
    from bridge import keys

    rsa_key = keys.load(key_files.parent).rsa
    counts: dict[str, int] = {}

    def answer(status: int, headers: dict[str, str] | None = None) -> Any:
        def handler(ex: Exchange) -> None:
            counts[ex.request.path] = counts.get(ex.request.path, 0) + 1
            ex.send(status, headers or {}, b"no")

        return handler

    def flaky(ex: Exchange) -> None:
        n = counts[ex.request.path] = counts.get(ex.request.path, 0) + 1
        ex.send(500 if n < 3 else 202)

    def hang(ex: Exchange) -> None:
        counts[ex.request.path] = counts.get(ex.request.path, 0) + 1
        ex.sleep(5)

    def reset(ex: Exchange) -> None:
        counts[ex.request.path] = counts.get(ex.request.path, 0) + 1
        ex.reset()

    web.route("/500", handler=answer(500))
    web.route("/429", handler=answer(429, {"Retry-After": "1"}))
    web.route("/flaky", handler=flaky)
    web.route("/hang", handler=hang)
    web.route("/reset", handler=reset)
    web.route("/400", handler=answer(400))
    schedule = (0.05, 0.05)
    worker = DeliveryWorker(
        db,
        private_key=rsa_key,
        key_id="https://blog.example/ap/actor.json#main-key",
        allow_private=True,
        schedule=schedule,
        timeout=0.3,
    )
    paths = ["/500", "/429", "/flaky", "/hang", "/reset", "/400"]
    activity = {"id": "https://blog.example/ap/posts/x/create.json", "type": "Create"}
    enqueue(db, activity, [web.url(p) for p in paths])
    deadline = time.monotonic() + 20
    first_429: float | None = None
    while time.monotonic() < deadline:
        await worker.run_until_idle()
        rows = {r["inbox"].rsplit("/", 1)[1]: r for r in db.query("SELECT * FROM deliveries")}
        if first_429 is None and rows["429"]["tries"] == 1:
            first_429 = rows["429"]["next_try"] - rows["429"]["updated"]
        if all(r["state"] in ("done", "failed", "gone") for r in rows.values()):
            break
        await asyncio.sleep(0.05)
    states = {k: (r["state"], r["tries"], r["last_status"]) for k, r in rows.items()}
    attempts = len(schedule) + 1
    assert states == {
        "500": ("failed", attempts, 500),
        "429": ("failed", attempts, 429),
        "flaky": ("done", 3, 202),
        "hang": ("failed", attempts, None),
        "reset": ("failed", attempts, None),
        "400": ("failed", 1, 400),
    }
    for name in ("500", "429", "hang", "reset"):
        assert rows[name]["last_error"].startswith(f"gave up after {attempts} attempts"), name
    assert first_429 is not None and 0.9 <= first_429 <= 1.1  # Retry-After, not the schedule
    assert {p: counts[p] for p in paths} == {
        "/500": attempts, "/429": attempts, "/flaky": 3, "/hang": attempts,
        "/reset": attempts, "/400": 1,
    }  # fmt: skip
    assert all("signature" in r.headers for r in web.requests)


@pytest.mark.anyio
async def test_a_410_from_a_followers_inbox_removes_the_follower(
    make_site: Callable[..., Path], web: WebServer
) -> None:
    from bridge.daemon import app as daemon_mod

    config = config_mod.load(make_site({"allow_private_addresses": True}))
    site_mod.build(config)
    d = daemon_mod.Daemon(config, poll_interval=0.1)
    gone, staying = web.url("/users/gone/inbox"), web.url("/users/ok/inbox")
    web.route("/users/gone/inbox", status=410, body="gone")
    web.route("/users/ok/inbox", status=202)
    for name, inbox_url in (("gone", gone), ("ok", staying)):
        followers.upsert(
            d.db,
            actor=web.url(f"/users/{name}"),
            inbox=inbox_url,
            shared_inbox=None,
            follow_id=web.url(f"/users/{name}#f"),
            handle=f"@{name}@peer",
            state="accepted",
        )
    await d.start()
    try:
        d.ctx.enqueue({"id": config.actor_id + "#u1", "type": "Update"}, [gone, staying])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and followers.get(d.db, web.url("/users/gone")):
            await asyncio.sleep(0.05)
        assert followers.get(d.db, web.url("/users/gone")) is None
        assert followers.get(d.db, web.url("/users/ok")) is not None
        states = dict(d.db.query("SELECT inbox, state FROM deliveries"))
        assert states[gone] == "gone"
    finally:
        await d.shutdown()


# ---- the database held by another process -----------------------------------------------------


HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO blocks(pattern, created) VALUES ('spam.example', 0)")
    print("locked", flush=True)
    time.sleep(2)
    con.execute("COMMIT")
    con.close()
    """
)


@pytest.mark.slow
@pytest.mark.anyio
async def test_inbox_waits_for_a_concurrent_writer_and_both_succeed(inbox: InboxHarness) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(inbox.config.db_path)], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"locked\n"
        started = time.monotonic()
        follow = {"id": ALICE + "/f/1", "type": "Follow", "actor": ALICE, "object": inbox.actor_id}
        r = await inbox.post(follow)
        waited = time.monotonic() - started
        assert r.status_code == 202, r.text
        assert waited > 1.0  # it really waited for the lock
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
    await inbox.process()
    con = sqlite3.connect(inbox.config.db_path)
    try:
        assert con.execute("SELECT pattern FROM blocks").fetchall() == [("spam.example",)]
        assert [r[0] for r in con.execute("SELECT actor FROM followers")] == [ALICE]
    finally:
        con.close()


def test_fresh_tree_swap_is_one_atomic_exchange(site: Path) -> None:
    """On Linux the fresh tree and the old output trade places in one renameat2 call: at
    no moment is there no output folder."""
    config = config_mod.load(site)
    out = site_mod.build(config).out_dir
    for path in config.state_dir.glob("manifest-*.json"):
        path.unlink()
    edit_everything(site, "Renamed")
    inode_before = out.stat().st_ino
    site_mod.build(config_mod.load(site))
    assert out.stat().st_ino != inode_before  # a new tree took the name
    assert "Renamed" in (out / "index.html").read_text()
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".public")) == []


def test_a_killed_fresh_swap_is_undone_by_recovery(site: Path) -> None:
    """Without an atomic exchange the old tree is moved aside first; if the build dies
    there, recovery (the next build or daemon start) puts it back."""
    config = config_mod.load(site)
    out = site_mod.build(config).out_dir
    old = tree(out)
    aside = out.with_name(f".{out.name}.old-999999")
    os.rename(out, aside)  # the state a kill between the two renames leaves
    assert site_mod.recover_output(config)
    assert tree(out) == old


def test_concurrent_builds_of_one_output_take_turns(site: Path) -> None:
    """The daemon's rebuild and a `publish` from the command line may build at the same
    moment: they take turns on a lock, and both succeed with a complete output."""
    import threading

    config = config_mod.load(site)
    site_mod.build(config)
    edit_everything(site, "Renamed")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            site_mod.build(config_mod.load(site))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    out = config.output_dir
    assert "Renamed" in (out / "index.html").read_text()
    assert not site_mod.recover_output(config)  # nothing was left half done
