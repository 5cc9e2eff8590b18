"""Inbox: signed Follow / Like / reply Create from many remote actors against the real daemon.

Setup (not timed): an indiebridge site with ``allow_private_addresses = true``, built once;
``ACTORS`` remote actors on ``ACTORS`` distinct hosts (the inbox limits each host to 600
activities a minute) whose documents and keys are pre-seeded in the daemon's ``actors`` and
``keys`` cache tables, as a first fetch would leave them; their inboxes point at a loopback
sink, so the Accepts the daemon sends back are delivered too.  ``KEYS`` RSA-2048 key pairs
are shared round-robin between the actors (generating one per actor would take minutes).

Every request is a distinct activity, signed (draft-cavage, rsa-sha256, Digest, Date) with
its actor's key before the clock starts, so the generator measures the server, not its own
signing.  The daemon runs as ``indiebridge serve --no-build --production`` runs it
(``benchmarks.daemon_server``): HTTP workers (one per core, at most 4) sharing the socket,
which parse, verify and commit rows in batches, and one background process that
processes them (comments, Accepts delivered, rebuilds when comments arrive).  The peak RSS
is the sum over the daemon's processes (``tree_peak_rss_mb``).
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import common, daemon_server, loadgen
from bridge.daemon import processes

ACTORS = 1000
KEYS = 16
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
MIX = ("Follow", "Like", "Create")


def _actor_id(i: int) -> str:
    return f"https://r{i}.example/users/a{i}"


def make_site(posts: int, sink_port: int) -> Path:
    from benchmarks import corpus

    site = common.WORK / "inbox-site"
    corpus.write_indiebridge(site, list(corpus.posts(posts)))
    with (site / "site.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n")
    text = (site / "site.toml").read_text(encoding="utf-8")
    text = text.replace(
        "posts_per_page = 10\n", "posts_per_page = 10\nallow_private_addresses = true\n"
    )
    (site / "site.toml").write_text(text, encoding="utf-8")
    return site


def _key_pems(count: int) -> list[tuple[bytes, str]]:
    """(private PEM, public PEM) pairs, kept between runs (RSA generation is slow)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = common.WORK / f"remote-keys-{count}.json"
    if path.exists():
        return [(a.encode(), b) for a, b in json.loads(path.read_text())]
    out = []
    for _ in range(count):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        out.append((private, public.decode()))
    path.write_text(json.dumps([(a.decode(), b) for a, b in out]))
    return out


def seed_actors(site: Path, sink_port: int, pems: list[tuple[bytes, str]]) -> None:
    from bridge import config
    from bridge.db import Database

    cfg = config.load(site)
    db = Database(cfg.db_path)
    now = time.time()
    with db.tx() as con:
        for i in range(ACTORS):
            actor = _actor_id(i)
            inbox = f"http://127.0.0.1:{sink_port}/users/a{i}/inbox"
            doc = {
                "@context": ["https://www.w3.org/ns/activitystreams"],
                "id": actor,
                "type": "Person",
                "preferredUsername": f"a{i}",
                "name": f"Remote {i}",
                "inbox": inbox,
                "endpoints": {"sharedInbox": f"http://127.0.0.1:{sink_port}/inbox"},
                "url": f"https://r{i}.example/@a{i}",
                "publicKey": {
                    "id": actor + "#main-key",
                    "owner": actor,
                    "publicKeyPem": pems[i % len(pems)][1],
                },
            }
            con.execute(
                "INSERT OR REPLACE INTO actors(id, doc, fetched) VALUES (?, ?, ?)",
                (actor, json.dumps(doc), now),
            )
            con.execute(
                "INSERT OR REPLACE INTO keys(key_id, owner, pem, fetched) VALUES (?, ?, ?, ?)",
                (actor + "#main-key", actor, pems[i % len(pems)][1], now),
            )
    db.close()


def activity(
    kind: str, n: int, actor: str, our_actor: str, post_url: str, marker: str = ""
) -> dict[str, Any]:
    aid = f"{actor}/activities/{n}"
    if kind == "Follow":
        return {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": aid,
            "type": "Follow",
            "actor": actor,
            "object": our_actor,
        }
    if kind == "Like":
        return {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": aid,
            "type": "Like",
            "actor": actor,
            "object": post_url,
        }
    note = {
        "id": f"{actor}/statuses/{n}",
        "type": "Note",
        "attributedTo": actor,
        "inReplyTo": post_url,
        "content": f"<p>Reply {n} {marker}: thanks for the post, it was useful.</p>",
        "published": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "to": [PUBLIC],
        "cc": [our_actor],
    }
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": aid,
        "type": "Create",
        "actor": actor,
        "object": note,
        "to": [PUBLIC],
        "cc": [our_actor],
    }


