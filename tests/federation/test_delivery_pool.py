"""The daemon's delivery set-up: several worker processes on one queue (``DeliveryPool``).

Real child processes deliver to a real loopback peer (``tests.webserver``).  Checked: every
row is delivered once by the pool; a 410 reaches the parent's ``on_gone``; ``kill -9`` of a
child loses nothing (its claimed rows are recovered, another child is started); children
exit when the process that started them is killed; ``stop`` leaves no row claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.config import SiteConfig
from bridge.db import Database
from bridge.errors import ConfigError
from bridge.federation.delivery import DeliveryPool, enqueue, queue
from bridge.federation.delivery.pool import default_processes
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 (`web` fixture)

ROOT = Path(__file__).resolve().parents[2]


def activity(n: int, actor: str) -> dict[str, object]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}#create-{n}",
        "type": "Create",
        "actor": actor,
        "object": {"id": f"{actor}#note-{n}", "content": f"post {n}"},
    }


@pytest.fixture
def site_config(site: Path) -> SiteConfig:
    return dataclasses.replace(config_mod.load(site), allow_private_addresses=True)


@pytest.fixture
def db(site_config: SiteConfig) -> Iterator[Database]:
    database = Database(site_config.db_path)
    yield database
    database.close()


def states(db: Database) -> Counter[str]:
    return Counter(row["state"] for row in db.query("SELECT state FROM deliveries"))


async def wait_for(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_two_processes_deliver_every_row_once_and_report_410s(
    web: WebServer, site_config: SiteConfig, db: Database
) -> None:
    web.route("/gone/inbox", status=410, body="gone", methods=["POST"])
    paths = [f"/users/{i}/inbox" for i in range(40)]
    for path in paths:
        web.route(path, status=202, body="", methods=["POST"])
    gone: list[str] = []
    pool = DeliveryPool(site_config, db, processes=2, on_gone=gone.append, poll_interval=0.2)
    assert pool.options["per_host"] == 2  # 4 per host, shared by the two processes

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pool.run_forever(stop))
        await wait_for(lambda: pool.ready == 2)
        actor = site_config.actor_id
        for n in range(3):
            enqueue(db, activity(n, actor), [web.url(p) for p in [*paths, "/gone/inbox"]])
        pool.wake()
        await wait_for(lambda: states(db)["queued"] + states(db)["sending"] == 0)
        await wait_for(lambda: bool(gone))
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert states(db) == Counter({"done": 120, "gone": 3})
    # one call per 410 received: rows claimed together each got one, the rest were retired
    assert set(gone) == {web.url("/gone/inbox")} and 1 <= len(gone) <= 3
    received = Counter((json.loads(r.body)["id"], r.path) for r in web.requests)
    assert len(received) == 120 + len(gone) and max(received.values()) == 1
    assert all(r.headers["signature"].startswith('keyId="') for r in web.requests)
    owners = {r["claimed_by"] for r in db.query("SELECT claimed_by FROM deliveries")}
    assert len(owners - {""}) == 2  # both processes claimed rows


def test_kill_9_of_a_child_loses_nothing(
    web: WebServer, site_config: SiteConfig, db: Database
) -> None:
    def slow(ex: Exchange) -> None:
        if ex.sleep(0.2):
            ex.send(202, {"Content-Type": "text/plain"}, b"ok")

    paths = [f"/users/{i}/inbox" for i in range(30)]
    for path in paths:
        web.route(path, handler=slow, methods=["POST"])
    pool = DeliveryPool(site_config, db, processes=2, poll_interval=0.2)
    killed: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pool.run_forever(stop))
        await wait_for(lambda: pool.ready == 2)
        enqueue(db, activity(0, site_config.actor_id), [web.url(p) for p in paths])
        pool.wake()
        await wait_for(lambda: states(db)["sending"] > 0 and states(db)["done"] > 0)
        victim = pool._children[0]
        killed.append(victim.pid)
        os.kill(victim.pid, signal.SIGKILL)
        await wait_for(lambda: pool.restarts == 1)
        await wait_for(lambda: states(db)["done"] == len(paths), 60)
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert states(db) == Counter({"done": len(paths)})
    assert not alive(killed[0])
    received = Counter(r.path for r in web.requests)
    assert set(received) == set(paths)  # every inbox got it; at most the in-flight twice
    assert sum(received.values()) - len(paths) <= 2


def test_stop_leaves_nothing_claimed_and_children_gone(
    web: WebServer, site_config: SiteConfig, db: Database
) -> None:
    def slow(ex: Exchange) -> None:
        if ex.sleep(0.5):
            ex.send(202, {"Content-Type": "text/plain"}, b"ok")

    paths = [f"/users/{i}/inbox" for i in range(200)]
    for path in paths:
        web.route(path, handler=slow, methods=["POST"])
    pool = DeliveryPool(site_config, db, processes=2, poll_interval=0.2, grace=5.0)
    pids: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pool.run_forever(stop))
        await wait_for(lambda: pool.ready == 2)
        pids.extend(child.pid for child in pool._children.values())
        enqueue(db, activity(0, site_config.actor_id), [web.url(p) for p in paths])
        pool.wake()
        await wait_for(lambda: states(db)["done"] > 0)
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    counts = states(db)
    assert counts["sending"] == 0
    assert counts["queued"] > 0 and counts["done"] + counts["queued"] == len(paths)
    assert not any(alive(pid) for pid in pids)


PARENT = """
import asyncio, dataclasses, sys
from bridge import config
from bridge.db import Database
from bridge.federation.delivery import DeliveryPool

