"""Delivery: one activity fanned out to N loopback inboxes by ``DeliveryWorker``.

The parent starts the sink (``benchmarks.sink``, its own process, verifying every
signature) and runs each measured loop in a child process so its peak RSS is its own:

* ``worker``: ``enqueue`` the Create of a real post to N distinct inbox URLs spread over
  several loopback hosts, then ``DeliveryWorker.run_until_idle()``;
* ``bare``: the same N POSTs with a plain ``httpx.AsyncClient`` at the same concurrency,
  unsigned, no queue: the ceiling for this client library on this machine;
* ``pool``: the daemon's default set-up, a ``DeliveryPool`` of ``min(cores, 4)`` worker
  processes on the site's queue: started and ready first (as in a running daemon), then
  the same N deliveries are queued and the pool woken; timed until the last row is done;
* ``followers``: the same pool, with F followers spread over H hosts in the ``followers``
  table, each host with a shared inbox: ``inboxes_for_followers`` (one row per shared
  inbox) and ``enqueue`` are timed with the delivery, as a publish runs them;
* ``flat``: 100,000 deliveries queued, the worker delivering for a bounded time; its peak
  RSS shows whether memory grows with the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.sink import address

HOSTS = 16
"""Loopback addresses the sink listens on: inbox URLs spread over them like followers
spread over servers (the worker allows ``per_host`` connections to each)."""
FOLLOWERS = (100_000, 5_000)
"""Followers and their hosts for the shared-inbox fan-out (``--short``: a tenth)."""


def inbox_urls(port: int, n: int, hosts: int = HOSTS) -> list[str]:
    return [f"http://{address(i % hosts)}:{port}/users/u{i}/inbox" for i in range(n)]


def _activity(site: Path) -> dict[str, Any]:
    from bridge import config
    from bridge.site import activities, content

    cfg = config.load(site)
    posts, _ = content.load(cfg)
    post = posts[len(posts) // 2]
    return activities.create(cfg, activities.post_object(cfg, post))


# ---- children ------------------------------------------------------------------------------


def _cpu(children: bool = False) -> float:
    """CPU seconds (user + system) of this process, or of its finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _worker(args: argparse.Namespace) -> dict[str, Any]:
    from bridge import config, keys
    from bridge.db import Database
    from bridge.federation import delivery

    cfg = config.load(args.site)
    actor_keys = keys.load(cfg.state_dir)
    with tempfile.TemporaryDirectory() as tmp:
        enqueued = 0.0
        if args.db:  # queued by the parent, shared with other worker processes
            db = Database(args.db)
        else:
            db = Database(Path(tmp) / "state.sqlite3")
            activity = _activity(args.site)
            urls = inbox_urls(args.port, args.n)
            started = time.perf_counter()
            delivery.enqueue(db, activity, urls)
            enqueued = time.perf_counter() - started
        kwargs: dict[str, Any] = {}
        if args.concurrency:
            kwargs["concurrency"] = args.concurrency
        if args.lean:
            from bridge.federation.delivery.http1 import Http1Transport

            kwargs["transport"] = Http1Transport(allow_private=True)
        worker = delivery.DeliveryWorker(
            db,
            private_key=actor_keys.rsa,
            key_id=cfg.key_id,
            allow_private=True,
            base_url=cfg.base_url,
            **kwargs,
        )
        started = time.perf_counter()
        cpu = _cpu()
        if args.seconds:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(args.seconds, stop.set)
            await worker.run_forever(stop)
            stats = worker.stats
        else:
            stats = await worker.run_until_idle()
        seconds = time.perf_counter() - started
        cpu = _cpu() - cpu
        db.close()
    return {
        "seconds": seconds,
        "enqueue_seconds": enqueued,
        "delivered": stats.delivered,
        "failed": stats.failed,
        "retrying": stats.retrying,
        "concurrency": worker.concurrency,
        "started": time.time() - seconds,
        "ended": time.time(),
        "cpu": cpu,
    }


def _add_followers(db: Any, port: int, followers: int, hosts: int) -> None:
    """``followers`` accepted followers, one shared inbox per host, as Mastodon has."""
    now = time.time()
    rows = []
    for i in range(followers):
        origin = f"http://{address(i % hosts)}:{port}"
        actor = f"{origin}/users/u{i}"
        rows.append((actor, f"{actor}/inbox", f"{origin}/inbox", f"{actor}#follow", now))
    with db.tx() as con:
        con.executemany(
            "INSERT INTO followers(actor, inbox, shared_inbox, follow_id, state, created,"
            " updated) VALUES (?, ?, ?, ?, 'accepted', ?, ?)",
            [(*row, now) for row in rows],
        )