def _sign_batch(job: tuple[list[tuple[int, str, bytes]], str, int]) -> list[bytes]:
    """Raw HTTP requests for (actor index, key PEM, body) triples, signed now."""
    import httpx
    from cryptography.hazmat.primitives import serialization

    from bridge.federation.signatures import sign_request

    items, federation_url, _port = job
    keys: dict[str, Any] = {}
    out = []
    now = dt.datetime.now(dt.UTC)
    for i, pem, body in items:
        key = keys.get(pem)
        if key is None:
            key = keys[pem] = serialization.load_pem_private_key(pem.encode(), password=None)
        request = httpx.Request(
            "POST",
            f"{federation_url}/inbox",  # signed for the site's own host, as peers do
            content=body,
            headers={"Content-Type": "application/activity+json"},
        )
        sign_request(request, key, _actor_id(i) + "#main-key", "cavage", now)  # type: ignore[arg-type]
        head = b"POST /inbox HTTP/1.1\r\n"
        for name, value in request.headers.raw:
            head += name + b": " + value + b"\r\n"
        out.append(head + b"\r\n" + body)
    return out


def build_requests(
    count: int, start: int, port: int, pems: list[tuple[bytes, str]], site: Path, marker: str = ""
) -> list[bytes]:
    from bridge import config
    from bridge.site import content

    cfg = config.load(site)
    posts, _ = content.load(cfg)
    items = []
    for n in range(start, start + count):
        i = n % ACTORS
        kind = MIX[n % len(MIX)]
        post = posts[n % len(posts)]
        doc = activity(kind, n, _actor_id(i), cfg.actor_id, cfg.post_url(post.slug), marker)
        items.append((i, pems[i % len(pems)][0].decode(), json.dumps(doc).encode()))
    chunks = [items[k : k + 500] for k in range(0, len(items), 500)]
    with ProcessPoolExecutor(2) as pool:
        batches = pool.map(_sign_batch, [(c, cfg.federation_url, port) for c in chunks])
        return [r for batch in batches for r in batch]


def _loadgen(
    requests: Path, port: int, connections: int, seconds: float, rate: float = 0, skip: int = 0
) -> dict[str, Any]:
    args = [sys.executable, "-m", "benchmarks.loadgen", str(requests), "--port", str(port)]
    args += ["--connections", str(connections), "--seconds", str(seconds)]
    if rate:
        args += ["--rate", str(rate)]
    if skip:
        args += ["--skip", str(skip)]
    result = common.run(args, cwd=common.ROOT, timeout=seconds + 120)
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _stored(site: Path) -> int:
    import sqlite3

    from bridge import config

    con = sqlite3.connect(config.load(site).db_path)
    try:
        return int(con.execute("SELECT count(*) FROM inbox").fetchone()[0])
    finally:
        con.close()


