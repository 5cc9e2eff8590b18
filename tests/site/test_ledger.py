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
