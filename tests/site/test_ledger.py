"""The build reads the state database once, read-only: ids, gone ids, a move and the
follower count come from one connection (``bridge.site.ledger.read_file``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.config import load as load_config
from bridge.db import Database
from bridge.site import ledger
from bridge.site.build import BuildResult

Build = Callable[..., BuildResult]


def _followers(db: Database, states: list[str]) -> None:
    with db.tx() as con:
        for n, state in enumerate(states):
            con.execute(
                "INSERT INTO followers(actor, inbox, shared_inbox, follow_id, state, created,"
                " updated) VALUES (?, ?, NULL, ?, ?, 0, 0)",
                (f"https://m.example/u/{n}", f"https://m.example/u/{n}/inbox", f"f{n}", state),
            )


def test_the_follower_count_comes_with_the_ledger(site: Path) -> None:
    config = load_config(site)
    assert ledger.read_file(config).followers == 0  # no database yet
    _followers(Database(config.db_path), ["accepted", "accepted", "pending"])
    assert ledger.read_file(config).followers == 2


def test_a_build_opens_the_state_database_once(
    site: Path, build_site: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(site)
    _followers(Database(config.db_path), ["accepted"])
    opened: list[str] = []
    connect = sqlite3.connect

    def counting(target: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if str(config.db_path) in str(target):
            opened.append(str(target))
        return connect(target, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", counting)
    out = build_site(site).out_dir
    assert len(opened) == 1 and opened[0].endswith("?mode=ro")
    followers = json.loads((out / "ap/followers.json").read_text(encoding="utf-8"))
    assert followers["totalItems"] == 1


def test_the_fingerprint_covers_exactly_the_statements_the_ledger_reads(site: Path) -> None:
    """``build_stamp`` trusts ``fingerprint`` to change whenever a row ``read`` reads does:
    every statement ``read`` runs must be one the fingerprint hashes."""
    config = load_config(site)
    db = Database(config.db_path)
    db.close()
    ran: list[str] = []
    con = sqlite3.connect(config.db_path)
    con.set_trace_callback(ran.append)
    ledger.read(con, config)
    con.close()
    queries = {q.replace("?", f"'{ledger.MOVED_TO}'") for q in ledger.FINGERPRINT_QUERIES}
    assert ran and set(ran) == queries
    before = ledger.fingerprint(config)
    _followers(Database(config.db_path), ["pending"])
    assert ledger.fingerprint(config) == before  # a row the build does not show
    _followers_from(Database(config.db_path), 1, ["accepted"])
    assert ledger.fingerprint(config) != before


def _followers_from(db: Database, start: int, states: list[str]) -> None:
    with db.tx() as con:
        for n, state in enumerate(states, start):
            con.execute(
                "INSERT INTO followers(actor, inbox, shared_inbox, follow_id, state, created,"
                " updated) VALUES (?, ?, NULL, ?, ?, 0, 0)",
                (f"https://m.example/u/{n}", f"https://m.example/u/{n}/inbox", f"f{n}", state),
            )
