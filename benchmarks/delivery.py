"""Delivery: one activity fanned out to N loopback inboxes by ``DeliveryWorker``.

The parent starts the sink (``benchmarks.sink``, its own process, verifying every
signature) and runs each measured loop in a child process so its peak RSS is its own:

* ``worker``: ``enqueue`` the Create of a real post to N distinct inbox URLs spread over
  several loopback hosts, then ``DeliveryWorker.run_until_idle()``;
* ``bare``: the same N POSTs with a plain ``httpx.AsyncClient`` at the same concurrency,
  unsigned, no queue: the ceiling for this client library on this machine;
* ``flat``: 100,000 deliveries queued, the worker delivering for a bounded time; its peak
  RSS shows whether memory grows with the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common

HOSTS = 16
"""Loopback addresses the sink listens on: inbox URLs spread over them like followers
spread over servers (the worker allows ``per_host`` connections to each)."""


def inbox_urls(port: int, n: int, hosts: int = HOSTS) -> list[str]:
    return [f"http://127.0.0.{1 + i % hosts}:{port}/users/u{i}/inbox" for i in range(n)]


def _activity(site: Path) -> dict[str, Any]:
    from bridge import config
    from bridge.site import activities, content

    cfg = config.load(site)
    posts, _ = content.load(cfg)
    post = posts[len(posts) // 2]
    return activities.create(cfg, activities.post_object(cfg, post))


# ---- children ------------------------------------------------------------------------------


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
        worker = delivery.DeliveryWorker(
            db,
            private_key=actor_keys.rsa,
            key_id=cfg.key_id,
            allow_private=True,
            base_url=cfg.base_url,
            **kwargs,
        )
        started = time.perf_counter()
        if args.seconds:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(args.seconds, stop.set)
            await worker.run_forever(stop)
            stats = worker.stats
        else:
            stats = await worker.run_until_idle()
        seconds = time.perf_counter() - started
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
        async with asyncio.timeout(600):
            await asyncio.gather(*(one() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "delivered": ok, "concurrency": concurrency}


def child_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["worker", "bare"])
    parser.add_argument("--site", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0)
    parser.add_argument("--db", type=Path, help="a queue filled by the parent")
    args = parser.parse_args(argv)
    runner = _worker if args.mode == "worker" else _bare
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


def _processes(site: Path, port: int, n: int, processes: int, concurrency: int) -> float:
    """Deliveries/s of ``processes`` workers sharing one queue (the design allows several
    processes per database: each claims its rows in a transaction)."""
    from bridge.db import Database
    from bridge.federation import delivery

    path = common.WORK / "delivery-shared.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = Database(path)
    delivery.enqueue(db, _activity(site), inbox_urls(port, n))
    db.close()
    args = [sys.executable, "-m", "benchmarks.delivery", "worker", "--site", str(site)]
    args += ["--port", str(port), "--n", str(n), "--db", str(path)]
    args += ["--concurrency", str(concurrency)]
    children = [
        subprocess.Popen(args, cwd=common.ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    results = []
    for child in children:
        out, _ = child.communicate(timeout=900)
        if child.returncode != 0:
            raise RuntimeError("a delivery worker process failed")
        results.append(json.loads(out.strip().splitlines()[-1]))
    delivered = sum(r["delivered"] for r in results)
    span = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return delivered / span


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
) -> None:
    from bridge import config, keys

    site = site_for_delivery()
    cfg = config.load(site)
    pem = site / "public-key.pem"
    pem.write_text(keys.load(cfg.state_dir).public_pem)
    port = common.free_port()
    sink = [sys.executable, "-m", "benchmarks.sink", "--port", str(port), "--hosts", str(HOSTS)]
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
                    f"{common.seconds(res['seconds'])}, worker peak RSS {common.mb(rss)}",
                )
            _sink_stats(port, reset=True)
            res, rss = _child("worker", site, port, n)
            stats = _sink_stats(port)
            rate = res["delivered"] / res["seconds"]
            note = f"sink verified {stats['verified']}, invalid {stats['invalid']}"
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
                f"{bare['delivered']} answered 2xx",
            )
            table.add(
                "delivery", f"signed / bare ceiling, N={n}", f"{rate / brate:.0%}", "target >= 80%"
            )
            _sink_stats(port, reset=True)
            prate = _processes(site, port, n, 2, c)
            verified = _sink_stats(port)["verified"]
            table.add(
                "delivery",
                f"signed, N={n}, 2 worker processes x concurrency {c}: deliveries/s",
                f"{prate:.0f}/s",
                f"one queue; sink verified {verified}; {prate / brate:.0%} of the bare ceiling",
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