async def main():
    cfg = config.load(sys.argv[1])
    pool = DeliveryPool(cfg, Database(cfg.db_path), processes=2, poll_interval=0.2)
    task = asyncio.create_task(pool.run_forever(asyncio.Event()))
    while pool.ready < 2:
        await asyncio.sleep(0.05)
    print(" ".join(str(c.pid) for c in pool._children.values()), flush=True)
    await task

asyncio.run(main())
"""


def test_children_die_with_the_parent_killed_by_sigkill(site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(site)], cwd=ROOT, env=env, stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in pids):
            assert time.monotonic() < deadline, "a delivery child outlived its parent"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()


def test_recover_with_an_owner_touches_only_that_owners_rows(db: Database) -> None:
    for name in ("a", "b"):
        activity = {"id": f"https://blog.example/{name}", "type": "Create"}
        enqueue(db, activity, [f"https://x.example/{name}"], now=1.0)
    first = queue.claim(db, 1, 10.0, owner="one")
    second = queue.claim(db, 1, 10.0, owner="two")
    assert len(first) == len(second) == 1
    assert queue.recover(db, 20.0, owner="one") == 1
    rows = {r["activity_id"]: r for r in db.query("SELECT * FROM deliveries")}
    assert rows[first[0].activity_id]["state"] == "queued"
    assert rows[first[0].activity_id]["claimed_by"] == ""
    assert rows[second[0].activity_id]["state"] == "sending"
    assert rows[second[0].activity_id]["claimed_by"] == "two"
    assert queue.recover(db, 30.0) == 1  # without an owner: everything claimed


def test_processes_default_to_cores_up_to_four_and_the_setting_overrides(
    make_site: Callable[..., Path], db: Database
) -> None:
    assert 1 <= default_processes() <= min(4, os.cpu_count() or 1)
    cfg = config_mod.load(make_site())
    assert cfg.delivery_processes == 0
    assert DeliveryPool.from_config(cfg, db).processes == default_processes()
    cfg = config_mod.load(make_site({"delivery_processes": 3}))
    pool = DeliveryPool.from_config(cfg, db)
    assert pool.processes == 3 and pool.options["per_host"] == 1
    assert config_mod.load(make_site({"delivery_processes": 0})).delivery_processes == 0
    for wrong in (-1, 17, True, "2"):
        with pytest.raises(ConfigError, match="'delivery_processes' must be a whole number from"):
            config_mod.load(make_site({"delivery_processes": wrong}))


def test_children_run_at_a_lower_priority_than_the_daemon(
    site_config: SiteConfig, db: Database
) -> None:
    """Sending yields the cores to receiving under contention (``child.NICE``)."""
    from bridge.federation.delivery.child import NICE

    pool = DeliveryPool(site_config, db, processes=1, poll_interval=0.2)
    nices: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pool.run_forever(stop))
        await wait_for(lambda: pool.ready == 1)
        nices.extend(os.getpriority(os.PRIO_PROCESS, c.pid) for c in pool._children.values())
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert nices == [min(ours + NICE, 19)]


def test_on_demand_children_start_when_rows_fall_due_and_exit_when_idle(
    web: WebServer, site_config: SiteConfig, db: Database
) -> None:
    """``idle_exit`` (the daemon's set-up): no child while nothing is due; a wake or a row
    falling due starts them; each exits after ``idle_exit`` s of nothing; nothing is lost."""
    paths = [f"/users/{i}/inbox" for i in range(30)]
    for path in paths:
        web.route(path, status=202, body="", methods=["POST"])
    pool = DeliveryPool(site_config, db, processes=2, poll_interval=0.2, idle_exit=1.0)
    seen: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pool.run_forever(stop))
        await asyncio.sleep(1.0)
        seen.append(pool.started)  # nothing queued: no child
        actor = site_config.actor_id
        enqueue(db, activity(0, actor), [web.url(p) for p in paths[:20]])
        pool.wake()
        await wait_for(lambda: states(db)["done"] == 20)
        seen.append(pool.started)
        await wait_for(lambda: pool.running == 0, seconds=10)  # idle: both exited
        # A row due in a second, with no wake: the pool's poll of the queue starts a child.
        enqueue(db, activity(1, actor), [web.url(p) for p in paths[20:]])
        with db.tx() as con:
            con.execute(
                "UPDATE deliveries SET next_try = ? WHERE state = 'queued'", (time.time() + 1,)
            )
        await wait_for(lambda: states(db)["done"] == 30)
        seen.append(pool.started)
        await wait_for(lambda: pool.running == 0, seconds=10)
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert seen[0] == 0
    assert 1 <= seen[1] <= 2
    assert seen[2] > seen[1]  # started again for the later row
    assert pool.restarts == 0  # leaving when idle is not a crash
    assert states(db) == Counter({"done": 30})
    received = Counter((json.loads(r.body)["id"], r.path) for r in web.requests)
    assert len(received) == 30 and max(received.values()) == 1


def test_a_child_runs_without_the_optional_packages_it_never_uses() -> None:
    """``pool.LAUNCH`` keeps httpx's command line and httpcore's trio support out of the
    child (about 8 MB each) and the child's modules still import."""
    from bridge.federation.delivery.pool import LAUNCH, NOT_IMPORTED

    setup = LAUNCH.split("; from ", 1)[0]
    code = (
        setup + "; import bridge.federation.delivery.child, bridge.federation.delivery.worker"
        "; print(sorted(n for n in sys.modules if n.split('.')[0] in "
        f"{NOT_IMPORTED!r} and sys.modules[n] is not None))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "[]"


def test_on_demand_a_second_child_starts_only_for_a_backlog(
    web: WebServer, site_config: SiteConfig, db: Database
) -> None:
    """``spare_backlog``: a few due rows (the Accepts of a flood of Follows) are sent by one
    child; a fan-out with more due than that starts the next one too."""
    paths = [f"/users/{i}/inbox" for i in range(310)]
    for path in paths:
        web.route(path, status=202, body="", methods=["POST"])
    pool = DeliveryPool(
        site_config, db, processes=2, poll_interval=0.2, idle_exit=1.0, spare_backlog=40
    )
    seen: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pool.run_forever(stop))
        actor = site_config.actor_id
        enqueue(db, activity(0, actor), [web.url(p) for p in paths[:10]])
        pool.wake()
        await wait_for(lambda: states(db)["done"] == 10)
        await asyncio.sleep(0.5)  # a second slot would have looked by now
        seen.append(pool.started)
        # More than a child's claim (64) beyond the backlog: still due when slot 2 looks.
        enqueue(db, activity(1, actor), [web.url(p) for p in paths[10:]])
        pool.wake()
        await wait_for(lambda: states(db)["done"] == 310)
        seen.append(pool.started)
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert seen == [1, 2]
    assert states(db) == Counter({"done": 310})
