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
from pathlib import Path
from typing import Any

from benchmarks import common, daemon_server
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
            table.add(
                "inbox",
                f"fixed rate {rate:.0f}/s: verified/s, p50 / p99",
                f"{ok2 / res2['seconds']:.0f}/s",
                f"p50 {res2['p50_ms']:.1f} ms, p99 {res2['p99_ms']:.1f} ms; target p99 < 50 ms",
            )
        memory.stop()
        reply = _reply_latency(site, port, pems)
        table.add("inbox", "reply Create -> shown in the rebuilt post page", reply[0], reply[1])
        rss = daemon_server.tree_peak_rss_mb(proc.pid)
        table.add(
            "inbox",
            "daemon memory under the load: summed PSS (peak of samples)",
            common.mb(memory.pss_mb),
            f"{memory.processes} processes then ({processes.default_workers()} HTTP workers, "
            "background, supervisor, delivery children); target < 150 MB, judged on this",
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
    table.add("inbox", "verified / bare-202 ceiling", f"{rps / brps:.0%}", "target >= 40%")


def _reply_latency(site: Path, port: int, pems: list[tuple[bytes, str]]) -> tuple[str, str]:
    """Send one reply and poll its post page until the reply's text is in it."""
    import socket

    try:
        from bridge.conversations import fediverse as conversations  # noqa: F401
    except ImportError as exc:
        return "pending", f"bridge.conversations cannot be imported yet ({exc})"
    from bridge import config
    from bridge.site import content

    cfg = config.load(site)
    posts, _ = content.load(cfg)
    marker = f"bench-marker-{time.time_ns()}"
    n = 10_000_000 + (time.time_ns() % 1_000_000)
    raw = build_requests(1, n, port, pems, site, marker=marker)
    # build_requests picks the kind from n: move n to a Create.
    while json.loads(raw[0].split(b"\r\n\r\n", 1)[1])["type"] != "Create":
        n += 1
        raw = build_requests(1, n, port, pems, site, marker=marker)
    post = posts[n % len(posts)]
    page = cfg.output_dir / "posts" / post.slug / "index.html"
    time.sleep(2)  # let the load's own rebuilds settle
    with socket.create_connection(("127.0.0.1", port)) as s:
        started = time.perf_counter()
        s.sendall(raw[0])
        answer = s.recv(4096)
    status = answer.split(b" ", 2)[1].decode() if answer else "no answer"
    deadline = started + 30
    while time.perf_counter() < deadline:
        try:
            if marker in page.read_text(encoding="utf-8"):
                took = time.perf_counter() - started
                return common.seconds(took), f"HTTP {status}; target < 2 s"
        except OSError:
            pass
        time.sleep(0.02)
    return "> 30 s", f"HTTP {status}; the reply never showed in {page.name}"