async def _pool(args: argparse.Namespace) -> dict[str, Any]:
    """The daemon's default delivery set-up, started before the post is queued."""
    import dataclasses

    from bridge import config
    from bridge.db import Database
    from bridge.federation import delivery

    cfg = dataclasses.replace(config.load(args.site), allow_private_addresses=True)
    db = Database(cfg.db_path)
    with db.tx() as con:
        for table in ("deliveries", "outgoing", "followers"):
            con.execute(f"DELETE FROM {table}")
    if args.followers:
        _add_followers(db, args.port, args.followers, args.hosts)
    activity = _activity(args.site)
    pool = delivery.DeliveryPool.from_config(cfg, db, poll_interval=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(pool.run_forever(stop))
    async with asyncio.timeout(120):
        while pool.ready < pool.processes:
            await asyncio.sleep(0.05)
    started = time.time()
    if args.followers:
        targets = delivery.inboxes_for_followers(db)
    else:
        targets = inbox_urls(args.port, args.n)
    delivery.enqueue(db, activity, targets)
    enqueued = time.time()
    pool.wake()
    async with asyncio.timeout(900):
        while db.one("SELECT 1 FROM deliveries WHERE state IN ('queued', 'sending') LIMIT 1"):
            await asyncio.sleep(0.05)
    row = db.one("SELECT MAX(updated) AS last, COUNT(*) AS n FROM deliveries WHERE state = 'done'")
    stop.set()
    await task
    db.close()
    cpu = _cpu(children=True)  # the delivery processes, start-up included
    assert row is not None
    last = float(row["last"] or enqueued)
    return {
        "processes": pool.processes,
        "targets": len(targets),
        "delivered": int(row["n"]),
        "seconds": last - enqueued,
        "total_seconds": last - started,
        "enqueue_seconds": enqueued - started,
        "concurrency": 32,
        "cpu": cpu,
    }


async def _bare(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    body = json.dumps(_activity(args.site), separators=(",", ":")).encode()
    urls = inbox_urls(args.port, args.n)
    concurrency = args.concurrency or 32
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    ok = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)

    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as client:

        async def one() -> None:
            nonlocal ok
            while not queue.empty():
                url = queue.get_nowait()
                r = await client.post(
                    url, content=body, headers={"Content-Type": "application/activity+json"}
                )
                ok += r.status_code < 300

        started = time.perf_counter()
        cpu = _cpu()
        async with asyncio.timeout(600):
            await asyncio.gather(*(one() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        cpu = _cpu() - cpu
    return {"seconds": seconds, "delivered": ok, "concurrency": concurrency, "cpu": cpu}


def child_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["worker", "bare", "pool"])
    parser.add_argument("--site", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0)
    parser.add_argument("--db", type=Path, help="a queue filled by the parent")
    parser.add_argument("--followers", type=int, default=0)
    parser.add_argument("--lean", action="store_true", help="worker: the HTTP/1.1 transport")
    parser.add_argument("--hosts", type=int, default=HOSTS)
    args = parser.parse_args(argv)
    runner = {"worker": _worker, "bare": _bare, "pool": _pool}[args.mode]
    result = asyncio.run(runner(args))
    print(json.dumps(result))


# ---- parent --------------------------------------------------------------------------------


def _sink_stats(port: int, reset: bool = False) -> dict[str, Any]:
    import httpx

    path = "/reset" if reset else "/stats"
    with httpx.Client(trust_env=False, timeout=10) as client:
        return dict(
            client.request("POST" if reset else "GET", f"http://127.0.0.1:{port}{path}").json()
        )


def _child(
    mode: str, site: Path, port: int, n: int, src: Path | None = None, **opts: float
) -> tuple[dict[str, Any], float]:
    args = [sys.executable, "-m", "benchmarks.delivery", mode, "--site", str(site)]
    args += ["--port", str(port), "--n", str(n)]
    for name, value in opts.items():
        if value:
            args += [f"--{name}", str(value)]
    env = None
    cwd = common.ROOT
    if src is not None:  # another checkout's bridge package first (the baseline)
        env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{common.ROOT}")
        cwd = common.WORK
    result = common.measured(args, cwd=cwd, env=env, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"delivery {mode} child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1]), result.peak_rss_mb


def _per(result: dict[str, Any]) -> str:
    if "cpu" not in result:  # a baseline's own benchmark code did not measure it
        return "unmeasured"
    return f"{1000 * result['cpu'] / max(result['delivered'], 1):.2f} ms"


def site_for_delivery(posts: int = 20) -> Path:
    """A small indiebridge site (for its keys and one real post to send)."""
    from benchmarks import corpus

    site = common.WORK / "delivery-site"
    if not (site / "site.toml").exists():
        corpus.write_indiebridge(site, list(corpus.posts(posts)))
    return site


def run(
    table: common.Table,
    sizes: list[int],
    flat: int,
    flat_seconds: float,
    src: Path | None = None,
    label: str | None = None,
    followers: tuple[int, int] = FOLLOWERS,
) -> None:
    from bridge import config, keys

    site = site_for_delivery()
    cfg = config.load(site)
    pem = site / "public-key.pem"
    pem.write_text(keys.load(cfg.state_dir).public_pem)
    port = common.free_port()
    hosts = max(HOSTS, followers[1])
    sink = [sys.executable, "-m", "benchmarks.sink", "--port", str(port), "--hosts", str(hosts)]
    sink += ["--public-key", str(pem), "--key-id", cfg.key_id, "--owner", cfg.actor_id]
    with common.server(sink, port):
        for n in sizes:
            if src is not None:
                _sink_stats(port, reset=True)
                res, rss = _child("worker", site, port, n, src=src)
                rate = res["delivered"] / res["seconds"]
                table.add(
                    "delivery",
                    f"before ({label}): signed, N={n}, concurrency {res['concurrency']}",
                    f"{rate:.0f}/s",
                    f"{common.seconds(res['seconds'])}, worker peak RSS {common.mb(rss)};"
                    f" {_per(res)} CPU per delivery",
                )
            _sink_stats(port, reset=True)
            res, rss = _child("worker", site, port, n)
            stats = _sink_stats(port)
            rate = res["delivered"] / res["seconds"]
            note = f"sink verified {stats['verified']}, invalid {stats['invalid']}"
            note += f"; {_per(res)} CPU per delivery"
            if stats["verified"] != n or res["delivered"] != n:
                note += f" (expected {n}: {stats['errors'][:1]})"
            c = res["concurrency"]
            table.add(
                "delivery", f"signed, N={n}, concurrency {c}: deliveries/s", f"{rate:.0f}/s", note
            )
            table.add("delivery", f"signed, N={n}: total time", common.seconds(res["seconds"]))
            table.add("delivery", f"signed, N={n}: worker peak RSS", common.mb(rss))
            _sink_stats(port, reset=True)
            bare, _ = _child("bare", site, port, n, concurrency=c)
            brate = bare["delivered"] / bare["seconds"]
            table.add(
                "delivery",
                f"bare httpx POST, N={n}, concurrency {c}: req/s (ceiling)",
                f"{brate:.0f}/s",
                f"{bare['delivered']} answered 2xx; {_per(bare)} CPU per request",
            )
            table.add(
                "delivery", f"signed / bare ceiling, N={n}", f"{rate / brate:.0%}", "target >= 80%"
            )
            _sink_stats(port, reset=True)
            pres, _ = _child("pool", site, port, n)
            prate = pres["delivered"] / pres["seconds"]
            verified = _sink_stats(port)["verified"]
            k = pres["processes"]
            table.add(
                "delivery",
                f"signed, N={n}, daemon default ({k} processes x concurrency 32): deliveries/s",
                f"{prate:.0f}/s",
                f"one queue; sink verified {verified}; {_per(pres)} CPU per delivery"
                " (start-up included); target >= 1,000/s",
            )
            table.add(
                "delivery",
                f"daemon default / bare ceiling, N={n}",
                f"{prate / brate:.0%}",
                "target >= 80%",
            )
        if followers[0]:
            count, spread = followers
            _sink_stats(port, reset=True)
            fres, _ = _child("pool", site, port, 0, followers=count, hosts=spread)
            verified = _sink_stats(port)["verified"]
            table.add(
                "delivery",
                f"{count:,} followers on {spread:,} hosts: one post to all (shared inboxes)",
                common.seconds(fres["total_seconds"]),
                f"{fres['targets']:,} inboxes, {fres['delivered']:,} delivered, sink verified"
                f" {verified:,}; queueing {common.seconds(fres['enqueue_seconds'])};"
                f" {fres['processes']} processes; "
                + ("target < 10 s" if followers == FOLLOWERS else "target for 100,000: < 10 s"),
            )
        if flat:
            _sink_stats(port, reset=True)
            res, rss = _child("worker", site, port, flat, seconds=flat_seconds)
            table.add(
                "delivery",
                f"{flat} queued, worker delivering for {flat_seconds:g} s: peak RSS",
                common.mb(rss),
                f"{res['delivered']} delivered meanwhile; target < 150 MB",
            )


if __name__ == "__main__":
    child_main(sys.argv[1:])