def run(
    table: common.Table, seconds: float, rate: float, connections: int = 32, posts: int = 50
) -> None:
    from bridge import config
    from bridge.site import build as site_mod

    sink_port, port, bare_port = common.free_port(), common.free_port(), common.free_port()
    site = make_site(posts, sink_port)
    pems = _key_pems(KEYS)
    seed_actors(site, sink_port, pems)
    site_mod.build(config.load(site))
    closed_n = int(seconds * 2000)  # more than the daemon answers in that time
    rate_n = int(rate * seconds) if rate else 0
    t0 = time.perf_counter()
    requests = build_requests(closed_n + rate_n + 1, 0, port, pems, site)
    reqfile = common.WORK / "inbox-requests.pickle"
    reqfile.write_bytes(pickle.dumps(requests))
    print(
        f"  (signed {len(requests)} requests in {time.perf_counter() - t0:.1f} s)", file=sys.stderr
    )
    sink = [sys.executable, "-m", "benchmarks.sink", "--port", str(sink_port), "--bare"]
    daemon = daemon_server.command(site, port)
    with common.server(sink, sink_port), common.server(daemon, port) as proc:
        memory = daemon_server.MemoryPeak(proc.pid)
        memory.start()
        before = _stored(site)
        res = _loadgen(reqfile, port, connections, seconds)
        stored = _stored(site) - before
        ok = res["statuses"].get("202", 0)
        rps = ok / res["seconds"]
        note = f"{stored} stored; statuses {res['statuses']}"
        if res["errors"]:
            note += f"; errors {res['errors'][:1]}"
        table.add(
            "inbox", f"signed POSTs, {connections} connections: verified/s", f"{rps:.0f}/s", note
        )
        table.add("inbox", "  latency p50 / p99", f"{res['p50_ms']:.1f} / {res['p99_ms']:.1f} ms")
        if rate:
            time.sleep(1)
            res2 = _loadgen(reqfile, port, 256, seconds, rate=rate, skip=closed_n)
            ok2 = res2["statuses"].get("202", 0)
            slow = loadgen.describe_slow(res2.get("slow") or {})
            table.add(
                "inbox",
                f"fixed rate {rate:.0f}/s: verified/s, p50 / p99",
                f"{ok2 / res2['seconds']:.0f}/s",
                f"p50 {res2['p50_ms']:.1f} ms, p99 {res2['p99_ms']:.1f} ms; target p99 < 50 ms"
                + (f"; {slow}" if slow else ""),
            )
        memory.stop()
        reply = _reply_latency(site, port, pems, short=not rate)
        table.add("inbox", "reply Create -> shown in the rebuilt post page", reply[0], reply[1])
        rss = daemon_server.tree_peak_rss_mb(proc.pid)
        table.add(
            "inbox",
            "daemon memory under the load: summed PSS (peak of samples)",
            common.mb(memory.pss_mb),
            f"{memory.processes} processes then ({processes.default_workers()} HTTP workers, "
            "background, rebuild, supervisor, delivery children); target < 150 MB, judged on this",
        )
        table.add(
            "inbox", "  PSS / private MB of each process at that peak", "", memory.peak_by_role()
        )
        cpu = ", ".join(f"{r} {sec:.1f} s" for r, sec in memory.cpu_by_role().items())
        table.add("inbox", "  CPU (user + system) during the loads, by process", "", cpu)
        table.add(
            "inbox",
            "  summed peak RSS (VmHWM) / summed RSS sampled",
            f"{common.mb(rss)} / {common.mb(memory.rss_mb)}",
            "counts pages shared after fork once per process: an upper bound",
        )
    bare = [sys.executable, "-m", "benchmarks.sink", "--port", str(bare_port), "--bare"]
    with common.server(bare, bare_port):
        res = _loadgen(reqfile, bare_port, connections, seconds)
        brps = res["statuses"].get("202", 0) / res["seconds"]
        table.add(
            "inbox",
            f"same uvicorn answering a bare 202, {connections} connections (ceiling)",
            f"{brps:.0f}/s",
            f"p50 {res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms",
        )
    table.add(
        "inbox",
        "verified / bare-202 ceiling",
        f"{rps / brps:.0%}",
        "the rest is the signature check and the insert (the target is the rate: >= 2,000/s)",
    )


REPLY_LOAD = {
    "full": {"rate": 1000.0, "seconds": 16.0, "followers": 10_000, "replies": 8},
    "short": {"rate": 400.0, "seconds": 6.0, "followers": 1_000, "replies": 3},
}
"""The reply measurement's load: offered activities/s, for how long, the fan-out's size, and
how many replies are timed during it."""
REPLY_TIMEOUT = 30.0


