"""Hostile-traffic soak: legitimate events must still show up while strangers attack.

``python -m benchmarks.soak [--short] [--calm]`` (loopback only; ``--short`` takes about a
minute; ``--calm`` sends the same legitimate events with no attack, as a baseline).

The real daemon (``benchmarks.daemon_server``, as ``indiebridge serve --no-build
--production`` runs it: HTTP workers and a background process, ``allow_private_addresses``
on) serves a built site.  A peer
process (``benchmarks.soak_peers``) listens on loopback addresses, one role each:

* ``127.0.0.2`` and sixteen more origins (``127.0.1.1``-``16``) serve ~900 KB actor
  documents.  Inbox POSTs carry signatures made with one key but ``keyId``\\ s naming those
  documents, whose key is another: every one is bogus, and each names a document the daemon
  has not seen (storage before verification; half on one origin to meet its per-origin
  key-fetch limit, half spread so that the limit alone cannot bound the storage).
* ``127.0.0.3`` is a slow origin: its actor (pre-seeded in the cache, as a first fetch
  leaves it) sends validly signed Creates whose object is a URL on that origin, and the
  object fetches never answer (head-of-line blocking).
* ``127.0.0.4`` serves HTML bombs: webmention sources of ``<div></x>`` x 30,000 that link
  to the target (the stray-end-tag bypass of a pre-scan).
* ``127.0.0.5`` is a well-behaved IndieWeb site: an h-entry per legitimate webmention.

A signed, pre-seeded remote actor also sends reply cycles: Note{url: S, inReplyTo: POST},
then three Notes{url: S, inReplyTo: S}, in several groups, on the post that half the
legitimate replies go to, so every rebuild of that page renders the cycles.

The hostile requests go out evenly over a window (40 s in short mode) from 8 threads.
Meanwhile well-behaved remote actors (pre-seeded, as in ``benchmarks.inbox``) send Follows,
Likes and replies, and the good site sends webmentions: one event at a time, at a steady
pace over the window.  For each the soak measures how long it takes to show up: the
follower row, the comment file, and, for replies and webmentions, the rebuilt post page
containing the text.  Targets: each legitimate event shown within 5 s, and the state folder
(``.indiebridge/``) growing less than 5 MiB over the run.  The run is bounded (a fixed
number of requests, a time cap) and prints "met" / "not met" per target; it exits 0 either
way.  Only a crash or a hang fails it: the exit status is 1 when the daemon has exited or
no longer answers HTTP at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import socket
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from benchmarks import common, daemon_server
from benchmarks import inbox as inbox_bench
from benchmarks.soak_peers import AP, BIG, BIG_ACTOR_BYTES, BIG_SPREAD, BOMB, GOOD, SLOW

SETTINGS = {
    "full": {
        "legit": 120,
        "window": 240.0,
        "bogus": 1000,
        "slow": 50,
        "cycles": 20,
        "bombs": 40,
        "cap": 420.0,
    },
    "short": {
        "legit": 24,
        "window": 40.0,
        "bogus": 200,
        "slow": 10,
        "cycles": 5,
        "bombs": 10,
        "cap": 100.0,
    },
}  # window: the seconds over which hostile requests and legitimate events are spread
POSTS = 4
SHOW_TARGET_S = 5.0
GROWTH_TARGET = 5 * 1024 * 1024
EVENT_WAIT_S = 20.0  # a legitimate event not shown by then counts as not shown
HOSTILE_TIMEOUT_S = 30.0
CYCLER = 990  # the pre-seeded actor index that sends the reply cycles


# -- the soak ----------------------------------------------------------------------------


def make_site() -> Path:
    from benchmarks import corpus

    site = common.WORK / "soak-site"
    corpus.write_indiebridge(site, list(corpus.posts(POSTS)))
    text = (site / "site.toml").read_text(encoding="utf-8")
    lines = text.splitlines()
    first_table = next((i for i, ln in enumerate(lines) if ln.startswith("[")), len(lines))
    lines.insert(first_table, "allow_private_addresses = true")
    (site / "site.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return site


def seed_slow_actor(site: Path, port: int, public_pem: str) -> str:
    from bridge import config
    from bridge.db import Database

    actor = f"http://{SLOW}:{port}/users/slow"
    doc = {
        "@context": ["https://www.w3.org/ns/activitystreams"],
        "id": actor,
        "type": "Person",
        "preferredUsername": "slow",
        "inbox": actor + "/inbox",
        "publicKey": {"id": actor + "#main-key", "owner": actor, "publicKeyPem": public_pem},
    }
    db = Database(config.load(site).db_path)
    with db.tx() as con:
        con.execute(
            "INSERT OR REPLACE INTO actors(id, doc, fetched) VALUES (?, ?, ?)",
            (actor, json.dumps(doc), time.time()),
        )
        con.execute(
            "INSERT OR REPLACE INTO keys(key_id, owner, pem, fetched) VALUES (?, ?, ?, ?)",
            (actor + "#main-key", actor, public_pem, time.time()),
        )
    db.close()
    return actor


def state_bytes(folder: Path, db_path: Path) -> int:
    """The state folder's size with the database's write-ahead log folded in (a WAL left
    by the setup would otherwise count as growth once the daemon checkpoints it)."""
    con = sqlite3.connect(db_path, timeout=30)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class Sender:
    """Signs and sends inbox POSTs and webmentions to the daemon on loopback."""

    def __init__(self, site: Path, port: int, pems: list[tuple[bytes, str]]) -> None:
        from cryptography.hazmat.primitives import serialization

        from bridge import config

        self.cfg = config.load(site)
        self.port = port
        self.keys = [serialization.load_pem_private_key(p, password=None) for p, _ in pems]

    def inbox(self, doc: dict[str, Any], key_id: str, key_index: int) -> str:
        import httpx

        from bridge.federation.signatures import sign_request

        body = json.dumps(doc).encode()
        request = httpx.Request(
            "POST", f"{self.cfg.federation_url}/inbox", content=body, headers={"Content-Type": AP}
        )
        now = dt.datetime.now(dt.UTC)
        sign_request(request, self.keys[key_index], key_id, "cavage", now)  # type: ignore[arg-type]
        head = b"POST /inbox HTTP/1.1\r\n"
        for name, value in request.headers.raw:
            head += name + b": " + value + b"\r\n"
        return self._raw(head + b"Connection: close\r\n\r\n" + body)

    def webmention(self, source: str, target: str) -> str:
        body = f"source={quote(source, safe='')}&target={quote(target, safe='')}".encode()
        host = urlsplit(self.cfg.base_url).netloc
        head = (
            f"POST /webmention HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        return self._raw(head + body)

    def _raw(self, data: bytes) -> str:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=HOSTILE_TIMEOUT_S) as s:
                s.sendall(data)
                answer = s.recv(64)
        except OSError as exc:
            return type(exc).__name__
        return answer.split(b" ", 2)[1].decode() if answer.count(b" ") >= 2 else "no answer"


def hostile_jobs(
    sender: Sender, port: int, settings: dict[str, Any], post_url: str, slow_actor: str
) -> list[Any]:
    """Callables, each sending one hostile request; interleaved so every class runs at once."""
    our = sender.cfg.actor_id
    cycler = inbox_bench._actor_id(CYCLER)
    jobs: dict[str, list[Any]] = {"bogus": [], "slow": [], "cycle": [], "bomb": []}
    for n in range(int(settings["bogus"])):
        # Half name one origin (its rate limit), half are spread over 16 origins.
        host = BIG if n % 2 else BIG_SPREAD[n // 2 % len(BIG_SPREAD)]
        actor = f"http://{host}:{port}/big/{n}"
        doc = inbox_bench.activity("Like", 50_000 + n, actor, our, post_url)
        jobs["bogus"].append(lambda d=doc, k=actor + "#main-key": ("bogus", sender.inbox(d, k, 0)))
    for n in range(int(settings["slow"])):
        doc = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{slow_actor}/activities/{n}",
            "type": "Create",
            "actor": slow_actor,
            "object": f"http://{SLOW}:{port}/objects/{n}",
        }
        jobs["slow"].append(lambda d=doc: ("slow", sender.inbox(d, slow_actor + "#main-key", 2)))
    key = CYCLER % inbox_bench.KEYS
    for g in range(int(settings["cycles"])):
        s = f"https://r{CYCLER}.example/@a{CYCLER}/cycle-{g}"
        for k in range(4):
            note = inbox_bench.activity("Create", 60_000 + g * 4 + k, cycler, our, post_url)
            note["object"].update({"url": s, "inReplyTo": post_url if k == 0 else s})
            jobs["cycle"].append(
                lambda d=note: ("cycle", sender.inbox(d, cycler + "#main-key", key))
            )
    for n in range(int(settings["bombs"])):
        source = f"http://{BOMB}:{port}/bomb/{n}?t={quote(post_url, safe='')}"
        jobs["bomb"].append(lambda s=source: ("bomb", sender.webmention(s, post_url)))
    mixed: list[Any] = []
    while any(jobs.values()):
        for kind in jobs:
            for _ in range(max(1, len(jobs[kind]) // 20)):
                if jobs[kind]:
                    mixed.append(jobs[kind].pop(0))
    return mixed


def _wait(check: Any, started: float) -> float | None:
    while time.perf_counter() - started < EVENT_WAIT_S:
        try:
            if check():
                return time.perf_counter() - started
        except (OSError, sqlite3.Error):
            pass
        time.sleep(0.05)
    return None


def legit_event(sender: Sender, n: int, posts: list[Any], port: int) -> dict[str, Any]:
    """Send legitimate event ``n`` and measure when it shows; its kind rotates."""
    from bridge.site.comments import CommentStore, comment_id

    cfg = sender.cfg
    kind = ("Follow", "Like", "Create", "Webmention")[n % 4]
    post = posts[n % 2]  # posts[0] also carries the reply cycles
    post_url = cfg.post_url(post.slug)
    folder = cfg.output_dir / "posts" / post.slug
    store = CommentStore(cfg.content_dir)
    marker = f"soak-marker-{n}-{time.time_ns()}"
    i = 1 + n  # actors r1, r2 ... (distinct per event)
    actor = inbox_bench._actor_id(i)
    started = time.perf_counter()
    if kind == "Webmention":
        source = f"http://{GOOD}:{port}/entries/{marker}?t={quote(post_url, safe='')}"
        status = sender.webmention(source, post_url)
        cid = comment_id("webmention", source + " " + post_url)
    else:
        doc = inbox_bench.activity(kind, 70_000 + n, actor, cfg.actor_id, post_url, marker)
        status = sender.inbox(doc, actor + "#main-key", i % inbox_bench.KEYS)
        if kind == "Like":
            cid = comment_id("activitypub", f"like {actor} {post_url}")
        elif kind == "Create":
            cid = comment_id("activitypub", doc["object"]["id"])
    result: dict[str, Any] = {"kind": kind, "status": status}
    if kind == "Follow":
        db = cfg.db_path

        def followed() -> bool:
            con = sqlite3.connect(db, timeout=5)
            try:
                return bool(
                    con.execute("SELECT 1 FROM followers WHERE actor = ?", (actor,)).fetchall()
                )
            finally:
                con.close()

        result["shown"] = _wait(followed, started)
        return result
    # The file itself, not ``store.get``: this process's comment index would see another
    # process's new file only at its next refresh (up to a second later).
    comment_file = store.path(post.slug, cid)
    result["shown"] = _wait(comment_file.exists, started)
    if kind != "Like":
        result["page"] = _wait(lambda: bool(inbox_bench.shown_on(folder, marker)), started)
    return result


def _feed(pool: ThreadPoolExecutor, jobs: list[Any], futures: list[Any], window: float) -> None:
    """Submit the hostile requests evenly over ``window`` seconds."""
    started = time.perf_counter()
    for k, job in enumerate(jobs):
        time.sleep(max(0.0, started + k * window / len(jobs) - time.perf_counter()))
        futures.append(pool.submit(job))


def peer_stats(port: int) -> dict[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/stats")
        return dict(json.loads(conn.getresponse().read()))
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--short", action="store_true", help="CI size: about a minute")
    parser.add_argument(
        "--calm", action="store_true", help="the same legitimate events with no attack (baseline)"
    )
    args = parser.parse_args()
    common.WORK.mkdir(parents=True, exist_ok=True)
    pems = inbox_bench._key_pems(inbox_bench.KEYS)
    s = dict(SETTINGS["short" if args.short else "full"])
    if args.calm:
        s.update(bogus=0, slow=0, cycles=0, bombs=0)
    run_soak(s, args.short, pems)


def run_soak(s: dict[str, Any], short: bool, pems: list[tuple[bytes, str]]) -> None:
    from bridge import config
    from bridge.site import build as site_mod
    from bridge.site import content

    t_start = time.perf_counter()
    peer_port, port = common.free_port(), common.free_port()
    site = make_site()
    inbox_bench.seed_actors(site, peer_port, pems)
    slow_actor = seed_slow_actor(site, peer_port, pems[2][1])
    cfg = config.load(site)
    site_mod.build(cfg)
    posts, _ = content.load(cfg)
    state = cfg.state_dir
    size_before = state_bytes(state, cfg.db_path)
    sender = Sender(site, port, pems)
    post0 = cfg.post_url(posts[0].slug)
    jobs = hostile_jobs(sender, peer_port, s, post0, slow_actor)
    peers = [sys.executable, "-m", "benchmarks.soak_peers", str(peer_port), pems[1][1]]
    daemon = daemon_server.command(site, port)
    events: list[dict[str, Any]] = []
    hostile: dict[str, dict[str, int]] = {}
    cap = float(s["cap"])
    with common.server(peers, peer_port), common.server(daemon, port) as daemon_proc:
        pool = ThreadPoolExecutor(8)
        futures: list[Any] = []
        window = float(s["window"])
        feeder = threading.Thread(target=_feed, args=(pool, jobs, futures, window), daemon=True)
        attack_started = time.perf_counter()
        feeder.start()
        time.sleep(1.0)  # the attack is under way before the first legitimate event
        every = window / int(s["legit"])
        for n in range(int(s["legit"])):
            due = attack_started + 1.0 + n * every
            time.sleep(max(0.0, due - time.perf_counter()))
            if time.perf_counter() - t_start > cap:
                break
            events.append(legit_event(sender, n, posts, peer_port))
        feeder.join(max(1.0, cap - (time.perf_counter() - t_start)))
        for f in futures:
            left = max(1.0, cap - (time.perf_counter() - t_start))
            try:
                kind, status = f.result(timeout=left)
            except TimeoutError:
                kind, status = "unfinished", "timeout"
            hostile.setdefault(kind, {})[status] = hostile.setdefault(kind, {}).get(status, 0) + 1
        pool.shutdown(wait=False, cancel_futures=True)
        gets = peer_stats(peer_port)
        alive = sender.webmention("x", "y") if daemon_proc.poll() is None else "none, exited"
    growth = state_bytes(state, cfg.db_path) - size_before
    report(s, short, events, hostile, gets, alive, growth, t_start)
    after_effects(cfg, posts[0].slug, int(s["cycles"]))
    if not alive.isdigit():
        sys.exit(1)  # the daemon crashed or hangs: the one failure of this benchmark


def report(
    s: dict[str, Any],
    short: bool,
    events: list[dict[str, Any]],
    hostile: dict[str, dict[str, int]],
    gets: dict[str, int],
    alive: str,
    growth: int,
    t_start: float,
) -> None:
    print(common.machine_line())
    print(
        f"hostile soak ({'short' if short else 'full'}): {s['bogus']} bogus signatures "
        f"(keyIds -> {BIG_ACTOR_BYTES // 1000} KB actors on {1 + len(BIG_SPREAD)} origins), "
        f"{s['slow']} Creates from a slow origin, {s['cycles']} reply cycles (1+3 Notes), "
        f"{s['bombs']} HTML-bomb webmentions"
    )
    for kind, statuses in sorted(hostile.items()):
        print(f"  hostile {kind}: HTTP statuses {statuses}")
    roles = {BIG: "big-actor origin", SLOW: "slow origin", BOMB: "bomb origin", GOOD: "good site"}
    spread = sum(gets.get(h, 0) for h in BIG_SPREAD)
    print(
        "  outbound GETs: "
        + ", ".join(f"{roles[h]} {gets.get(h, 0)}" for h in roles)
        + f", {len(BIG_SPREAD)} other big-actor origins {spread}"
    )
    worst = 0.0
    missing = 0
    for kind in ("Follow", "Like", "Create", "Webmention"):
        mine = [e for e in events if e["kind"] == kind]
        if not mine:
            continue
        for key, what in (("shown", "recorded"), ("page", "page rebuilt")):
            times = [e.get(key) for e in mine if key in e]
            if not times:
                continue
            got = sorted(t for t in times if t is not None)
            missing += len(times) - len(got)
            worst = max([worst, *got])
            shown = (
                f"median {got[len(got) // 2]:.2f} s, max {got[-1]:.2f} s" if got else "none shown"
            )
            print(
                f"  legit {kind:10} {what:12}: {len(got)}/{len(times)} within "
                f"{EVENT_WAIT_S:g} s, {shown}; statuses {sorted({e['status'] for e in mine})}"
            )
    met = "met" if events and not missing and worst <= SHOW_TARGET_S else "not met"
    print(f"  target: each legitimate event shown within {SHOW_TARGET_S:g} s: {met}")
    met = "met" if growth < GROWTH_TARGET else "not met"
    print(
        f"  state folder (.indiebridge/) grew {growth / 1024 / 1024:.2f} MiB; "
        f"target < {GROWTH_TARGET // 1024 // 1024} MiB: {met}"
    )
    print(f"  daemon still answering afterwards: HTTP {alive} to a malformed webmention")
    print(f"  soak took {time.perf_counter() - t_start:.1f} s")


def after_effects(cfg: Any, slug: str, cycles: int) -> None:
    """What the attack left: queue rows, webmention outcomes, how the cycles render."""
    con = sqlite3.connect(cfg.db_path, timeout=30)
    try:
        inbox = dict(con.execute("SELECT status, count(*) FROM inbox GROUP BY 1").fetchall())
        actors = con.execute("SELECT count(*) FROM actors").fetchone()[0]
        mentions = con.execute(
            "SELECT status, substr(error, 1, 40), count(*) FROM webmentions_in GROUP BY 1, 2"
        ).fetchall()
    finally:
        con.close()
    print(
        f"  inbox rows by status {inbox}; actors cached {actors} ({inbox_bench.ACTORS + 1} seeded)"
    )
    print("  webmentions: " + "; ".join(f"{s} {e or '-'} x{n}" for s, e, n in mentions))
    folder = cfg.output_dir / "posts" / slug  # the post's page and its older comment pages
    page = "".join(p.read_text(encoding="utf-8") for p in inbox_bench.post_pages(folder))
    shown = [page.count(f"Reply {60_000 + k} ") for k in range(cycles * 4)]
    print(
        f"  reply cycles: {sum(1 for c in shown if c)}/{len(shown)} cycle Notes on its pages, "
        f"each at most {max(shown, default=0)} time(s); pages {len(page) / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
