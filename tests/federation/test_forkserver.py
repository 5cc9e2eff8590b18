"""Delivery children forked by a fork server (``bridge.federation.delivery.forkserver``).

The server's side (``ForkServer.handle``) runs here in a fresh interpreter given its end
of the socket pair (in ``serve`` the supervisor runs it: ``tests/daemon/test_processes.py``
checks that layout).  Checked: a ``DeliveryPool`` whose children are
forked delivers every row once and its children exit cleanly when idle (their ``exit 0``
is read, so leaving is not counted as a crash); a ``kill -9`` of a forked child loses
nothing; a forked child starts with one thread and no descriptor but its stdin, stdout and
stderr; a child that dies without a word counts as a crash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.config import SiteConfig
from bridge.db import Database
from bridge.federation.delivery import DeliveryPool, enqueue, forkserver
from bridge.federation.delivery.forkserver import ForkClient
from tests.federation.test_delivery_pool import activity, alive, states, wait_for
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 (`web` fixture)

pytestmark = pytest.mark.skipif(not forkserver.supported(), reason="Linux fork server only")

ROOT = Path(__file__).resolve().parents[2]

SERVER = """
import os, signal, socket, sys
from bridge.federation.delivery.forkserver import ForkServer

def probe():
    import json, os, threading
    fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    print(json.dumps({"threads": threading.active_count(), "fds": fds}), flush=True)
    sys.stdin.read()  # until the pool closes our stdin

def deliver():
    from bridge.federation.delivery import child
    child.main(forked=True)

server = ForkServer()
server.server_end.close()
server.client_end.close()
server.server_end = socket.socket(fileno=int(sys.argv[1]))
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps; serve's supervisor waits
while True:  # what serve's supervisor does when the socket is readable
    try:
        forked = server.handle(probe if sys.argv[2] == "probe" else deliver)
    except EOFError:
        break
    if forked is not None:
        os.close(forked[1])
"""


@pytest.fixture
def site_config(site: Path) -> SiteConfig:
    return dataclasses.replace(config_mod.load(site), allow_private_addresses=True)


@pytest.fixture
def db(site_config: SiteConfig) -> Iterator[Database]:
    database = Database(site_config.db_path)
    yield database
    database.close()


def fork_server(target: str) -> Iterator[tuple[ForkClient, int]]:
    """A fork server process running ``target`` in each child; (client, its pid)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(theirs.fileno()), target],
        pass_fds=[theirs.fileno()],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    theirs.close()
    try:
        yield ForkClient(ours), proc.pid
    finally:
        proc.kill()
        proc.wait(10)
        ours.close()


@pytest.fixture
def delivering() -> Iterator[tuple[ForkClient, int]]:
    yield from fork_server("deliver")


@pytest.fixture
def probing() -> Iterator[tuple[ForkClient, int]]:
    yield from fork_server("probe")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_forked_children_deliver_every_row_once_and_exit_cleanly_when_idle(
    web: WebServer, site_config: SiteConfig, db: Database, delivering: tuple[ForkClient, int]
) -> None:
    spawner, server_pid = delivering
    paths = [f"/users/{i}/inbox" for i in range(40)]
    for path in paths:
        web.route(path, status=202, body="", methods=["POST"])
    pool = DeliveryPool(
        site_config, db, processes=2, poll_interval=0.2, idle_exit=1.0, spawner=spawner
    )
    parents: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pool.run_forever(stop))
        enqueue(db, activity(0, site_config.actor_id), [web.url(p) for p in paths])
        pool.wake()
        await wait_for(lambda: pool.ready >= 1)
        parents.extend(parent_of(c.pid) for c in pool._children.values())
        await wait_for(lambda: states(db)["done"] == len(paths))
        await wait_for(lambda: pool.running == 0, seconds=15)  # idle: each left
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert parents and set(parents) == {server_pid}  # forked by the server, not started
    assert pool.restarts == 0  # each said "exit 0": leaving idle is not a crash
    assert states(db) == Counter({"done": len(paths)})
    received = Counter((json.loads(r.body)["id"], r.path) for r in web.requests)
    assert len(received) == len(paths) and max(received.values()) == 1


def test_kill_9_of_a_forked_child_loses_nothing(
    web: WebServer, site_config: SiteConfig, db: Database, delivering: tuple[ForkClient, int]
) -> None:
    def slow(ex: Exchange) -> None:
        if ex.sleep(0.2):
            ex.send(202, {"Content-Type": "text/plain"}, b"ok")

    paths = [f"/users/{i}/inbox" for i in range(30)]
    for path in paths:
        web.route(path, handler=slow, methods=["POST"])
    pool = DeliveryPool(site_config, db, processes=2, poll_interval=0.2, spawner=delivering[0])
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
        await wait_for(lambda: pool.restarts == 1)  # said nothing: a crash
        await wait_for(lambda: states(db)["done"] == len(paths), 60)
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert states(db) == Counter({"done": len(paths)})
    assert not alive(killed[0])
    received = Counter(r.path for r in web.requests)
    assert set(received) == set(paths)  # every inbox got it; at most the in-flight twice
    assert sum(received.values()) - len(paths) <= 2


def test_a_forked_child_inherits_no_thread_and_no_descriptor(
    probing: tuple[ForkClient, int],
) -> None:
    spawner, _ = probing

    async def main() -> tuple[dict[str, object], int | None]:
        child = await spawner.spawn()
        line = await asyncio.wait_for(child.stdout.readline(), 10)
        child.stdin.close()  # end of file: the probe returns and the child exits
        await asyncio.wait_for(child.wait(), 10)
        return json.loads(line), child.returncode

    seen, code = asyncio.run(main())
    # stdin and stdout (the pool's pipes), stderr, and the one listdir itself opens
    assert seen["threads"] == 1
    fds = seen["fds"]
    assert isinstance(fds, list) and fds[:3] == [0, 1, 2] and len(fds) == 4
    assert code == forkserver.UNKNOWN  # not our child: its status is not ours to read