def _reply_latency(
    site: Path, port: int, pems: list[tuple[bytes, str]], *, short: bool = False
) -> tuple[str, str]:  # (value, note) of the table's row
    """Replies sent during an offered load with a fan-out running, timed to the rebuilt page.

    The issue's condition: while ``benchmarks.loadgen`` offers ``rate`` fresh signed
    activities a second (Follows, Likes and reply Creates, ``MIX``) and a new post fans out
    to ``followers`` distinct inboxes (``indiebridge publish`` in another process, as the
    owner would), reply Creates are sent one every ``gap`` seconds on their own connections,
    and their post pages are polled until each reply's marker is in its page.  The figure
    is the median and the maximum over the replies, each counted from its request's send.
    """
    import threading

    from benchmarks import load_mixed
    from bridge import config
    from bridge.site import content
    from bridge.site.comments import CommentStore, comment_id

    s = REPLY_LOAD["short" if short else "full"]
    rate, seconds = float(s["rate"]), float(s["seconds"])
    replies, followers = int(s["replies"]), int(s["followers"])
    cfg = config.load(site)
    posts, _ = content.load(cfg)
    base = 20_000_000 + (time.time_ns() // 1000) % 1_000_000 * 100
    load = build_requests(int(rate * seconds) + 1, base, port, pems, site)
    reqfile = common.WORK / "inbox-reply-load.pickle"
    reqfile.write_bytes(pickle.dumps(load))
    # One reply per timed sample, each to its own post, signed now with its own marker.
    timed: list[tuple[bytes, str, Path, Path]] = []
    for k in range(replies):
        n = base + len(load) + k
        marker = f"bench-marker-{time.time_ns()}-{k}"
        i = n % ACTORS
        post = posts[n % len(posts)]
        doc = activity("Create", n, _actor_id(i), cfg.actor_id, cfg.post_url(post.slug), marker)
        body = json.dumps(doc).encode()
        signed = _sign_batch(
            ([(i, pems[i % len(pems)][0].decode(), body)], cfg.federation_url, port)
        )
        stored = CommentStore(cfg.content_dir).path(
            post.slug, comment_id("activitypub", doc["object"]["id"])
        )
        timed.append((signed[0], marker, stored, cfg.output_dir / "posts" / post.slug))
    drained = _drain(site)  # the earlier loads' backlog is not this condition
    sink_port = _sink_port_of(site)
    load_mixed.seed_followers(site, sink_port, followers)
    load_mixed.cli(site, "publish", "--no-webmentions")  # records the corpus; sends nothing
    load_mixed.add_post(site)
    publish_error: list[BaseException] = []

    def publish() -> None:
        try:
            load_mixed.cli(site, "publish", "--no-webmentions")
        except BaseException as exc:  # noqa: BLE001 - reported in the row
            publish_error.append(exc)

    outcome: dict[str, Any] = {}
    loader = threading.Thread(
        target=lambda: outcome.update(_loadgen(reqfile, port, 256, seconds, rate=rate))
    )
    publisher = threading.Thread(target=publish)
    started_load = time.perf_counter()
    loader.start()
    time.sleep(0.5)
    publisher.start()
    time.sleep(min(3.0, seconds / 4))  # the backlog and the fan-out are under way
    gap = (seconds - (time.perf_counter() - started_load) - 1.0) / max(replies, 1)
    seen = _send_and_watch(port, timed, gap, started_load + seconds)
    loader.join()
    publisher.join()
    offered = f"offered {rate:.0f}/s for {seconds:g} s"
    if outcome:
        offered += f" ({outcome['statuses'].get('202', 0) / outcome['seconds']:.0f}/s accepted)"
    note = (
        f"{offered}, fan-out to {followers:,} inboxes running (earlier backlog drained in "
        f"{drained:.0f} s first); target < 1 s (stretch 0.5 s)"
    )
    if publish_error:
        note += f"; the publish failed: {str(publish_error[0])[:200]}"
    if seen.busy:
        note += f"; {seen.busy} answers 503 (sent again 0.1 s later)"
    if seen.refused:
        note += f"; refused: {seen.refused}"
    if seen.missing:
        note += f"; {seen.missing} never shown within {REPLY_TIMEOUT:g} s"
    if seen.older:
        note += f"; {seen.older} first shown on an older comment page (newer ones filled the post)"
    if not seen.shown:
        return f"> {REPLY_TIMEOUT:g} s", note
    value = f"median {common.seconds(_median(seen.shown))}, max {common.seconds(max(seen.shown))}"
    steps = (
        f"202 after a median {common.seconds(_median(seen.answered))}, comment file written "
        f"after {common.seconds(_median(seen.written))}"
    )
    return value, f"{len(seen.shown)} replies; {steps}; {note}"


def _median(values: list[float]) -> float:
    ordered = sorted(values) or [float("nan")]
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _drain(site: Path, timeout: float = 300.0) -> float:
    """Seconds until no inbox row waits (at most ``timeout``)."""
    import sqlite3

    from bridge import config

    started = time.perf_counter()
    con = sqlite3.connect(config.load(site).db_path, timeout=30)
    try:
        while time.perf_counter() - started < timeout:
            if not con.execute("SELECT count(*) FROM inbox WHERE status = 'new'").fetchone()[0]:
                break
            time.sleep(0.5)
    finally:
        con.close()
    return time.perf_counter() - started


def _sink_port_of(site: Path) -> int:
    """The loopback sink's port, as ``seed_actors`` wrote it into the actors' inboxes."""
    import sqlite3

    from bridge import config

    con = sqlite3.connect(config.load(site).db_path)
    try:
        doc = con.execute("SELECT doc FROM actors LIMIT 1").fetchone()[0]
    finally:
        con.close()
    return int(json.loads(doc)["inbox"].split(":")[2].split("/")[0])


@dataclass
class _Replies:
    """What ``_send_and_watch`` saw, in seconds from each reply's first send."""

    shown: list[float] = field(default_factory=list)
    written: list[float] = field(default_factory=list)  # the comment file appeared
    answered: list[float] = field(default_factory=list)  # the 202 came back
    busy: int = 0  # 503 answers (the HTTP side sheds load), each sent again 0.1 s later
    refused: list[str] = field(default_factory=list)  # other answers than 202 and 503
    missing: int = 0  # sent, accepted, never shown within ``REPLY_TIMEOUT``
    older: int = 0  # first shown on an older comment page (``shown_on``)


def _send_and_watch(
    port: int, timed: list[tuple[bytes, str, Path, Path]], gap: float, load_ends: float
) -> _Replies:
    """Send each reply ``gap`` seconds after the previous one (while the load runs) and watch
    them all until shown, or ``REPLY_TIMEOUT`` seconds."""
    out = _Replies()
    waiting: list[tuple[float, str, Path, Path]] = []  # (sent at, marker, file, post folder)
    written: set[str] = set()
    queue = list(timed)
    next_at = time.perf_counter()
    while (queue or waiting) and time.perf_counter() < load_ends + REPLY_TIMEOUT:
        now = time.perf_counter()
        if queue and now >= next_at:
            raw, marker, stored, page = queue.pop(0)
            if now < load_ends:  # only replies sent while the load runs count
                status = _post(port, raw, out)
                if status == "202":
                    waiting.append((now, marker, stored, page))
                else:
                    out.refused.append(status)
            next_at = now + gap
        for item in list(waiting):
            sent_at, marker, stored, page = item
            if marker not in written and stored.exists():
                written.add(marker)
                out.written.append(time.perf_counter() - sent_at)
            where = shown_on(page, marker)
            if where:
                out.older += where == "older"
                out.shown.append(time.perf_counter() - sent_at)
                waiting.remove(item)
            elif time.perf_counter() > sent_at + REPLY_TIMEOUT:
                out.missing += 1
                waiting.remove(item)
        time.sleep(0.01)
    out.missing += len(waiting)
    return out


def post_pages(folder: Path) -> list[Path]:
    """A built post's page and its older comment pages (``posts/<slug>/comments/<n>/``)."""
    return [folder / "index.html", *folder.glob("comments/*/index.html")]


def shown_on(folder: Path, marker: str) -> str:
    """Where ``marker`` is shown: "post" (the post's page), "older" (an older comment
    page) or "" (not yet).

    A reply arrives on the post's page (the newest comment page), but when replies that
    arrived after it fill that page before the build that first renders it, it is first
    rendered on the older page that the post's page links to
    (``bridge/site/comment_pages.py``): shown, one click away."""
    for page in post_pages(folder):
        try:
            if marker in page.read_text(encoding="utf-8"):
                return "post" if page.parent == folder else "older"
        except OSError:
            continue
    return ""


def _post(port: int, raw: bytes, out: _Replies) -> str:
    """Send one request until it is not answered 503 (at most 10 s); its last status."""
    import socket

    started = time.perf_counter()
    status = "none"
    while time.perf_counter() - started < 10:
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(raw)
            answer = conn.recv(4096)
        status = answer.split(b" ", 2)[1].decode() if answer else "none"
        if status != "503":
            break
        out.busy += 1
        time.sleep(0.1)
    out.answered.append(time.perf_counter() - started)
    return status
