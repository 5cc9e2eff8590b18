"""The composition root: one wiring of context, delivery worker and inbox handlers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge import keys
from bridge.daemon import app as daemon_mod
from bridge.daemon import services, site_changes
from bridge.db import Database
from bridge.federation import delivery, followers

REPO = Path(__file__).resolve().parents[2]


def test_enqueue_stores_rows_and_wakes_the_worker_given_at_construction(site: Path) -> None:
    config = config_mod.load(site)
    db = Database(config.db_path)
    woken: list[str] = []
    dirty: list[str] = []
    ctx = services.build_context(
        config,
        db,
        keys.load(config.state_dir),
        on_queued=lambda: woken.append("wake"),
        mark_dirty=dirty.append,
    )
    activity = {"id": config.actor_id + "#update-1", "type": "Update", "actor": config.actor_id}
    ctx.enqueue(activity, ["https://peer.example/inbox"])
    assert [r["inbox"] for r in delivery.list_deliveries(db)] == ["https://peer.example/inbox"]
    assert woken == ["wake"]
    ctx.wake_delivery()
    assert woken == ["wake", "wake"]
    ctx.mark_dirty("first-article")
    assert dirty == ["first-article"]
    db.close()


def test_without_hooks_rows_wait_for_a_worker(site: Path) -> None:
    config = config_mod.load(site)
    db = Database(config.db_path)
    ctx = services.build_context(config, db, keys.load(config.state_dir))
    ctx.enqueue({"id": config.actor_id + "#u", "type": "Update"}, ["https://a.example/inbox"])
    ctx.wake_delivery()  # nothing runs here: no error, the row stays queued
    assert [r["state"] for r in delivery.list_deliveries(db)] == ["queued"]
    db.close()


def test_the_daemon_wires_its_worker_and_rebuilder_into_the_context(site: Path) -> None:
    config = config_mod.load(site)
    d = daemon_mod.Daemon(config)
    assert d.ctx.on_queued == d.worker.wake
    assert d.ctx.mark_dirty == d.rebuilder.mark_dirty
    d.ctx.mark_dirty("first-article")
    assert d.rebuilder.event.is_set()
    assert d.rebuilder.dirty == {"first-article"}
    assert {"Follow", "Create", "Like", "Announce", "Undo", "Delete"} <= set(d.processor.handlers)
    d.db.close()


def test_a_410_removes_the_followers_behind_that_inbox(site: Path) -> None:
    config = config_mod.load(site)
    db = Database(config.db_path)
    followers.upsert(
        db,
        actor="https://gone.example/users/a",
        inbox="https://gone.example/users/a/inbox",
        shared_inbox="https://gone.example/inbox",
        follow_id="https://gone.example/f/1",
        handle="@a@gone.example",
        state="accepted",
    )
    worker = services.delivery_worker(config, db, keys.load(config.state_dir))
    assert worker.on_gone is not None
    worker.on_gone("https://gone.example/inbox")
    assert followers.all_followers(db) == []
    db.close()


def test_the_change_counter_counts_and_the_poller_sees_it(site: Path) -> None:
    config = config_mod.load(site)
    db = Database(config.db_path)
    seen: list[int] = []
    poller = site_changes.ChangePoller(db, lambda: seen.append(1))
    assert poller.poll() is False
    other = Database(config.db_path)  # another process's connection
    assert site_changes.record_change(other) == 1
    assert site_changes.record_change(other) == 2
    assert poller.poll() is True
    assert poller.poll() is False
    assert seen == [1]
    other.close()
    db.close()


@pytest.mark.parametrize(
    "module",
    [
        "bridge.cli.site",
        "bridge.cli.writing",
        "bridge.cli.conversations",
        "bridge.cli.followers",
        "bridge.cli.publishing",
        "bridge.cli.keys",
        "bridge.cli.deliveries",
        "bridge.daemon.watch",
        "bridge.daemon.services",
        "bridge.daemon.feedbridge",
    ],
)
def test_each_module_imports_on_its_own(module: str) -> None:
    """No import cycles: every command module and daemon module loads first, alone."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_one_delivery_process_is_the_worker_in_the_background_process_itself(
    make_site: Callable[..., Path],
) -> None:
    """A one-core server (or ``delivery_processes = 1``) gets no child: the worker runs in
    the caller's process; two or more are a pool of children on the one queue."""
    config = config_mod.load(make_site({"delivery_processes": 1}))
    db = Database(config.db_path)
    made = services.delivery_pool(config, db, keys.load_or_generate(config.state_dir))
    assert isinstance(made, delivery.DeliveryWorker)
    config = config_mod.load(make_site({"delivery_processes": 2}))
    made = services.delivery_pool(config, db, keys.load_or_generate(config.state_dir))
    assert isinstance(made, delivery.DeliveryPool) and made.processes == 2
